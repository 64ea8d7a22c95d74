//! The one place that reaps children. The shim is a child subreaper, so
//! every process of its containers ends up its child; one thread waits in
//! waitpid(-1) and records every exit. Whoever needs an exit (a runtime
//! subprocess's caller, a container process's record) asks the reaper for
//! it instead of calling waitpid itself: two waiters racing for the same
//! child would lose exit statuses (the Go shim's old bug class).

use crate::sys::process::{Exit, Pid};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

/// How many exits nobody asked for are kept (orphans reparented to us,
/// processes whose pid was not known yet when they exited).
const UNCLAIMED_KEPT: usize = 256;

/// An exit as the reaper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub exit: Exit,
    pub at: SystemTime,
}

type Watcher = Box<dyn FnOnce(Reaped) + Send>;

/// A point in the reaper's history: exits recorded before it belong to
/// processes that ended before it (see [`Reaper::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark(u64);

#[derive(Default)]
struct State {
    /// Exits not yet claimed, in the order they were recorded, each with
    /// its sequence number: a pid may appear more than once (pids wrap
    /// around), and the sequence tells whose exit it is.
    exits: VecDeque<(u64, Pid, Reaped)>,
    /// Exits recorded so far.
    seq: u64,
    /// Callbacks for pids someone watches.
    watchers: HashMap<Pid, Watcher>,
    /// Children spawned and not yet waited for: their pid and the mark of
    /// their spawn. Their exits are kept however many others come.
    awaited: HashMap<Pid, Vec<u64>>,
    /// Bumped after every spawn, so a reaper that found no children knows
    /// when to look again.
    spawned: u64,
}

impl State {
    /// The first exit of `pid` recorded at or after `since`.
    fn take(&mut self, pid: Pid, since: u64) -> Option<Reaped> {
        let i = self
            .exits
            .iter()
            .position(|(seq, p, _)| *p == pid && *seq >= since)?;
        self.exits.remove(i).map(|(_, _, r)| r)
    }

    /// Someone will claim this exit: it must not be trimmed.
    fn is_awaited(&self, pid: Pid, seq: u64) -> bool {
        self.awaited
            .get(&pid)
            .is_some_and(|marks| marks.iter().any(|m| seq >= *m))
    }

    /// The spawn marked `since` of `pid` is claimed (or taken over by a
    /// watcher): forget it.
    fn unawait(&mut self, pid: Pid, since: u64) {
        if let Some(marks) = self.awaited.get_mut(&pid) {
            marks.retain(|m| *m != since);
            if marks.is_empty() {
                self.awaited.remove(&pid);
            }
        }
    }
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
}

/// A handle on the reaper thread; clones share it.
#[derive(Clone)]
pub struct Reaper {
    inner: Arc<Inner>,
}

/// A child spawned through the reaper, with the point in the reaper's
/// history where it began: only an exit recorded after that is its own.
pub struct Spawned {
    pub child: std::process::Child,
    pub since: Mark,
}

impl Spawned {
    pub fn pid(&self) -> Pid {
        self.child.id() as Pid
    }
}

