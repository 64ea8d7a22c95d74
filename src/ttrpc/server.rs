//! The ttrpc server: an accept loop, a reader thread per connection and a
//! thread per request, so a handler that blocks (Wait) holds up nothing
//! else; answers go out as each request finishes, out of order.

use super::addr::{peer_uid, NoSignalWriter};
use super::frame::{
    self, Frame, Header, FLAG_NO_DATA, FLAG_REMOTE_CLOSED, FLAG_REMOTE_OPEN, MAX_DATA, TYPE_DATA,
    TYPE_REQUEST, TYPE_RESPONSE,
};
use super::stream::Inbox;
use super::{lock, take_entry, Code, Service, Status};
use crate::proto::ttrpc::{Request, Response};
use prost::Message;
use rustix::event::{PollFd, PollFlags};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Stack of a connection's reader thread: it only reads frames and decodes
/// the ttrpc envelope.
const READER_STACK: usize = 64 << 10;
/// Default stack of a request's thread (only the pages a handler touches
/// become resident).
const HANDLER_STACK: usize = 256 << 10;
/// Requests one connection may have in flight before further ones are
/// refused with ResourceExhausted (a thread each).
const MAX_IN_FLIGHT_PER_CONN: usize = 512;
/// A peer that does not read its answers for this long is cut off, so a
/// handler never blocks forever on a full socket.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a handler knows of its request besides the payload.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub metadata: Vec<(String, String)>,
    /// When the caller stops waiting (from the request's timeout_nano).
    pub deadline: Option<Instant>,
}

impl RequestContext {
    /// The first value of metadata `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Time left before the deadline (zero once it passed); None = no limit.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// Makes a running [`Server::serve`] return.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<ShutdownSignal>);

struct ShutdownSignal {
    requested: AtomicBool,
    /// The eventfd a serving loop polls; None while not serving.
    wake: Mutex<Option<Arc<OwnedFd>>>,
}

impl ShutdownHandle {
    /// Stop accepting, let in-flight requests finish (briefly), close every
    /// connection; `serve` then returns. Callable from a handler (the
    /// Shutdown request's answer still goes out).
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

pub struct Server {
    services: Vec<(String, Arc<dyn Service>)>,
    allow_uid: Option<u32>,
    handler_stack: usize,
    grace: Duration,
    signal: Arc<ShutdownSignal>,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    pub fn new() -> Server {
        Server {
            services: Vec::new(),
            allow_uid: None,
            handler_stack: HANDLER_STACK,
            grace: Duration::from_secs(1),
            signal: Arc::new(ShutdownSignal {
                requested: AtomicBool::new(false),
                wake: Mutex::new(None),
            }),
        }
    }

    /// Serve `service` under `name` (e.g. "containerd.task.v2.Task").
    pub fn register(&mut self, name: &str, service: Arc<dyn Service>) {
        take_entry(&mut self.services, &name.to_string());
        self.services.push((name.to_string(), service));
    }

    /// Only peers with this uid may talk (SO_PEERCRED); None = anyone.
    /// Others are disconnected at once, as ttrpc's same-user handshake does.
    pub fn allow_uid(&mut self, uid: Option<u32>) {
        self.allow_uid = uid;
    }

    /// Stack size of each request's thread (default 256 KiB).
    pub fn set_handler_stack_size(&mut self, bytes: usize) {
        self.handler_stack = bytes;
    }

    /// How long shutdown waits for in-flight requests (default 1 s).
    pub fn set_shutdown_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.signal.clone())
    }

    /// Serve on `listener` (blocking) until a ShutdownHandle fires; each
    /// connection gets a reader thread, each request a short-lived thread
    /// with a small stack; responses go out through one writer per
    /// connection (out of order as they complete). A server serves once:
    /// after a shutdown, `serve` returns at once. The listener is closed
    /// on return; a socket file stays for the caller to remove.
    pub fn serve(&self, listener: UnixListener) -> io::Result<()> {
        let wake = Arc::new(rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?);
        *lock(&self.signal.wake) = Some(wake.clone());
        let state = Arc::new(State {
            services: self.services.clone(),
            handler_stack: self.handler_stack,
            conns: Mutex::new(Vec::new()),
            next_conn: AtomicUsize::new(0),
            in_flight: Mutex::new(0),
            idle: Condvar::new(),
        });
        let result = self.accept_loop(&listener, &wake, &state);
        *lock(&self.signal.wake) = None;
        // Stop accepting first: new connections are refused from here on.
        drop(listener);
        state.wait_idle(self.grace);
        state.close_all();
        result
    }

