//! Running a created process as ctr does: its stdio through client-made
//! fifos, the terminal in raw mode and sized, signals forwarded, the exit
//! status waited for.

use super::client::Conn;
use super::signals::Signals;
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

/// How running a process ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and exited with this status.
    Exited(u32),
    /// It started and we left it running (`--detach`).
    Detached,
    /// A signal cancelled the command before the process started; the
    /// caller undoes what it made.
    Cancelled(i32),
}

/// Start a created process (init when `exec_id` is empty), copy its io,
/// forward signals (through `signals`) and window size, and wait for its
/// exit unless detached.
pub fn run(
    conn: &Conn,
    id: &str,
    exec_id: &str,
    mut io: Stdio,
    detach: bool,
    signals: &Signals,
) -> Result<Outcome> {
    let terminal = io.paths.2.is_empty() && !io.paths.1.is_empty();
    if let Some(sig) = signals.cancelled() {
        io.remove();
        return Ok(Outcome::Cancelled(sig));
    }
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
            let _ = tx.send(objects::wait_task(&conn, &id, &exec_id));
        });
    }
    // The pty exists once the process is created: size it before it
    // runs, so its first look at the window sees ours (ctr resizes after
    // Start, which leaves a moment of 0x0).
    if terminal {
        resize(conn, id, exec_id);
    }
    // The last moment a ^C still cancels: Start is the point of no return.
    if let Some(sig) = signals.cancelled() {
        drop(raw);
        drop(attaches);
        io.remove();
        return Ok(Outcome::Cancelled(sig));
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
        // The fifos stay: the shim holds them, `tasks attach` opens them
        // again, and deleting the task removes them.
        return Ok(Outcome::Detached);
    }
    signals.forward_to(conn, id, exec_id, terminal);
    if terminal {
        resize(conn, id, exec_id);
    }
    let status = rx
        .recv()
        .unwrap_or_else(|_| Err(crate::error::Error::new("wait: the waiter went away")));
    for h in copiers {
        let _ = h.join();
    }
    drop(raw);
    io.remove();
    status.map(Outcome::Exited)
}

/// Delete a task this command created and ran (`run`): Tasks.Delete
/// alone, since the command removes its own fifos
/// ([`Stdio::remove`]) and needs no look-up of them first.
pub fn delete_own_task(conn: &Conn, id: &str) -> Result<tasks::DeleteResponse> {
    let r: tasks::DeleteResponse = conn.call(
        tasks::SERVICE,
        "Delete",
        &tasks::DeleteTaskRequest {
            container_id: id.to_string(),
        },
    )?;
    Ok(r)
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

/// `tasks attach`: copy our stdio through the fifos the task's creator
/// made (a `run -d` leaves them for this), forward signals, wait for the
/// exit. A task started with null io has no fifos: ctr then just waits.
pub fn attach(
    conn: &Conn,
    id: &str,
    task: &tasks::Process,
    terminal: bool,
    signals: &Signals,
) -> Result<u32> {
    let mut copiers = Vec::new();
    for (path, to_stderr) in [(&task.stdout, false), (&task.stderr, true)] {
        if path.is_empty() {
            continue;
        }
        let fifo = cio::OutputFifo::open(path)?;
        // The shim holds its write end already: no placeholder needed.
        let (h, _) = if to_stderr {
            fifo.copy_to(Box::new(std::io::stderr()) as Box<dyn std::io::Write + Send>)
        } else {
            fifo.copy_to(Box::new(std::io::stdout()) as Box<dyn std::io::Write + Send>)
        };
        copiers.push(h);
    }
    let raw = if terminal {
        term::RawMode::stdin()
    } else {
        None
    };
    if !task.stdin.is_empty() {
        // As ctr's attach: our stdin goes in; its end closes the fifo only.
        cio::copy_stdin(task.stdin.clone(), std::io::stdin(), || {});
    }
    // As ctr's attach: with a terminal, signals are not forwarded (the
    // keyboard's ^C reaches the task through the terminal); without one,
    // all are.
    if terminal {
        signals.resize_only(conn, id, "");
        resize(conn, id, "");
    } else {
        signals.forward_to(conn, id, "", false);
    }
    let status = objects::wait_task(conn, id, "");
    for h in copiers {
        let _ = h.join();
    }
    drop(raw);
    status
}
