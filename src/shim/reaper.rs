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
    /// Exits not yet claimed, by pid (with the sequence number of their
    /// recording), and their order for trimming.
    unclaimed: HashMap<Pid, (u64, Reaped)>,
    /// Exits recorded so far.
    seq: u64,
    order: VecDeque<Pid>,
    /// Callbacks for pids someone watches.
    watchers: HashMap<Pid, Watcher>,
    /// Pids a caller blocks on in [`Reaper::wait`]: their exits are kept
    /// however many others come.
    awaited: HashMap<Pid, usize>,
    /// Bumped after every spawn, so a reaper that found no children knows
    /// when to look again.
    spawned: u64,
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
    /// belongs to the reaper; use [`Reaper::wait`].
    ///
    /// The lock is held across the spawn: an exit recorded for the new
    /// pid before then belongs to an earlier process that had the same
    /// pid (pids wrap around) and is dropped, and the new child's own exit
    /// cannot be recorded until that is done.
    pub fn spawn(&self, cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
        let mut st = self.lock();
        let child = cmd.spawn();
        if let Ok(c) = &child {
            st.unclaimed.remove(&(c.id() as Pid));
        }
        st.spawned += 1;
        self.inner.changed.notify_all();
        child
    }

    /// Now, in the reaper's history. A process whose pid is learned later
    /// (from a pid file) is watched with a mark taken before it could
    /// exist, so an older exit of the same pid is not taken for its own.
    pub fn mark(&self) -> Mark {
        Mark(self.lock().seq)
    }

    /// Block until `pid` (a child we spawned) has exited; return its exit.
    pub fn wait(&self, pid: Pid) -> Reaped {
        let mut st = self.lock();
        *st.awaited.entry(pid).or_default() += 1;
        loop {
            if let Some((_, r)) = st.unclaimed.remove(&pid) {
                st.order.retain(|p| *p != pid);
                if let Some(n) = st.awaited.get_mut(&pid) {
                    *n -= 1;
                    if *n == 0 {
                        st.awaited.remove(&pid);
                    }
                }
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
        if let Some((seq, r)) = st.unclaimed.remove(&pid) {
            st.order.retain(|p| *p != pid);
            if seq >= since.0 {
                drop(st);
                on_exit(r);
                return;
            }
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
    if let Some(watcher) = st.watchers.remove(&pid) {
        drop(st);
        watcher(reaped);
        return;
    }
    st.unclaimed.insert(pid, (seq, reaped));
    st.order.retain(|p| *p != pid);
    st.order.push_back(pid);
    // Forget the oldest exits nobody waits for.
    while st.order.len() > UNCLAIMED_KEPT {
        let Some(pos) = st.order.iter().position(|p| !st.awaited.contains_key(p)) else {
            break;
        };
        if let Some(old) = st.order.remove(pos) {
            st.unclaimed.remove(&old);
        }
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
        assert_eq!(r.wait(child.id() as Pid).exit, Exit::Code(7));
        // A watcher hears of a death by signal.
        let child = r.spawn(Command::new("sleep").arg("100")).unwrap();
        let pid = child.id() as Pid;
        let (tx, rx) = mpsc::channel();
        r.watch(pid, r.mark(), move |re| tx.send(re.exit).unwrap());
        crate::sys::process::kill(pid, libc::SIGKILL).unwrap();
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got, Exit::Signal(libc::SIGKILL));
        // An exit recorded before a mark is not taken for a later process
        // of the same pid.
        let child = r.spawn(&mut Command::new("true")).unwrap();
        let pid = child.id() as Pid;
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
        assert_eq!(r.wait(child.id() as Pid).exit, Exit::Code(0));
    }
}
