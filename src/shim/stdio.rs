//! A container process's stdio: the fifos (or `file://` destinations)
//! containerd names, pipes or a pty master on the container's side, and one
//! small copying thread per stream. Output is drained to the end before the
//! exit is reported, so nothing the process wrote is lost.

use super::logger::LoggerEnv;
use super::runtime::ProcessStdio;
use crate::error::{Context, Error, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where containerd wants a process's stdio (CreateTaskRequest / ExecProcessRequest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioSpec {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Where one output stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sink {
    None,
    Fifo(String),
    /// `file:///path`: appended to, both streams alike.
    File(String),
    /// `binary:///path?args`: a logger program reads both streams.
    Binary(String),
}

fn sink(uri: &str) -> Result<Sink> {
    if uri.is_empty() {
        return Ok(Sink::None);
    }
    match uri.split_once("://") {
        None => Ok(Sink::Fifo(uri.to_string())),
        Some(("fifo", path)) => Ok(Sink::Fifo(path.to_string())),
        Some(("file", path)) => Ok(Sink::File(path.to_string())),
        Some(("binary", _)) => Ok(Sink::Binary(uri.to_string())),
        Some((scheme, _)) => Err(crate::err_kind!(
            Unimplemented,
            "stdio {uri:?}: the {scheme}:// scheme is not supported by this shim"
        )),
    }
}

/// Counts copiers still running, so an exit can wait for the output.
#[derive(Default)]
struct Pending {
    left: Mutex<usize>,
    done: Condvar,
}

