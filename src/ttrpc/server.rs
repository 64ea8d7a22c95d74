//! The ttrpc server: an accept loop, a reader thread per connection and a
//! thread per request, so a handler that blocks (Wait) holds up nothing
//! else; answers go out as each request finishes, out of order.

use super::addr::NoSignalWriter;
use super::frame::{
    self, Frame, Header, FLAG_NO_DATA, FLAG_REMOTE_CLOSED, FLAG_REMOTE_OPEN, MAX_DATA, TYPE_DATA,
    TYPE_REQUEST, TYPE_RESPONSE,
};
use super::stream::Inbox;
use super::{lock, take_entry, too_large, Code, Service, Status, READER_STACK, WRITE_TIMEOUT};
use crate::proto::ttrpc::{Request, Response};
pub use crate::serve::ShutdownHandle;
use crate::serve::{accept_until_shutdown, AcceptRules, AllowedPeer, CallGuard, Load};
use prost::Message;
use std::io::{self, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default stack of a request's thread: generous, since only the pages a
/// handler touches become resident.
const HANDLER_STACK: usize = 1 << 20;
/// Requests one connection may have in flight before further ones are
/// refused with ResourceExhausted (a thread each) ...
const MAX_IN_FLIGHT_PER_CONN: usize = 512;
/// ... and all connections together (default of
/// [`Server::set_max_in_flight`]).
const MAX_IN_FLIGHT: usize = 1024;
/// How long `serve` waits, after closing the connections, for their
/// readers to exit.
const READER_EXIT_WAIT: Duration = Duration::from_secs(1);

/// What a handler knows of its request besides the payload.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub metadata: Vec<(String, String)>,
    /// When the caller stops waiting (from the request's timeout_nano).
    pub deadline: Option<Instant>,
    /// Set once the request's connection is gone: nobody will read the
    /// answer, so a handler blocked for long (Wait) may give up.
    pub gone: Arc<AtomicBool>,
}

impl RequestContext {
    /// The first value of metadata `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the caller's connection is gone.
    pub fn caller_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    /// Time left before the deadline (zero once it passed); None = no limit.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

pub struct Server {
    services: Vec<(String, Arc<dyn Service>)>,
    peer: AllowedPeer,
    handler_stack: usize,
    max_in_flight: usize,
    grace: Duration,
    signal: ShutdownHandle,
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
            peer: AllowedPeer::default(),
            handler_stack: HANDLER_STACK,
            max_in_flight: MAX_IN_FLIGHT,
            grace: Duration::from_secs(1),
            signal: ShutdownHandle::new(),
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
        self.peer.uid = uid;
    }

    /// Only peers with this gid may talk; None = any. With
    /// [`allow_uid`](Self::allow_uid) both must match.
    pub fn allow_gid(&mut self, gid: Option<u32>) {
        self.peer.gid = gid;
    }

    /// Only peers with this uid and gid may talk, as containerd's ttrpc
    /// `UnixSocketRequireSameUser` handshake checks.
    pub fn allow_peer(&mut self, uid: u32, gid: u32) {
        self.peer = AllowedPeer {
            uid: Some(uid),
            gid: Some(gid),
        };
    }

    /// Stack size of each request's thread (default 1 MiB, of which only
    /// the touched pages cost memory).
    pub fn set_handler_stack_size(&mut self, bytes: usize) {
        self.handler_stack = bytes;
    }

    /// Requests in flight over all connections before further ones are
    /// refused with ResourceExhausted (default 1024; each connection
    /// also has at most 512).
    pub fn set_max_in_flight(&mut self, n: usize) {
        self.max_in_flight = n;
    }

    /// How long shutdown waits for in-flight requests (default 1 s).
    pub fn set_shutdown_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.signal.clone()
    }

    /// Serve on `listener` (blocking) until a ShutdownHandle fires; each
    /// connection gets a reader thread, each request a short-lived thread
    /// with a small stack; responses go out through one writer per
    /// connection (out of order as they complete). A server serves once:
    /// after a shutdown, `serve` returns at once. The listener is closed
    /// on return; a socket file stays for the caller to remove.
    pub fn serve(&self, listener: UnixListener) -> io::Result<()> {
        let state = Arc::new(State {
            services: self.services.clone(),
            handler_stack: self.handler_stack,
            max_in_flight: self.max_in_flight,
            closing: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            next_conn: AtomicUsize::new(0),
            load: Arc::new(Load::default()),
        });
        let rules = AcceptRules {
            peer: self.peer,
            max_connections: MAX_TTRPC_CONNECTIONS,
        };
        let result =
            accept_until_shutdown(&listener, &self.signal, &rules, &state.load, &mut |s| {
                state.start_connection(s)
            });
        // Stop accepting and dispatching first: new connections are
        // refused, requests still coming in are answered Unavailable.
        state.closing.store(true, Ordering::SeqCst);
        drop(listener);
        state.load.wait_until(self.grace, |c| c.in_flight == 0);
        state.close_all();
        // Readers see their connection's end and exit; none may dispatch
        // anything after serve returned.
        state.load.wait_until(READER_EXIT_WAIT, |c| c.readers == 0);
        result
    }
}

