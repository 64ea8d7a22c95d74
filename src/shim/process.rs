//! The record of one process of a container (its init or an exec): what
//! state it is in, its pid, how and when it ended, its stdio. Handlers and
//! the exit path meet here; waiters sleep on the condition variable.

use super::stdio::{ProcessIo, StdioSpec};
use crate::sys::process::Pid;
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Made (init: `create` done; exec: only recorded), not started.
    Created,
    Running,
    Paused,
    Stopped,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub status: u32,
    pub at: SystemTime,
}

pub struct State {
    pub status: Status,
    pub pid: Pid,
    pub ended: Option<Ended>,
    pub io: Option<ProcessIo>,
    /// An exec's OCI process JSON, until it is started.
    pub exec_spec: Option<Vec<u8>>,
}

pub struct Process {
    /// Empty for the init.
    pub exec_id: String,
    pub stdio: StdioSpec,
    /// Set by the reaper the moment the process is reaped (before its exit
    /// is reported): its pid may belong to someone else from then on.
    /// Atomic, as the reaper must never wait for the record's lock.
    pub reaped: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioSpec) -> Process {
        Process {
            exec_id: exec_id.to_string(),
            stdio,
            reaped: AtomicBool::new(false),
            state: Mutex::new(State {
                status: Status::Created,
                pid: 0,
                ended: None,
                io: None,
                exec_spec: None,
            }),
            changed: Condvar::new(),
        }
    }

    pub fn is_init(&self) -> bool {
        self.exec_id.is_empty()
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record, if nobody holds it right now.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, State>> {
        match self.state.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Wake everyone waiting on this process (after changing its state).
    pub fn notify(&self) {
        self.changed.notify_all();
    }

    /// The record once no start is under way: an exec whose spec was
    /// taken by Start but which has no pid yet is being started, and a
    /// Kill then waits for the outcome (as the runc shim's exec lock makes
    /// it), bounded by `limit`.
    pub fn settled(&self, limit: std::time::Duration) -> MutexGuard<'_, State> {
        let deadline = std::time::Instant::now() + limit;
        let mut st = self.lock();
        loop {
            let starting =
                st.status == Status::Created && st.exec_spec.is_none() && st.ended.is_none();
            let now = std::time::Instant::now();
            if self.is_init() || !starting || now >= deadline {
                return st;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Block until the process has ended, or (None) until `gone` says
    /// nobody waits any more, noticed within a second: a Wait whose caller
    /// went away (containerd restarted) does not keep its thread until the
    /// process ends.
    pub fn wait(&self, gone: impl Fn() -> bool) -> Option<Ended> {
        let mut st = self.lock();
        loop {
            if let Some(e) = st.ended {
                return Some(e);
            }
            if gone() {
                return None;
            }
            st = self
                .changed
                .wait_timeout(st, std::time::Duration::from_secs(1))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