impl Reaper {
    /// Start the reaping thread. The caller (the applet) has made this
    /// process a child subreaper if it wants orphans too.
    pub fn start() -> std::io::Result<Reaper> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let worker = inner.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .stack_size(super::SMALL_STACK)
            .spawn(move || reap_forever(&worker))?;
        Ok(Reaper { inner })
    }

    /// Spawn a command. Never call `Child::wait` on the result: its exit
    /// belongs to the reaper; use [`Reaper::wait`] (or [`Reaper::watch`]
    /// with its mark).
    ///
    /// The lock is held across the spawn, so the child's exit cannot be
    /// recorded before its mark and its claim are: an earlier process of
    /// the same pid keeps its exit for whoever claims that one.
    pub fn spawn(&self, cmd: &mut std::process::Command) -> std::io::Result<Spawned> {
        let mut st = self.lock();
        let since = st.seq;
        let child = cmd.spawn()?;
        st.awaited.entry(child.id() as Pid).or_default().push(since);
        st.spawned += 1;
        self.inner.changed.notify_all();
        Ok(Spawned {
            child,
            since: Mark(since),
        })
    }

    /// Now, in the reaper's history. A process whose pid is learned later
    /// (from a pid file) is watched with a mark taken before it could
    /// exist, so an older exit of the same pid is not taken for its own.
    pub fn mark(&self) -> Mark {
        Mark(self.lock().seq)
    }

    /// Block until `child` has exited; return its exit.
    pub fn wait(&self, child: &Spawned) -> Reaped {
        let (pid, since) = (child.pid(), child.since.0);
        let mut st = self.lock();
        loop {
            if let Some(r) = st.take(pid, since) {
                st.unawait(pid, since);
                return r;
            }
            st = self
                .inner
                .changed
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Call `on_exit` (on the reaper's thread: keep it short) when `pid`
    /// exits, or at once if its exit was reaped after `since`.
    pub fn watch(&self, pid: Pid, since: Mark, on_exit: impl FnOnce(Reaped) + Send + 'static) {
        let mut st = self.lock();
        // A child we spawned and now watch is no longer awaited.
        if let Some(marks) = st.awaited.get(&pid).cloned() {
            for m in marks.into_iter().filter(|m| *m >= since.0) {
                st.unawait(pid, m);
            }
        }
        if let Some(r) = st.take(pid, since.0) {
            drop(st);
            on_exit(r);
            return;
        }
        st.watchers.insert(pid, Box::new(on_exit));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn reap_forever(inner: &Inner) {
    use rustix::io::Errno;
    use rustix::process::{wait, WaitOptions};
    loop {
        let seen = inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawned;
        match wait(WaitOptions::empty()) {
            Ok(Some((pid, status))) => {
                let exit = match status.terminating_signal() {
                    Some(sig) => Exit::Signal(sig),
                    None => Exit::Code(status.exit_status().unwrap_or(0)),
                };
                record(inner, pid.as_raw_nonzero().get(), exit);
            }
            Ok(None) | Err(Errno::INTR) => {}
            Err(_) => {
                // No children: sleep until something is spawned.
                let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                while st.spawned == seen {
                    st = inner.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

fn record(inner: &Inner, pid: Pid, exit: Exit) {
    let reaped = Reaped {
        exit,
        at: SystemTime::now(),
    };
    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    let seq = st.seq;
    st.seq += 1;
    // A watched pid is a process that is (was) alive with it: no spawned
    // child can hold that pid meanwhile, so the exit is the watched one's.
    if let Some(watcher) = st.watchers.remove(&pid) {
        drop(st);
        watcher(reaped);
        return;
    }
    st.exits.push_back((seq, pid, reaped));
    // Forget the oldest exits nobody waits for.
    while st.exits.len() > UNCLAIMED_KEPT {
        let Some(pos) = st
            .exits
            .iter()
            .position(|(seq, p, _)| !st.is_awaited(*p, *seq))
        else {
            break;
        };
        st.exits.remove(pos);
    }
    inner.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::mpsc;
    use std::time::Duration;

    // A reaper steals every child of its process, which would break the
    // other unit tests' own waits: the checks run in a test process of
    // their own (this test binary, re-run for one test).
    #[test]
    fn reaper_in_its_own_process() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "shim::reaper::tests::checks", "--nocapture"])
            .env("SKIFF_REAPER_CHECKS", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "{text}");
    }

    /// Pid reuse: an exec's exit (pid 100) recorded before a runtime
    /// subprocess got pid 100 stays the exec's, the subprocess gets only
    /// its own, and an awaited exit survives trimming.
    #[test]
    fn exits_of_a_reused_pid_go_to_their_owners() {
        let reaped = |code| Reaped {
            exit: Exit::Code(code),
            at: SystemTime::UNIX_EPOCH,
        };
        let mut st = State::default();
        let exec_mark = 3;
        st.exits.push_back((5, 100, reaped(9)));
        // The subprocess is spawned at seq 6 with the same pid.
        st.awaited.insert(100, vec![6]);
        st.exits.push_back((7, 100, reaped(0)));
        for i in 0..UNCLAIMED_KEPT as u64 {
            st.exits.push_back((8 + i, 200 + i as Pid, reaped(1)));
        }
        assert!(st.is_awaited(100, 7) && !st.is_awaited(100, 5));
        assert_eq!(st.take(100, 6), Some(reaped(0)));
        st.unawait(100, 6);
        assert!(st.awaited.is_empty());
        assert_eq!(st.take(100, exec_mark), Some(reaped(9)));
        assert_eq!(st.take(100, exec_mark), None);
    }

    #[test]
    // The reaper waits for these children, not `Child::wait`.
    #[allow(clippy::zombie_processes)]
    fn checks() {
        if std::env::var_os("SKIFF_REAPER_CHECKS").is_none() {
            return;
        }
        let r = Reaper::start().unwrap();
        // An exit reaped before anyone asked is kept for the asker.
        let child = r.spawn(Command::new("sh").args(["-c", "exit 7"])).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(r.wait(&child).exit, Exit::Code(7));
        // A watcher hears of a death by signal.
        let child = r.spawn(Command::new("sleep").arg("100")).unwrap();
        let pid = child.pid();
        let (tx, rx) = mpsc::channel();
        r.watch(pid, r.mark(), move |re| tx.send(re.exit).unwrap());
        crate::sys::process::kill(pid, libc::SIGKILL).unwrap();
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got, Exit::Signal(libc::SIGKILL));
        // An exit recorded before a mark is not taken for a later process
        // of the same pid.
        let child = r.spawn(&mut Command::new("true")).unwrap();
        let pid = child.pid();
        std::thread::sleep(Duration::from_millis(50));
        let (tx, rx) = mpsc::channel();
        r.watch(pid, r.mark(), move |re| tx.send(re.exit).unwrap());
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "a stale exit was reported"
        );
        // After a time with no children at all, a new spawn is still reaped.
        std::thread::sleep(Duration::from_millis(50));
        let child = r.spawn(&mut Command::new("true")).unwrap();
        assert_eq!(r.wait(&child).exit, Exit::Code(0));
    }
}
