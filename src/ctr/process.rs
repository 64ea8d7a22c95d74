//! Running a created process as ctr does: its stdio through client-made
//! fifos, the terminal in raw mode and sized, signals forwarded, the exit
//! status waited for.

use super::client::Conn;
use super::{cio, objects, term};
use crate::error::Result;
use crate::proto::services::tasks;
use crate::proto::types::Empty;
use crate::ttrpc::Status;

/// The stdio of a process being created: fifos the client made (or none,
/// for null io), opened for reading before the shim opens them.
pub struct Stdio {
    /// stdin, stdout, stderr paths for Create/Exec (empty for null io;
    /// no stderr with a terminal).
    pub paths: (String, String, String),
    fifos: Option<cio::FifoSet>,
    out: Option<cio::OutputFifo>,
    err: Option<cio::OutputFifo>,
}

impl Stdio {
    pub fn new(
        id: &str,
        exec_id: &str,
        terminal: bool,
        null_io: bool,
        fifo_dir: Option<&str>,
    ) -> Result<Stdio> {
        if null_io {
            return Ok(Stdio {
                paths: Default::default(),
                fifos: None,
                out: None,
                err: None,
            });
        }
        let name = if exec_id.is_empty() { id } else { exec_id };
        let set = cio::FifoSet::create(fifo_dir.unwrap_or(cio::FIFO_ROOT), name, terminal)?;
        let opened = (|| -> Result<_> {
            let out = cio::OutputFifo::open(&set.stdout)?;
            let err = if set.stderr.is_empty() {
                None
            } else {
                Some(cio::OutputFifo::open(&set.stderr)?)
            };
            Ok((out, err))
        })();
        let (out, err) = match opened {
            Ok(x) => x,
            Err(e) => {
                set.remove();
                return Err(e);
            }
        };
        Ok(Stdio {
            paths: (set.stdin.clone(), set.stdout.clone(), set.stderr.clone()),
            fifos: Some(set),
            out: Some(out),
            err,
        })
    }

    /// Remove the fifos (the process was never created, or is done).
    pub fn remove(&self) {
        if let Some(f) = &self.fifos {
            f.remove();
        }
    }
}

/// For an attached process: block every signal before any thread exists
/// (the connection's reader included), so they all wait for the thread
/// that forwards them (SIGWINCH resizes) instead of killing ctr.
pub fn take_signals(detach: bool) -> Result<Option<crate::sys::signal::Mask>> {
    if detach {
        return Ok(None);
    }
    crate::sys::signal::block_all().map(Some)
}

/// Start a created process (init when `exec_id` is empty), copy its io,
/// forward signals and window size, wait and return its exit status
/// (0 when detached).
pub fn run(
    conn: &Conn,
    id: &str,
    exec_id: &str,
    mut io: Stdio,
    detach: bool,
    mask: Option<crate::sys::signal::Mask>,
) -> Result<u32> {
    let terminal = io.paths.2.is_empty() && !io.paths.1.is_empty();
    let mut copiers = Vec::new();
    let mut attaches = Vec::new();
    if let Some(out) = io.out.take() {
        let (h, a) = out.copy_to(std::io::stdout());
        copiers.push(h);
        attaches.push(a);
    }
    if let Some(err) = io.err.take() {
        let (h, a) = err.copy_to(std::io::stderr());
        copiers.push(h);
        attaches.push(a);
    }
    let raw = if terminal && !detach {
        term::RawMode::stdin()
    } else {
        None
    };
    if !io.paths.0.is_empty() && !detach {
        let closer = stdin_closer(conn, id, exec_id);
        cio::copy_stdin(io.paths.0.clone(), std::io::stdin(), closer);
    }
    // Wait before Start, so the exit cannot be missed.
    let (tx, rx) = std::sync::mpsc::channel();
    if !detach {
        let (conn, id, exec_id) = (conn.clone(), id.to_string(), exec_id.to_string());
        std::thread::spawn(move || {
            let r = objects::wait_task(&conn, &id, &exec_id);
            let _ = tx.send(r);
            // Wake the signal loop.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::CHILD,
            );
        });
    }
    // The pty exists once the process is created: size it before it
    // runs, so its first look at the window sees ours (ctr resizes after
    // Start, which leaves a moment of 0x0).
    if terminal {
        resize(conn, id, exec_id);
    }
    let started: std::result::Result<tasks::StartResponse, Status> = conn.call(
        tasks::SERVICE,
        "Start",
        &tasks::StartRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        },
    );
    drop(attaches);
    if let Err(s) = started {
        drop(raw);
        io.remove();
        return Err(s.into());
    }
    if detach {
        return Ok(0);
    }
    if terminal {
        resize(conn, id, exec_id);
    }
    let status = loop {
        if let Ok(r) = rx.try_recv() {
            break r;
        }
        match crate::sys::signal::wait_any() {
            libc::SIGWINCH if terminal => resize(conn, id, exec_id),
            libc::SIGCHLD | libc::SIGWINCH | libc::SIGPIPE => {}
            sig => kill(conn, id, exec_id, sig),
        }
    };
    for h in copiers {
        let _ = h.join();
    }
    drop(raw);
    if let Some(m) = mask {
        let _ = crate::sys::signal::restore(&m);
    }
    io.remove();
    status
}

fn kill(conn: &Conn, id: &str, exec_id: &str, sig: i32) {
    let _: std::result::Result<Empty, Status> = conn.call(
        tasks::SERVICE,
        "Kill",
        &tasks::KillRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            signal: sig as u32,
            all: false,
        },
    );
}

/// What runs when our stdin ends: CloseIO, so the process sees end-of-file.
fn stdin_closer(conn: &Conn, id: &str, exec_id: &str) -> impl FnOnce() + Send + 'static {
    let (conn, id, exec_id) = (conn.clone(), id.to_string(), exec_id.to_string());
    move || {
        let _: std::result::Result<Empty, Status> = conn.call(
            tasks::SERVICE,
            "CloseIO",
            &tasks::CloseIoRequest {
                container_id: id,
                exec_id,
                stdin: true,
            },
        );
    }
}

/// Give the process's pty our window size.
pub fn resize(conn: &Conn, id: &str, exec_id: &str) {
    if let Some((width, height)) = term::window_size() {
        let _: std::result::Result<Empty, Status> = conn.call(
            tasks::SERVICE,
            "ResizePty",
            &tasks::ResizePtyRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                width,
                height,
            },
        );
    }
}