/// What the connections of one `serve` share.
struct State {
    services: Vec<(String, Arc<dyn Service>)>,
    handler_stack: usize,
    max_in_flight: usize,
    /// Set when serve stops: nothing more is dispatched.
    closing: AtomicBool,
    conns: Mutex<Vec<(usize, Arc<Conn>)>>,
    next_conn: AtomicUsize,
    /// Reader threads and requests in flight.
    load: Arc<Load>,
}

struct Conn {
    stream: UnixStream,
    /// One writer at a time, so frames never interleave.
    write_lock: Mutex<()>,
    in_flight: AtomicUsize,
    /// Streams whose handler runs, by stream id (the inbox ended once the
    /// client closed its side, or at once if it does not stream).
    streams: Mutex<Vec<(u32, Arc<Inbox>)>>,
    /// Set when the reader has seen the end of the connection.
    gone: Arc<AtomicBool>,
}

impl Conn {
    /// Write one frame; a peer that cannot take it is cut off.
    fn send_frame(&self, stream_id: u32, kind: u8, flags: u8, data: &[u8]) -> io::Result<()> {
        self.send_on_stream(stream_id, kind, flags, data, None)
            .map_err(|e| e.unwrap_or_else(|| io::ErrorKind::BrokenPipe.into()))
    }