impl Pending {
    fn add(&self) {
        *self.left.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
    fn finish(&self) {
        let mut n = self.left.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        self.done.notify_all();
    }
    /// Whether all finished within `timeout`.
    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut n = self.left.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            n = self
                .done
                .wait_timeout(n, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Waits for a process's output copiers to finish.
pub struct Drain(Arc<Pending>);

impl Drain {
    /// Whether all output was copied within `timeout`.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.0.wait(timeout)
    }
}

/// The shim's side of a process's stdio, alive as long as the process
/// record is.
pub struct ProcessIo {
    spec: StdioSpec,
    /// Where the stdin copier writes (pipe or pty master); taken by CloseIO.
    stdin: Arc<Mutex<Option<File>>>,
    /// The pty master, for resizing.
    console: Option<File>,
    output: Arc<Pending>,
}

/// Our ends of a process's pipes and their destinations, opened before
/// the process exists so that a bad path fails the request cleanly.
pub struct Pipes {
    output: Arc<Pending>,
    stdin_w: Option<OwnedFd>,
    stdout: Option<(OwnedFd, File)>,
    stderr: Option<(OwnedFd, File)>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")
}

fn chown(fd: &OwnedFd, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    let u = uid.map(rustix::fs::Uid::from_raw);
    let g = gid.map(rustix::fs::Gid::from_raw);
    rustix::fs::fchown(fd, u, g).context("chown the stdio pipe for io_uid/io_gid")
}

impl ProcessIo {
    /// Pipes for a process without a terminal: the container's ends, to
    /// pass to the runtime, and ours for [`ProcessIo::start_pipes`]. The
    /// container's ends belong to `uid`/`gid` when given (io_uid/io_gid).
    /// A `binary://` logger is started here (it reads the pipes itself).
    pub fn pipes(
        spec: &StdioSpec,
        uid: Option<u32>,
        gid: Option<u32>,
        logger: &LoggerEnv,
    ) -> Result<(ProcessStdio, Pipes)> {
        let mut ends = ProcessStdio::null();
        let (out_sink, err_sink) = (sink(&spec.stdout)?, sink(&spec.stderr)?);
        let output = Arc::new(Pending::default());
        let mut started_logger = false;
        if let Sink::Binary(uri) = &out_sink {
            if !matches!(&err_sink, Sink::None) && err_sink != out_sink {
                return Err(crate::err_kind!(
                    InvalidArgument,
                    "stdio: a binary:// stdout ({uri}) needs the same stderr, not {:?}",
                    spec.stderr
                ));
            }
            let l = super::logger::start(uri, logger)?;
            chown(&l.stdout, uid, gid)?;
            chown(&l.stderr, uid, gid)?;
            ends.stdout = Stdio::from(l.stdout);
            ends.stderr = Stdio::from(l.stderr);
            // The output is drained when the logger has read it all and exits.
            output.add();
            let pending = output.clone();
            logger
                .reaper
                .watch(l.pid, l.since, move |_| pending.finish());
            started_logger = true;
        }
        let (out_dst, err_dst) = if started_logger {
            (None, None)
        } else {
            (open_sink(&out_sink)?, open_sink(&err_sink)?)
        };
        let mut p = Pipes {
            output,
            stdin_w: None,
            stdout: None,
            stderr: None,
        };
        if !spec.stdin.is_empty() {
            let (r, w) = pipe()?;
            chown(&r, uid, gid)?;
            ends.stdin = Stdio::from(r);
            p.stdin_w = Some(w);
        }
        if let Some(dst) = out_dst {
            let (r, w) = pipe()?;
            chown(&w, uid, gid)?;
            ends.stdout = Stdio::from(w);
            p.stdout = Some((r, dst));
        }
        if let Some(dst) = err_dst {
            let (r, w) = pipe()?;
            chown(&w, uid, gid)?;
            ends.stderr = Stdio::from(w);
            p.stderr = Some((r, dst));
        }
        Ok((ends, p))
    }

    /// Start copying between the fifos and our ends of `pipes` (once the
    /// runtime has the container's ends).
    pub fn start_pipes(spec: &StdioSpec, pipes: Pipes) -> Result<ProcessIo> {
        let output = pipes.output;
        let has_stdin = pipes.stdin_w.is_some();
        let stdin = Arc::new(Mutex::new(pipes.stdin_w.map(File::from)));
        if has_stdin {
            copy_stdin(spec.stdin.clone(), stdin.clone())?;
        }
        for (r, dst) in [pipes.stdout, pipes.stderr].into_iter().flatten() {
            copy_out(File::from(r), dst, &output)?;
        }
        Ok(ProcessIo {
            spec: spec.clone(),
            stdin,
            console: None,
            output,
        })
    }

    /// Copy between the fifos and a pty master received from the runtime.
    pub fn start_console(spec: &StdioSpec, master: OwnedFd) -> Result<ProcessIo> {
        let output = Arc::new(Pending::default());
        let master = File::from(master);
        let stdin = Arc::new(Mutex::new(None));
        if !spec.stdin.is_empty() {
            *stdin.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(master.try_clone().context("dup pty master")?);
            copy_stdin(spec.stdin.clone(), stdin.clone())?;
        }
        if let Some(dst) = open_sink(&sink(&spec.stdout)?)? {
            copy_out(master.try_clone().context("dup pty master")?, dst, &output)?;
        }
        Ok(ProcessIo {
            spec: spec.clone(),
            stdin,
            console: Some(master),
            output,
        })
    }

    /// A handle to wait (see [`Drain::wait`]) until the output has been
    /// copied to the end, usable without holding the process record.
    pub fn drain(&self) -> Drain {
        Drain(self.output.clone())
    }

    /// CloseIO: the process sees end of file on stdin.
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
        // A copier still blocked opening the fifo (no writer ever came)
        // would hold nothing; a writer of our own lets its open return.
        if !self.spec.stdin.is_empty() {
            let _ = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.spec.stdin);
        }
    }

    /// ResizePty.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let Some(master) = &self.console else {
            return Err(crate::err_kind!(
                FailedPrecondition,
                "resize: the process has no terminal"
            ));
        };
        crate::sys::pty::set_size(
            master,
            height.min(u16::MAX as u32) as u16,
            width.min(u16::MAX as u32) as u16,
        )
    }
}

impl Drop for ProcessIo {
    fn drop(&mut self) {
        self.close_stdin();
    }
}

fn spawn_copier(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(super::SMALL_STACK)
        .spawn(f)
        .map(drop)
        .map_err(|e| Error::from(e).wrap("start a stdio copier"))
}