    fn accept_loop(
        &self,
        listener: &UnixListener,
        wake: &OwnedFd,
        state: &Arc<State>,
    ) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        while !self.signal.requested.load(Ordering::SeqCst) {
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
                self.accept_all(listener, state)?;
            }
        }
        Ok(())
    }

    /// Accept what is pending on the (non-blocking) listener.
    fn accept_all(&self, listener: &UnixListener, state: &Arc<State>) -> io::Result<()> {
        loop {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => match e.raw_os_error() {
                    // Out of fds or memory: keep serving the connections we
                    // have and retry later instead of spinning.
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        std::thread::sleep(Duration::from_millis(50));
                        return Ok(());
                    }
                    _ => return Err(e),
                },
            };
            if let Some(uid) = self.allow_uid {
                if peer_uid(&stream).ok() != Some(uid) {
                    continue; // dropped: closed at once
                }
            }
            state.start_connection(stream);
        }
    }
}

/// What the connections of one `serve` share.
struct State {
    services: Vec<(String, Arc<dyn Service>)>,
    handler_stack: usize,
    conns: Mutex<Vec<(usize, Arc<Conn>)>>,
    next_conn: AtomicUsize,
    /// Requests being handled or answered, over all connections.
    in_flight: Mutex<usize>,
    idle: Condvar,
}

struct Conn {
    stream: UnixStream,
    /// One writer at a time, so frames never interleave.
    write_lock: Mutex<()>,
    in_flight: AtomicUsize,
    /// Streams whose client side is still open, by stream id.
    streams: Mutex<Vec<(u32, Arc<Inbox>)>>,
}

