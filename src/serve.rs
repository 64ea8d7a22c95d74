//! What the ttrpc and the gRPC servers share: the accept loop on a Unix
//! socket (peer check, connection cap, shutdown wake-up), the counts of
//! connection readers and calls in flight that shutdown waits on, and the
//! handle that stops a `serve`. Each server keeps its own protocol and
//! its own limits.

use crate::ttrpc::{lock, peer_cred, wait_for};
use rustix::event::{eventfd, EventfdFlags, PollFd, PollFlags};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Makes a running `serve` (ttrpc or gRPC) return.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<Signal>);

struct Signal {
    requested: AtomicBool,
    /// The eventfd a serving loop polls; None while not serving.
    wake: Mutex<Option<Arc<OwnedFd>>>,
}

impl ShutdownHandle {
    pub(crate) fn new() -> ShutdownHandle {
        ShutdownHandle(Arc::new(Signal {
            requested: AtomicBool::new(false),
            wake: Mutex::new(None),
        }))
    }

    /// Stop accepting, let calls in flight finish (briefly), close every
    /// connection; `serve` then returns. Callable from a handler (its
    /// answer still goes out).
    pub fn shutdown(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        if let Some(fd) = lock(&self.0.wake).as_ref() {
            let _ = rustix::io::write(&**fd, &1u64.to_ne_bytes());
        }
    }

    pub fn is_shutdown(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }
}

/// Which peers may talk (SO_PEERCRED): None = any uid / gid.
#[derive(Clone, Copy, Default)]
pub(crate) struct AllowedPeer {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl AllowedPeer {
    fn admits(&self, stream: &UnixStream) -> bool {
        if self.uid.is_none() && self.gid.is_none() {
            return true;
        }
        let Ok((uid, gid)) = peer_cred(stream) else {
            return false;
        };
        self.uid.is_none_or(|u| u == uid) && self.gid.is_none_or(|g| g == gid)
    }
}

/// How a server accepts.
pub(crate) struct AcceptRules {
    pub peer: AllowedPeer,
    /// Connections served at once (each holds a reader thread); more are
    /// closed as they are accepted.
    pub max_connections: usize,
}

/// Accept on `listener` until `shutdown` fires, handing each connection
/// the rules admit to `start` (which runs it on a reader thread counted
/// in `load`). Returns with the listener still open: the caller closes
/// it before it winds its connections down.
pub(crate) fn accept_until_shutdown(
    listener: &UnixListener,
    shutdown: &ShutdownHandle,
    rules: &AcceptRules,
    load: &Load,
    start: &mut dyn FnMut(UnixStream),
) -> io::Result<()> {
    let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
    // Registered before the first look at `requested`: a shutdown from
    // now on is either seen there or wakes the poll.
    *lock(&shutdown.0.wake) = Some(wake.clone());
    let result = accept_loop(listener, shutdown, &wake, rules, load, start);
    *lock(&shutdown.0.wake) = None;
    result
}

fn accept_loop(
    listener: &UnixListener,
    shutdown: &ShutdownHandle,
    wake: &OwnedFd,
    rules: &AcceptRules,
    load: &Load,
    start: &mut dyn FnMut(UnixStream),
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    while !shutdown.is_shutdown() {
        let mut fds = [
            PollFd::new(listener, PollFlags::IN),
            PollFd::new(wake, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if !fds[0].revents().is_empty() {
            accept_pending(listener, rules, load, start)?;
        }
    }
    Ok(())
}

/// Accept what is pending on the non-blocking `listener`: a peer the
/// rules refuse, or one over the connection cap, is closed at once. Out
/// of fds or memory, it waits a little and returns so the caller keeps
/// serving what it has instead of spinning.
fn accept_pending(
    listener: &UnixListener,
    rules: &AcceptRules,
    load: &Load,
    start: &mut dyn FnMut(UnixStream),
) -> io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => match e.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    std::thread::sleep(Duration::from_millis(50));
                    return Ok(());
                }
                _ => return Err(e),
            },
        };
        if load.counts().readers >= rules.max_connections || !rules.peer.admits(&stream) {
            continue; // dropped: closed at once
        }
        start(stream);
    }
}

/// What a serving server has running, for its limits and its shutdown.
#[derive(Default)]
pub(crate) struct Load {
    counts: Mutex<Counts>,
    /// Signalled when a count drops.
    changed: Condvar,
}

#[derive(Default)]
pub(crate) struct Counts {
    /// Calls being handled or answered, over all connections.
    pub in_flight: usize,
    /// Connection reader threads still running.
    pub readers: usize,
}

impl Load {
    pub fn counts(&self) -> MutexGuard<'_, Counts> {
        lock(&self.counts)
    }

    /// Wait until `done` holds for the counts, at most `limit`.
    pub fn wait_until(&self, limit: Duration, mut done: impl FnMut(&Counts) -> bool) {
        let deadline = Some(Instant::now() + limit);
        wait_for(&self.counts, &self.changed, deadline, |c| {
            done(c).then_some(())
        });
    }

    /// Count one more call in flight, unless `max` are: the guard counts
    /// it until dropped (also when its thread could not start or unwinds).
    pub fn start_call(self: &Arc<Self>, max: usize) -> Option<CallGuard> {
        let mut counts = self.counts();
        if counts.in_flight >= max {
            return None;
        }
        counts.in_flight += 1;
        Some(CallGuard(self.clone()))
    }

    /// Run a connection's reader on a thread of its own (`stack` bytes),
    /// counted in `readers` until it returns; Err if no thread could be
    /// had (the connection is then the caller's to close).
    pub fn spawn_reader(
        self: &Arc<Self>,
        name: &str,
        stack: usize,
        read: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        self.counts().readers += 1;
        let guard = ReaderGuard(self.clone());
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .stack_size(stack)
            .spawn(move || {
                read();
                drop(guard);
            });
        // On failure the closure, and with it the guard, is dropped.
        spawned.map(drop)
    }
}

/// One call counted in flight.
pub(crate) struct CallGuard(Arc<Load>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.counts().in_flight -= 1;
        self.0.changed.notify_all();
    }
}

/// One reader thread counted as running.
struct ReaderGuard(Arc<Load>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.counts().readers -= 1;
        self.0.changed.notify_all();
    }
}