    /// Write one frame of a stream, unless the stream was cut off (checked
    /// under the write lock, so nothing follows the cut's answer): Err(None)
    /// then, Err(Some(e)) if the write failed.
    fn send_on_stream(
        &self,
        stream_id: u32,
        kind: u8,
        flags: u8,
        data: &[u8],
        inbox: Option<&Inbox>,
    ) -> Result<(), Option<io::Error>> {
        let buf = frame::encode_frame(stream_id, kind, flags, data)?;
        let _guard = lock(&self.write_lock);
        if inbox.is_some_and(|i| i.failure().is_some()) {
            return Err(None);
        }
        let sent = NoSignalWriter(&self.stream).write_all(&buf);
        if sent.is_err() {
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
        Ok(sent?)
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
            let status = Status::new(Code::ResourceExhausted, too_large("response", data.len()));
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
            gone: Arc::new(AtomicBool::new(false)),
        });
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        lock(&self.conns).push((id, conn.clone()));
        let me = self.clone();
        let spawned = self.load.spawn_reader("ttrpc-conn", READER_STACK, move || {
            me.read_requests(&conn);
            conn.gone.store(true, Ordering::Relaxed);
            take_entry(&mut lock(&me.conns), &id);
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
                    let status = Status::new(
                        Code::ResourceExhausted,
                        too_large("message", h.length as usize),
                    );
                    if h.kind == TYPE_DATA {
                        // The stream is cut: its handler's recv sees why,
                        // and nothing more of it goes out after this answer.
                        if let Some(inbox) = find_stream(conn, h.stream_id) {
                            inbox.cut(status.clone());
                        }
                    }
                    if h.kind == TYPE_REQUEST || h.kind == TYPE_DATA {
                        conn.respond(h.stream_id, Err(status));
                    }
                    continue;
                }
                // End of stream: in-flight answers still go out (their
                // threads hold the connection until they have written).
                Ok(None) => {
                    close_streams(conn, "client gone");
                    return;
                }
                // Truncated, or a length not worth reading through: the
                // stream cannot be resynchronised.
                Err(_) => break,
            };
            // Data goes to the client's open streams; responses from a
            // client have nothing to go to, and unknown types are ignored,
            // as ttrpc does for compatibility with later versions.
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
        close_streams(conn, "client gone");
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
        if self.closing.load(Ordering::SeqCst) {
            conn.respond_status(stream_id, Code::Unavailable, "server is shutting down");
            return;
        }
        let guard = match InFlight::new(self, conn) {
            Ok(guard) => guard,
            Err(why) => return conn.respond_status(stream_id, Code::ResourceExhausted, why),
        };
        let ctx = RequestContext {
            metadata: req
                .metadata
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
            deadline: (req.timeout_nano > 0)
                .then(|| Instant::now() + Duration::from_nanos(req.timeout_nano as u64)),
            gone: conn.gone.clone(),
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
                    if s.inbox.failure().is_some() {
                        return; // cut off: its answer went out already
                    }
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

    /// Close every connection: their readers see the end and exit (also
    /// one waiting for a stream's handler to read).
    fn close_all(&self) {
        for (_, conn) in lock(&self.conns).iter() {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
            close_streams(conn, "server is shutting down");
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
    if !client_streams {
        inbox.finish(Ok(()));
    }
    lock(&conn.streams).push((h.stream_id, inbox.clone()));
    ServerStream {
        conn: conn.clone(),
        id: h.stream_id,
        inbox,
    }
}

/// The connection is gone: its streams are cut off with Unavailable
/// (their handlers' recv sees that `why`, unlike a client's clean close).
fn close_streams(conn: &Conn, why: &str) {
    let open = std::mem::take(&mut *lock(&conn.streams));
    for (_, inbox) in open {
        inbox.cut(Status::new(Code::Unavailable, why));
    }
}

fn find_stream(conn: &Conn, id: u32) -> Option<Arc<Inbox>> {
    let streams = lock(&conn.streams);
    streams
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, inbox)| inbox.clone())
}

/// A data frame from the client for one of its open streams.
fn stream_data(conn: &Conn, h: &Header, data: Vec<u8>) {
    let found = find_stream(conn, h.stream_id).filter(|inbox| !inbox.ended());
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
    /// `Ok(None)` once the client closed its side cleanly; Unavailable if
    /// the client went away, ResourceExhausted if it sent a message over
    /// the size limit (the stream is cut off then).
    pub fn recv(&self) -> Result<Option<Vec<u8>>, Status> {
        self.inbox.next(None).unwrap_or(Ok(None))
    }

    /// Whether the stream was cut off (its client went away, say): a
    /// handler that waits for something to send learns it here.
    pub fn is_cut(&self) -> bool {
        self.inbox.failure().is_some()
    }

    /// Send one message to the client: ResourceExhausted if it is over the
    /// size limit, Unavailable once the client is gone, the stream's
    /// status once it was cut off.
    pub fn send(&self, msg: &[u8]) -> Result<(), Status> {
        if msg.len() > MAX_DATA {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!("stream {}: {}", self.id, too_large("message", msg.len())),
            ));
        }
        let sent = self
            .conn
            .send_on_stream(self.id, TYPE_DATA, 0, msg, Some(&self.inbox));
        sent.map_err(|e| match e {
            Some(e) => Status::new(Code::Unavailable, format!("stream {}: {e}", self.id)),
            None => self.inbox.failure().unwrap_or_else(|| {
                Status::new(Code::Unavailable, format!("stream {}: cut off", self.id))
            }),
        })
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

/// Counts a request as in flight, on its connection and on the server,
/// from dispatch until its answer is out (also when its thread could not
/// start or unwinds).
struct InFlight {
    conn: Arc<Conn>,
    _server: CallGuard,
}

impl InFlight {
    /// Count one more request, or say why not (its connection or the
    /// server has too many in flight). Only the connection's reader
    /// dispatches, so its count cannot grow between check and add.
    fn new(state: &Arc<State>, conn: &Arc<Conn>) -> Result<InFlight, String> {
        if conn.in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT_PER_CONN {
            return Err(format!(
                "more than {MAX_IN_FLIGHT_PER_CONN} requests in flight on this connection"
            ));
        }
        let server = state.load.start_call(state.max_in_flight).ok_or_else(|| {
            format!(
                "more than {} requests in flight on this server",
                state.max_in_flight
            )
        })?;
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(InFlight {
            conn: conn.clone(),
            _server: server,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connections a ttrpc server keeps at once (each holds a reader thread);
/// more are closed as they are accepted. The daemon's serves every shim,
/// and each shim keeps one connection to forward its events, so the cap
/// is well above the containers a host runs.
const MAX_TTRPC_CONNECTIONS: usize = 4096;