/// fifo → process stdin, until the fifo's writers are gone or CloseIO.
fn copy_stdin(fifo: String, dst: Arc<Mutex<Option<File>>>) -> Result<()> {
    spawn_copier("stdin", move || {
        // Blocks until containerd opens its end (or close_stdin does).
        let Ok(src) = File::open(&fifo) else {
            return;
        };
        // Wait for data before taking the lock, so CloseIO never waits
        // on a copier blocked in a read.
        while wait_readable(&src) {
            let guard = dst.lock().unwrap_or_else(|e| e.into_inner());
            let Some(out) = guard.as_ref() else {
                return;
            };
            let how = Copy::between(&src, out);
            match copy_some(&src, out, how) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // EOF on the fifo: the process sees EOF too.
        dst.lock().unwrap_or_else(|e| e.into_inner()).take();
    })
}

/// Open an output destination. A fifo is opened read-write: that never
/// waits for a reader, and writes never fail with EPIPE while containerd is
/// away (restarting); they wait until it reads again.
fn open_sink(to: &Sink) -> Result<Option<File>> {
    Ok(Some(match to {
        Sink::None => return Ok(None),
        Sink::Binary(uri) => {
            return Err(crate::err_kind!(
                InvalidArgument,
                "stdio {uri}: a logger binary needs pipes, not a terminal"
            ))
        }
        Sink::Fifo(path) => OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("open stdio fifo {path}"))?,
        Sink::File(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open log file {path}"))?,
    }))
}

/// process output → destination, to the end; then mark it finished.
fn copy_out(src: File, dst: File, pending: &Arc<Pending>) -> Result<()> {
    pending.add();
    let pending2 = pending.clone();
    let how = Copy::between(&src, &dst);
    let started = spawn_copier("stdout", move || {
        while let Ok(n) = copy_some(&src, &dst, how) {
            if n == 0 {
                break;
            }
        }
        drop(dst);
        pending2.finish();
    });
    if started.is_err() {
        pending.finish();
    }
    started
}

fn wait_readable(f: &File) -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(f, PollFlags::IN)];
    loop {
        match poll(&mut fds, None) {
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

/// How a copier moves data.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Copy {
    /// splice(2): no copy through user memory, no buffer to hold.
    Splice,
    /// read(2) and write(2) through a small buffer.
    ReadWrite,
}

fn is_pipe(f: &File) -> bool {
    rustix::fs::fstat(f).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
    })
}

impl Copy {
    /// Splice only from a pipe to a pipe: there the kernel waits for data
    /// and for room with both pipes unlocked. From anything else (a pty
    /// master) splice waits for input holding the destination pipe's lock,
    /// so containerd's read of the fifo blocks and what is already in it
    /// (a shell's prompt) never comes out; into anything else it holds the
    /// source pipe locked while the destination is slow.
    fn between(src: &File, dst: &File) -> Copy {
        if is_pipe(src) && is_pipe(dst) {
            Copy::Splice
        } else {
            Copy::ReadWrite
        }
    }
}

/// Move what is there from `src` to `dst`, `how` [`Copy::between`] chose.
/// Ok(0) at end of file; a pty master's EIO (no slave left) is end of file.
fn copy_some(src: &File, dst: &File, how: Copy) -> std::io::Result<usize> {
    use rustix::pipe::{splice, SpliceFlags};
    if how == Copy::Splice {
        match splice(
            src.as_fd(),
            None,
            dst.as_fd(),
            None,
            1 << 16,
            SpliceFlags::MOVE,
        ) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INVAL) => {}
            Err(rustix::io::Errno::INTR) => return Ok(1),
            Err(e) => return Err(e.into()),
        }
    }
    let mut buf = [0u8; 4096];
    let n = match rustix::io::read(src, &mut buf) {
        Ok(n) => n,
        Err(rustix::io::Errno::IO) => 0,
        Err(rustix::io::Errno::INTR) => return Ok(1),
        Err(e) => return Err(e.into()),
    };
    let mut done = 0;
    while done < n {
        match rustix::io::write(dst, &buf[done..n]) {
            Ok(w) => done += w,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_pick_a_sink() {
        assert_eq!(sink("").unwrap(), Sink::None);
        assert_eq!(
            sink("/run/x/c-stdout").unwrap(),
            Sink::Fifo("/run/x/c-stdout".into())
        );
        assert_eq!(
            sink("file:///var/log/c.log").unwrap(),
            Sink::File("/var/log/c.log".into())
        );
        assert_eq!(
            sink("binary:///usr/bin/logger?x=1").unwrap(),
            Sink::Binary("binary:///usr/bin/logger?x=1".into())
        );
        let e = sink("http://x/y").unwrap_err();
        assert!(e.message().contains("http://"), "{e}");
    }
}
