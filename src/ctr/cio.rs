//! Client-side stdio as containerd's `cio` makes it: the client creates
//! fifos under `<root>/<random>/` (`<id>-stdin`, `<id>-stdout`,
//! `<id>-stderr`), passes their paths to Tasks.Create or Exec, copies its
//! own stdio through them, and removes the directory when done. The shim
//! only opens the paths, so the client decides where output goes.

use crate::error::{Context, Result};
use rustix::fs::{FileType, Mode, OFlags, CWD};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Where skiff's ctr makes fifo directories (containerd's ctr:
/// /run/containerd/fifo).
pub const FIFO_ROOT: &str = "/run/skiff/fifo";

/// The fifo paths of one process and the directory that holds them.
pub struct FifoSet {
    pub dir: PathBuf,
    pub stdin: String,
    pub stdout: String,
    /// Empty with a terminal (its output comes on stdout).
    pub stderr: String,
}

impl FifoSet {
    /// Make `<root>/<random>/<id>-std{in,out,err}` (no stderr with a terminal).
    pub fn create(root: &str, id: &str, terminal: bool) -> Result<FifoSet> {
        std::fs::create_dir_all(root).with_context(|| format!("create {root}"))?;
        let dir = loop {
            let dir = Path::new(root).join(random_u32().to_string());
            match std::fs::create_dir(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(crate::Error::from(e).wrap(format!("create {}", dir.display())))
                }
            }
        };
        let path = |s: &str| dir.join(format!("{id}-{s}")).display().to_string();
        let set = FifoSet {
            stdin: path("stdin"),
            stdout: path("stdout"),
            stderr: if terminal {
                String::new()
            } else {
                path("stderr")
            },
            dir,
        };
        for p in [&set.stdin, &set.stdout, &set.stderr] {
            if !p.is_empty() {
                rustix::fs::mknodat(
                    CWD,
                    p.as_str(),
                    FileType::Fifo,
                    Mode::from_raw_mode(0o700),
                    0,
                )
                .map_err(crate::Error::from)
                .with_context(|| format!("mkfifo {p}"))?;
            }
        }
        Ok(set)
    }

    /// Remove the directory and its fifos.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Remove fifos a process was given (a detached run's, found again by
/// its task's paths) and their directory once empty. Only fifos named as
/// this ctr names them under `root` (`root/<n>/<id>-stdin` ...): a task's
/// paths come from whichever client created it, and anything else is
/// left alone.
pub fn remove_fifos(root: &str, id: &str, paths: &[&str]) {
    use std::os::unix::fs::FileTypeExt;
    for p in paths.iter().filter(|p| ours(root, id, p)) {
        let is_fifo = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo());
        if is_fifo {
            let _ = std::fs::remove_file(p);
            if let Some(dir) = Path::new(p).parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Whether `path` is `root/<digits>/<id>-{stdin,stdout,stderr}`.
fn ours(root: &str, id: &str, path: &str) -> bool {
    let path = Path::new(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    let numbered = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let named = ["stdin", "stdout", "stderr"]
        .iter()
        .any(|s| name.to_str() == Some(&format!("{id}-{s}")));
    numbered && named && dir.parent() == Some(Path::new(root))
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        // Only uniqueness matters here; the pid and time give enough.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return t ^ std::process::id();
    }
    u32::from_le_bytes(b)
}

/// The read end of an output fifo, opened before the shim opens its
/// write end: a placeholder writer keeps reads from seeing end-of-file
/// until [`OutputFifo::shim_attached`] (the shim has opened its end once
/// Create or Exec answered).
pub struct OutputFifo {
    read: File,
    placeholder: Option<OwnedFd>,
}

impl OutputFifo {
    pub fn open(path: &str) -> Result<OutputFifo> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(crate::Error::from)
        .with_context(|| format!("open {path}"))?;
        let placeholder = rustix::fs::open(
            path,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(crate::Error::from)
        .with_context(|| format!("open {path}"))?;
        rustix::fs::fcntl_setfl(&fd, OFlags::RDONLY)
            .map_err(crate::Error::from)
            .with_context(|| format!("make {path} blocking"))?;
        Ok(OutputFifo {
            read: File::from(fd),
            placeholder: Some(placeholder),
        })
    }

    /// Copy everything that comes out to `out` on a thread; the handle
    /// ends at end-of-file (the process and all holders closed it).
    pub fn copy_to(mut self, mut out: impl Write + Send + 'static) -> (JoinHandle<()>, Attach) {
        let attach = Attach(self.placeholder.take());
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 32 * 1024];
            loop {
                match self.read.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let _ = out.flush();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        });
        (h, attach)
    }
}

/// The placeholder writer of an output fifo; dropping it (once the shim
/// holds the fifo) lets the reader see end-of-file when the process ends.
pub struct Attach(#[allow(dead_code)] Option<OwnedFd>);

/// Copy `input` into the stdin fifo on a thread (opening it blocks until
/// the shim opened its end); `on_eof` runs when `input` ends, after the
/// fifo is closed (ctr then calls CloseIO so the process sees end-of-file).
pub fn copy_stdin(
    path: String,
    mut input: impl Read + Send + 'static,
    on_eof: impl FnOnce() + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&path) else {
            return;
        };
        let mut buf = [0u8; 32 * 1024];
        loop {
            match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if fifo.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        drop(fifo);
        on_eof();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fifos_named_as_ours_are_removed() {
        struct Cleanup(PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let tmp = Cleanup(std::env::temp_dir().join(format!("skiff-cio-{}", std::process::id())));
        let root = tmp.0.join("fifo");
        let root = root.to_str().unwrap();
        let set = FifoSet::create(root, "t1", false).unwrap();
        // Same naming, another client's directory.
        let elsewhere = tmp.0.join("elsewhere");
        let foreign = FifoSet::create(elsewhere.to_str().unwrap(), "t1", false).unwrap();
        remove_fifos(root, "t1", &[&foreign.stdout, "", "/etc/passwd"]);
        assert!(Path::new(&foreign.stdout).exists());
        remove_fifos(root, "other", &[&set.stdout]);
        assert!(Path::new(&set.stdout).exists());
        remove_fifos(root, "t1", &[&set.stdin, &set.stdout, &set.stderr]);
        assert!(!set.dir.exists());
    }
}
