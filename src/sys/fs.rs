//! Path resolution confined to a root directory (openat2 RESOLVE_IN_ROOT),
//! so a container's symlinks can never lead the runtime out of its rootfs.

use crate::error::{Context, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Open a directory as an O_PATH anchor for confined lookups.
pub fn open_root(path: &str) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {path}"))
}

/// Open `rel` inside `root` as if `root` were `/`.
pub fn open_in_root(root: impl AsFd, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(root, rel, flags | OFlags::CLOEXEC, Mode::empty(), IN_ROOT)
}

/// What to create at the end of a path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Dir,
    File,
}

/// Create `rel` (and its missing parents) inside `root`, never following a
/// symlink out of it; return an O_PATH fd of the result.
pub fn ensure_in_root(root: impl AsFd, rel: &str, leaf: Leaf, mode: u32) -> Result<OwnedFd> {
    let root = root.as_fd();
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut dir = open_in_root(root, "/", OFlags::PATH | OFlags::DIRECTORY).context("open root")?;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let sofar = parts[..=i].join("/");
        match open_in_root(root, &sofar, OFlags::PATH) {
            Ok(fd) => {
                dir = fd;
                continue;
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(crate::Error::from(e).wrap(format!("resolve /{sofar}"))),
        }
        if *part == ".." {
            // "a/.." of a missing "a": nothing to create.
            continue;
        }
        let mode_bits = Mode::from_raw_mode(mode);
        if last && leaf == Leaf::File {
            match rustix::fs::openat(
                &dir,
                *part,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                mode_bits,
            ) {
                Ok(_) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(crate::Error::from(e).wrap(format!("create /{sofar}"))),
            }
        } else {
            match rustix::fs::mkdirat(&dir, *part, mode_bits) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(crate::Error::from(e).wrap(format!("mkdir /{sofar}"))),
            }
        }
        dir = open_in_root(root, &sofar, OFlags::PATH).map_err(|e| {
            if e == rustix::io::Errno::NOENT {
                crate::err!("/{sofar}: dangling symbolic link")
            } else {
                crate::Error::from(e).wrap(format!("resolve /{sofar}"))
            }
        })?;
    }
    Ok(dir)
}

/// The /proc path that names an open fd, for calls that take a path (mount
/// targets): the kernel follows it to exactly the file we resolved.
pub fn proc_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Is the fd a directory?
pub fn is_dir(fd: impl AsFd) -> bool {
    rustix::fs::fstat(fd)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false)
}

/// mknod(2) relative to a directory fd.
pub fn mknodat(
    dir: impl AsFd,
    name: &str,
    kind: u32,
    perm: u32,
    major: u32,
    minor: u32,
) -> Result<()> {
    let file_type = rustix::fs::FileType::from_raw_mode(kind);
    rustix::fs::mknodat(
        dir,
        name,
        file_type,
        Mode::from_raw_mode(perm),
        rustix::fs::makedev(major, minor),
    )
    .with_context(|| format!("mknod {name}"))
}

/// Write a whole small file (for /proc and /sys knobs).
pub fn write_file(path: &str, contents: &str) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("write {path}"))
}

/// Does the way to `rel` inside `root` pass through a symbolic link (the
/// last component included)? A path that does not exist yet has none.
pub fn symlink_on_path(root: impl AsFd, rel: &str) -> Result<bool> {
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let how = IN_ROOT.union(ResolveFlags::NO_SYMLINKS);
    match rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    ) {
        Ok(_) | Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Ok(false),
        Err(rustix::io::Errno::LOOP) => Ok(true),
        Err(e) => Err(crate::Error::from(e).wrap(format!("resolve /{rel}"))),
    }
}

/// How a lock file is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// Open (creating) `path` and take a `flock` on it, waiting for other
/// holders when `wait`; None when not waiting and another holder conflicts.
/// The lock lasts as long as the returned file. Each call opens the file
/// anew, so two holders in one process exclude each other like two
/// processes do.
pub fn lock_file(
    path: &std::path::Path,
    mode: LockMode,
    wait: bool,
) -> Result<Option<std::fs::File>> {
    use rustix::fs::{flock, FlockOperation as Op};
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    let op = match (mode, wait) {
        (LockMode::Shared, true) => Op::LockShared,
        (LockMode::Shared, false) => Op::NonBlockingLockShared,
        (LockMode::Exclusive, true) => Op::LockExclusive,
        (LockMode::Exclusive, false) => Op::NonBlockingLockExclusive,
    };
    match flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
        Err(e) => Err(crate::error::Error::from(e).wrap(format!("lock {}", path.display()))),
    }
}

/// Wait until `fd` is readable (or its other end closed), at most
/// `timeout` (None: for ever); an interrupted wait goes on for the time
/// left. Ok(false) when the time ran out.
pub fn wait_readable(fd: impl AsFd, timeout: Option<std::time::Duration>) -> std::io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        let left = deadline.map(|d| {
            let left = d.saturating_duration_since(std::time::Instant::now());
            Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            }
        });
        match poll(&mut fds, left.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
