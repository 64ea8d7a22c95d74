//! Signals while ctr runs a process, as containerd's ctr treats them:
//! until the task exists and is started, a terminating signal (^C)
//! cancels the command, and the caller undoes what it made; once the task
//! runs, every signal is forwarded to it (SIGWINCH resizes its terminal).
//! Attached to a task with a terminal, ctr forwards nothing: SIGWINCH
//! resizes, and a terminating signal ends ctr as it would end Go's ctr
//! (the task keeps running; ^C reaches it through the terminal).
//!
//! All signals are blocked before the first thread starts and taken by
//! one thread of ours with sigwait, so none can land on a connection
//! thread and kill ctr, and none sits pending until a forwarder exists
//! (which is how a ^C during an unpack used to reach the container later).

use super::client::Conn;
use super::process;
use crate::error::Result;
use crate::proto::services::tasks;
use crate::proto::types::Empty;
use crate::ttrpc::Status;
use std::sync::{Arc, Mutex};

/// Signals that cancel a command still setting up (they would end Go's
/// ctr by default).
const CANCELLING: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Where a signal goes now.
enum Phase {
    /// Setting up: the first cancelling signal is kept for the caller.
    Setup { caught: Option<i32> },
    /// The process runs: signals go to it.
    Forward(Target),
}

#[derive(Clone)]
struct Target {
    conn: Conn,
    id: String,
    exec_id: String,
    terminal: bool,
    /// false: only resize the terminal (ctr's attach with a tty).
    forward: bool,
}

/// The signal thread's state; clones share it.
#[derive(Clone)]
pub struct Signals(Arc<Mutex<Phase>>, fn(i32));

impl Signals {
    /// Block every signal in the calling thread (and so in every thread
    /// started after it: call this before connecting) and handle them on
    /// a thread of their own. `on_repeat` runs when a second cancelling
    /// signal comes before the first was acted on (the user insists: a
    /// caller typically exits there).
    pub fn take_over(on_repeat: fn(i32)) -> Result<Signals> {
        crate::sys::signal::block_all()?;
        let s = Signals(
            Arc::new(Mutex::new(Phase::Setup { caught: None })),
            on_repeat,
        );
        let me = s.clone();
        std::thread::spawn(move || loop {
            let sig = crate::sys::signal::wait_any();
            me.handle(sig, on_repeat);
        });
        Ok(s)
    }

    fn handle(&self, sig: i32, on_repeat: fn(i32)) {
        let target = {
            let mut phase = lock(&self.0);
            match &mut *phase {
                Phase::Setup { caught } => {
                    if CANCELLING.contains(&sig) {
                        if caught.is_some() {
                            drop(phase);
                            on_repeat(sig);
                        } else {
                            *caught = Some(sig);
                        }
                    }
                    return;
                }
                Phase::Forward(t) => t.clone(),
            }
        };
        match sig {
            libc::SIGWINCH if target.terminal => {
                process::resize(&target.conn, &target.id, &target.exec_id)
            }
            libc::SIGCHLD | libc::SIGWINCH | libc::SIGPIPE | libc::SIGURG => {}
            sig if target.forward => kill(&target, sig),
            sig if CANCELLING.contains(&sig) => on_repeat(sig),
            _ => {}
        }
    }

    /// The cancelling signal caught while setting up, if any.
    pub fn cancelled(&self) -> Option<i32> {
        match &*lock(&self.0) {
            Phase::Setup { caught } => *caught,
            Phase::Forward(_) => None,
        }
    }

    /// The process has started: forward from now on. A signal caught in
    /// the meantime is forwarded too (the process exists; it gets it).
    pub fn forward_to(&self, conn: &Conn, id: &str, exec_id: &str, terminal: bool) {
        let target = Target {
            conn: conn.clone(),
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            terminal,
            forward: true,
        };
        let caught = match std::mem::replace(&mut *lock(&self.0), Phase::Forward(target.clone())) {
            Phase::Setup { caught } => caught,
            Phase::Forward(_) => None,
        };
        if let Some(sig) = caught {
            kill(&target, sig);
        }
    }
}

impl Signals {
    /// Attached with a terminal (ctr's `tasks attach` of a tty task):
    /// from now on SIGWINCH resizes the task's terminal and nothing is
    /// forwarded; a terminating signal, also one caught while setting up,
    /// goes to the `on_repeat` of [`Signals::take_over`] (the caller ends).
    pub fn resize_only(&self, conn: &Conn, id: &str, exec_id: &str) {
        let target = Target {
            conn: conn.clone(),
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            terminal: true,
            forward: false,
        };
        let caught = match std::mem::replace(&mut *lock(&self.0), Phase::Forward(target)) {
            Phase::Setup { caught } => caught,
            Phase::Forward(_) => None,
        };
        if let Some(sig) = caught {
            (self.1)(sig);
        }
    }
}

fn lock(m: &Mutex<Phase>) -> std::sync::MutexGuard<'_, Phase> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn kill(t: &Target, sig: i32) {
    let _: std::result::Result<Empty, Status> = t.conn.call(
        tasks::SERVICE,
        "Kill",
        &tasks::KillRequest {
            container_id: t.id.clone(),
            exec_id: t.exec_id.clone(),
            signal: sig as u32,
            all: false,
        },
    );
}