impl Conn {
    /// Write one frame; a peer that cannot take it is cut off.
    fn send_frame(&self, stream_id: u32, kind: u8, flags: u8, data: &[u8]) -> io::Result<()> {
        let buf = frame::encode_frame(stream_id, kind, flags, data)?;
        let _guard = lock(&self.write_lock);
        let sent = NoSignalWriter(&self.stream).write_all(&buf);
        if sent.is_err() {
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
        sent
    }

    /// Send one response frame; a peer that cannot take it is cut off.
    fn respond(&self, stream_id: u32, result: Result<Vec<u8>, Status>) {
        let resp = match result {
            Ok(payload) => Response {
                status: None,
                payload,
            },
            Err(status) => Response {
                status: Some(status.to_proto()),
                payload: Vec::new(),
            },
        };
        let mut data = resp.encode_to_vec();
        if data.len() > MAX_DATA {
            let status = Status::new(
                Code::ResourceExhausted,
                format!(
                    "response length {} exceed maximum message size of {MAX_DATA}",
                    data.len()
                ),
            );
            data = Response {
                status: Some(status.to_proto()),
                payload: Vec::new(),
            }
            .encode_to_vec();
        }
        let _ = self.send_frame(stream_id, TYPE_RESPONSE, 0, &data);
    }

    fn respond_status(&self, stream_id: u32, code: Code, message: impl Into<String>) {
        self.respond(stream_id, Err(Status::new(code, message)));
    }
}

impl State {
    fn start_connection(self: &Arc<Self>, stream: UnixStream) {
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let conn = Arc::new(Conn {
            stream,
            write_lock: Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            streams: Mutex::new(Vec::new()),
        });
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        lock(&self.conns).push((id, conn.clone()));
        let state = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ttrpc-conn".into())
            .stack_size(READER_STACK)
            .spawn(move || {
                state.read_requests(&conn);
                take_entry(&mut lock(&state.conns), &id);
            });
        if spawned.is_err() {
            // The closure (and its Arc) is gone: closing is all we can do.
            if let Some(conn) = take_entry(&mut lock(&self.conns), &id) {
                let _ = conn.stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Read frames until the peer goes away or breaks the protocol.
    fn read_requests(self: &Arc<Self>, conn: &Arc<Conn>) {
        let mut last_stream = 0u32;
        loop {
            let (h, data) = match frame::read_frame(&mut &conn.stream) {
                Ok(Some(Frame::Message(h, data))) => (h, data),
                Ok(Some(Frame::TooLarge(h))) => {
                    if h.kind == TYPE_DATA {
                        if let Some(inbox) = take_entry(&mut lock(&conn.streams), &h.stream_id) {
                            inbox.finish(Err(Status::new(
                                Code::ResourceExhausted,
                                "stream message exceeds the maximum message size",
                            )));
                        }
                    }
                    if h.kind == TYPE_REQUEST || h.kind == TYPE_DATA {
                        conn.respond_status(
                            h.stream_id,
                            Code::ResourceExhausted,
                            format!(
                                "message length {} exceed maximum message size of {MAX_DATA}",
                                h.length
                            ),
                        );
                    }
                    continue;
                }
                // End of stream: in-flight answers still go out (their
                // threads hold the connection until they have written).
                Ok(None) => {
                    close_streams(conn);
                    return;
                }
                // Truncated, or a length not worth reading through: the
                // stream cannot be resynchronised.
                Err(_) => break,
            };
            // No streams are served, so stray data or responses have
            // nothing to go to; unknown types are ignored, as ttrpc does
            // for compatibility with later versions.
            if h.kind == TYPE_DATA {
                stream_data(conn, &h, data);
                continue;
            }
            if h.kind != TYPE_REQUEST {
                continue;
            }
            if let Err(why) = check_stream_id(&h, last_stream) {
                conn.respond_status(h.stream_id, Code::InvalidArgument, why);
                continue;
            }
            last_stream = h.stream_id;
            match Request::decode(&data[..]) {
                Ok(req) => self.dispatch(conn, &h, req),
                Err(e) => conn.respond_status(
                    h.stream_id,
                    Code::InvalidArgument,
                    format!("unmarshal request error: {e}"),
                ),
            }
        }
        close_streams(conn);
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Run one request on its own thread: a unary call, or a stream when
    /// the request carries a stream flag.
    fn dispatch(self: &Arc<Self>, conn: &Arc<Conn>, h: &Header, req: Request) {
        let stream_id = h.stream_id;
        let found = self.services.iter().find(|(name, _)| *name == req.service);
        let Some(service) = found.map(|(_, s)| s.clone()) else {
            conn.respond_status(
                stream_id,
                Code::Unimplemented,
                format!("service {}", req.service),
            );
            return;
        };
        if conn.in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT_PER_CONN {
            conn.respond_status(
                stream_id,
                Code::ResourceExhausted,
                format!("more than {MAX_IN_FLIGHT_PER_CONN} requests in flight"),
            );
            return;
        }
        let guard = InFlight::new(self.clone(), conn.clone());
        let ctx = RequestContext {
            metadata: req
                .metadata
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
            deadline: (req.timeout_nano > 0)
                .then(|| Instant::now() + Duration::from_nanos(req.timeout_nano as u64)),
        };
        let (method, mut payload) = (req.method, req.payload);
        let stream = (h.flags & (FLAG_REMOTE_CLOSED | FLAG_REMOTE_OPEN) != 0)
            .then(|| open_stream(conn, h, std::mem::take(&mut payload)));
        let spawned = std::thread::Builder::new()
            .stack_size(self.handler_stack)
            .spawn(move || {
                // With panic=abort (release) a panic ends the process; in
                // a test build the caller still gets an answer.
                let run = std::panic::AssertUnwindSafe(|| match &stream {
                    None => service.call(&ctx, &method, &payload).map(Some),
                    Some(s) => service.call_stream(&ctx, &method, s).map(|()| None),
                });
                let result = std::panic::catch_unwind(run).unwrap_or_else(|_| {
                    Err(Status::new(
                        Code::Internal,
                        format!("method {method}: handler panicked"),
                    ))
                });
                if let Some(s) = &stream {
                    take_entry(&mut lock(&guard.conn.streams), &stream_id);
                    s.inbox.finish(Ok(()));
                }
                match result {
                    Ok(Some(answer)) => guard.conn.respond(stream_id, Ok(answer)),
                    // The end of a stream that went well: an empty data
                    // frame flagged remote-closed, as ttrpc sends it.
                    Ok(None) => {
                        let flags = FLAG_REMOTE_CLOSED | FLAG_NO_DATA;
                        let _ = guard.conn.send_frame(stream_id, TYPE_DATA, flags, &[]);
                    }
                    Err(status) => guard.conn.respond(stream_id, Err(status)),
                }
                drop(guard);
            });
        if let Err(e) = spawned {
            take_entry(&mut lock(&conn.streams), &stream_id);
            conn.respond_status(
                stream_id,
                Code::ResourceExhausted,
                format!("no thread for the request: {e}"),
            );
        }
    }

    /// Wait until no request is in flight, at most `grace`.
    fn wait_idle(&self, grace: Duration) {
        let end = Instant::now() + grace;
        let mut n = lock(&self.in_flight);
        while *n > 0 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            n = match self.idle.wait_timeout(n, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Close every connection: their readers see the end and exit.
    fn close_all(&self) {
        for (_, conn) in lock(&self.conns).iter() {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// A stream for a request flagged remote-closed (the client only
/// listens) or remote-open (the client streams too).
fn open_stream(conn: &Arc<Conn>, h: &Header, payload: Vec<u8>) -> ServerStream {
    let inbox = Arc::new(Inbox::default());
    let client_streams = h.flags & FLAG_REMOTE_OPEN != 0;
    // The request's payload is the first message, even when empty (an
    // empty message encodes to nothing), unless the client streams and
    // sent none.
    if !client_streams || !payload.is_empty() {
        inbox.push(payload);
    }
    if client_streams {
        lock(&conn.streams).push((h.stream_id, inbox.clone()));
    } else {
        inbox.finish(Ok(()));
    }
    ServerStream {
        conn: conn.clone(),
        id: h.stream_id,
        inbox,
    }
}

/// The client is gone: its open streams end (their handlers' recv sees
/// the end).
fn close_streams(conn: &Conn) {
    for (_, inbox) in lock(&conn.streams).drain(..) {
        inbox.finish(Ok(()));
    }
}

/// A data frame from the client for one of its open streams.
fn stream_data(conn: &Conn, h: &Header, data: Vec<u8>) {
    let found = lock(&conn.streams)
        .iter()
        .find(|(id, _)| *id == h.stream_id)
        .map(|(_, inbox)| inbox.clone());
    let Some(inbox) = found else {
        conn.respond_status(
            h.stream_id,
            Code::InvalidArgument,
            "StreamID is no longer active",
        );
        return;
    };
    if h.flags & FLAG_NO_DATA == 0 {
        inbox.push(data);
    }
    if h.flags & FLAG_REMOTE_CLOSED != 0 {
        take_entry(&mut lock(&conn.streams), &h.stream_id);
        inbox.finish(Ok(()));
    }
}

/// A handler's side of a streaming call.
pub struct ServerStream {
    conn: Arc<Conn>,
    id: u32,
    inbox: Arc<Inbox>,
}

impl ServerStream {
    /// The next message from the client (the request's payload first);
    /// None once the client closed its side.
    pub fn recv(&self) -> Option<Vec<u8>> {
        self.inbox.next(None).and_then(|r| r.ok().flatten())
    }

    /// Send one message to the client; Unavailable once it is gone.
    pub fn send(&self, msg: &[u8]) -> Result<(), Status> {
        self.conn
            .send_frame(self.id, TYPE_DATA, 0, msg)
            .map_err(|e| Status::new(Code::Unavailable, format!("stream {}: {e}", self.id)))
    }
}

/// Refuse stream ids a ttrpc v1.2 server refuses: client streams are odd
/// and increase.
fn check_stream_id(h: &Header, last: u32) -> Result<(), &'static str> {
    if h.stream_id % 2 != 1 {
        Err("StreamID must be odd for client initiated streams")
    } else if h.stream_id <= last {
        Err("StreamID cannot be re-used and must increment")
    } else {
        Ok(())
    }
}

/// Counts a request as in flight from dispatch until its answer is out
/// (also when its thread could not start or unwinds).
struct InFlight {
    state: Arc<State>,
    conn: Arc<Conn>,
}

impl InFlight {
    fn new(state: Arc<State>, conn: Arc<Conn>) -> InFlight {
        *lock(&state.in_flight) += 1;
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight { state, conn }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut n = lock(&self.state.in_flight);
        *n -= 1;
        if *n == 0 {
            self.state.idle.notify_all();
        }
    }
}
