//! The gRPC server: an accept loop, a reader thread per connection (the
//! HTTP/2 state machine) and a thread per call running the service's
//! [`Handler`], bounded per connection (SETTINGS_MAX_CONCURRENT_STREAMS)
//! and over all connections.

use super::budget::{self, Budget};
use super::{framed, header, percent_encode, MessageReader, MAX_MESSAGE};
use crate::daemon::api::{Ctx, Handler, Sink, LEASE_KEY, NAMESPACE_KEY_GRPC};
use crate::h2::hpack::HeaderField;
use crate::h2::{Conn, ErrorCode, Event, Limits, Role, StreamRef};
use crate::proto::services as ps;
pub use crate::serve::ShutdownHandle;
use crate::serve::{accept_until_shutdown, AcceptRules, AllowedPeer, Load};
use crate::ttrpc::{lock, Code, Status};
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A call's thread: only the pages a handler touches become resident.
const HANDLER_STACK: usize = 1 << 20;
/// A connection's reader: frames and HPACK only.
const READER_STACK: usize = 128 << 10;
/// Calls in flight over all connections before new streams are refused.
const MAX_IN_FLIGHT: usize = 1024;
/// Calls one connection may have in flight (SETTINGS_MAX_CONCURRENT_STREAMS).
const MAX_STREAMS_PER_CONN: u32 = 32;
/// Connections served at once (each holds a reader thread); more are
/// closed as they are accepted.
pub(crate) const MAX_CONNECTIONS: usize = 128;
/// How long a call may take to send its (first) request message.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection with no call for this long is closed (GOAWAY NO_ERROR).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// After shutdown, how long serve waits for readers to exit.
const READER_EXIT_WAIT: Duration = Duration::from_secs(1);

/// Methods that stream in either direction (from containerd's .proto
/// files; gRPC's wire does not tell): they go to [`Handler::stream`].
fn is_streaming(service: &str, method: &str) -> bool {
    matches!(
        (service, method),
        (ps::content::SERVICE, "List" | "Read" | "Write")
            | (ps::events::SERVICE, "Subscribe")
            | (ps::snapshots::SERVICE, "List")
            | (ps::containers::SERVICE, "ListStream")
    ) || (service == ps::pull::SERVICE && method == ps::pull::METHOD)
}

pub struct Server {
    services: Vec<(String, Arc<dyn Handler>)>,
    peer: AllowedPeer,
    limits: Limits,
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
            limits: Limits {
                // Each stream holds a thread: a client needs a few.
                max_streams: MAX_STREAMS_PER_CONN,
                idle_timeout: Some(IDLE_TIMEOUT),
                ..Limits::default()
            },
            grace: Duration::from_secs(1),
            signal: ShutdownHandle::new(),
        }
    }

    /// Serve `handler` as `name` (e.g. "containerd.services.version.v1.Version").
    pub fn register(&mut self, name: &str, handler: Arc<dyn Handler>) {
        self.services.retain(|(n, _)| n != name);
        self.services.push((name.to_string(), handler));
    }

    /// Only peers with this uid may talk (SO_PEERCRED); None = anyone.
    pub fn allow_uid(&mut self, uid: Option<u32>) {
        self.peer.uid = uid;
    }

    /// The bounds each connection keeps its client to.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.signal.clone()
    }

    /// Serve on `listener` until a [`ShutdownHandle`] fires.
    pub fn serve(&self, listener: UnixListener) -> io::Result<()> {
        let state = Arc::new(Shared {
            services: self.services.clone(),
            limits: self.limits.clone(),
            conns: Mutex::new(Vec::new()),
            next_conn: AtomicUsize::new(0),
            load: Arc::new(Load::default()),
            budget: Budget::new("this server", budget::PER_SERVER, None),
        });
        let rules = AcceptRules {
            peer: self.peer,
            max_connections: MAX_CONNECTIONS,
        };
        let result =
            accept_until_shutdown(&listener, &self.signal, &rules, &state.load, &mut |s| {
                state.start_connection(s)
            });
        drop(listener);
        for (_, c) in lock(&state.conns).iter() {
            c.go_away(ErrorCode::NoError, "server shutting down");
        }
        state.load.wait_until(self.grace, |c| c.in_flight == 0);
        for (_, c) in lock(&state.conns).iter() {
            c.close();
        }
        state.load.wait_until(READER_EXIT_WAIT, |c| c.readers == 0);
        result
    }
}

struct Shared {
    services: Vec<(String, Arc<dyn Handler>)>,
    limits: Limits,
    conns: Mutex<Vec<(usize, Arc<Conn>)>>,
    next_conn: AtomicUsize,
    /// Reader threads and calls in flight.
    load: Arc<Load>,
    /// Bytes all connections hold in unfinished messages.
    budget: Arc<Budget>,
}

impl Shared {
    fn start_connection(self: &Arc<Self>, sock: UnixStream) {
        let me = self.clone();
        // Without a thread the socket is dropped with the closure: closed.
        let _ = self
            .load
            .spawn_reader("grpc-conn", READER_STACK, move || me.run_connection(sock));
    }

    fn run_connection(self: &Arc<Self>, sock: UnixStream) {
        let Ok(conn) = Conn::open(sock, Role::Server, self.limits.clone()) else {
            return;
        };
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        lock(&self.conns).push((id, conn.clone()));
        let within = Some(self.budget.clone());
        let budget = Budget::new("this connection", budget::PER_CONNECTION, within);
        conn.run_reader(&mut |stream| self.dispatch(stream, &budget));
        lock(&self.conns).retain(|(i, _)| *i != id);
    }

    /// Run a new call on its own thread; false (the stream is refused)
    /// when too many run or no thread can be had.
    fn dispatch(self: &Arc<Self>, stream: StreamRef, budget: &Arc<Budget>) -> bool {
        let Some(in_flight) = self.load.start_call(MAX_IN_FLIGHT) else {
            stream.reset(ErrorCode::RefusedStream);
            return false;
        };
        let me = self.clone();
        let budget = budget.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel::<StreamRef>(1);
        let spawned = std::thread::Builder::new()
            .name("grpc-call".into())
            .stack_size(HANDLER_STACK)
            .spawn(move || {
                if let Ok(stream) = rx.recv() {
                    me.serve_call(stream, budget);
                }
                drop(in_flight);
            });
        match spawned {
            Ok(_) => {
                let _ = tx.send(stream);
                true
            }
            Err(_) => {
                stream.reset(ErrorCode::RefusedStream);
                false
            }
        }
    }

    fn serve_call(&self, stream: StreamRef, budget: Arc<Budget>) {
        let Some(Event::Headers { fields, end }) = stream.next(Some(Instant::now())) else {
            return;
        };
        // Headers that end the stream: no message will come, say so now.
        let mut reader = MessageReader::within(budget);
        reader.ended = end;
        let call = Call {
            stream,
            reader: Mutex::new(reader),
            headers_sent: AtomicBool::new(false),
            deadline: header(&fields, "grpc-timeout")
                .and_then(super::parse_timeout)
                .map(|t| Instant::now() + t),
        };
        let result = match check_request(&fields) {
            Ok(path) => self.run(&call, &fields, path),
            Err(Reject::Http(code)) => {
                let status = code.to_string();
                let _ = call
                    .stream
                    .send_headers(&[(b":status", status.as_bytes())], true);
                return;
            }
            Err(Reject::Grpc(s)) => Err(s),
        };
        let result = match call.deadline {
            Some(d) if Instant::now() >= d => Err(deadline_exceeded()),
            _ => result,
        };
        call.finish(result);
    }

    fn run(&self, call: &Call, fields: &[HeaderField], path: &str) -> Result<(), Status> {
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .ok_or_else(|| {
                Status::new(
                    Code::Unimplemented,
                    format!("malformed method name: {path:?}"),
                )
            })?;
        let handler = self
            .services
            .iter()
            .find(|(n, _)| n == service)
            .map(|(_, h)| h.clone())
            .ok_or_else(|| {
                Status::new(Code::Unimplemented, format!("unknown service {service}"))
            })?;
        let utf8 = |key| header(fields, key).and_then(|v| std::str::from_utf8(v).ok());
        let ctx = Ctx::new(utf8(NAMESPACE_KEY_GRPC), utf8(LEASE_KEY))?;
        let first_by = Instant::now() + FIRST_MESSAGE_TIMEOUT;
        let first = call.recv_by(Some(call.deadline.map_or(first_by, |d| d.min(first_by))))?;
        if is_streaming(service, method) {
            return handler.stream(&ctx, method, &first.unwrap_or_default(), call);
        }
        let Some(request) = first else {
            return Err(Status::new(
                Code::Internal,
                format!("{path}: no request message"),
            ));
        };
        let answer = handler.call(&ctx, method, &request)?;
        call.send(&answer)
    }
}

enum Reject {
    /// Not a gRPC request at all: a bare HTTP status.
    Http(u16),
    Grpc(Status),
}

/// The `:path` of a well-formed gRPC request.
fn check_request(fields: &[HeaderField]) -> Result<&str, Reject> {
    if header(fields, ":method") != Some(b"POST") {
        return Err(Reject::Http(405));
    }
    // "application/grpc", alone or with a subtype (+proto) or parameters.
    let grpc_type = header(fields, "content-type").is_some_and(|t| {
        t.strip_prefix(b"application/grpc")
            .is_some_and(|rest| matches!(rest.first(), None | Some(b'+' | b';')))
    });
    if !grpc_type {
        return Err(Reject::Http(415));
    }
    if let Some(enc) = header(fields, "grpc-encoding").filter(|e| *e != b"identity") {
        return Err(Reject::Grpc(Status::new(
            Code::Unimplemented,
            format!(
                "grpc: Decompressor is not installed for grpc-encoding {:?}",
                String::from_utf8_lossy(enc)
            ),
        )));
    }
    header(fields, ":path")
        .and_then(|p| std::str::from_utf8(p).ok())
        .ok_or(Reject::Http(400))
}

fn deadline_exceeded() -> Status {
    Status::new(Code::DeadlineExceeded, "context deadline exceeded")
}

/// One call being served: the handler's [`Sink`].
struct Call {
    stream: StreamRef,
    reader: Mutex<MessageReader>,
    headers_sent: AtomicBool,
    deadline: Option<Instant>,
}

impl Call {
    fn recv_by(&self, by: Option<Instant>) -> Result<Option<Vec<u8>>, Status> {
        lock(&self.reader)
            .next(&self.stream, by)
            .map_err(|s| match s.code {
                Code::DeadlineExceeded if self.deadline.is_none_or(|d| Instant::now() < d) => {
                    Status::new(Code::DeadlineExceeded, "no request message in time")
                }
                _ => s,
            })
    }

    fn send_response_headers(&self) -> Result<(), Status> {
        if self.headers_sent.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.stream
            .send_headers(
                &[(b":status", b"200"), (b"content-type", b"application/grpc")],
                false,
            )
            .map_err(gone)
    }

    /// End the call with its status: trailers, or a trailers-only answer
    /// when nothing was sent.
    fn finish(&self, result: Result<(), Status>) {
        let (code, message) = match result {
            Ok(()) => (Code::Ok, String::new()),
            Err(s) => (s.code, s.message),
        };
        let code = (code as i32).to_string();
        let message = percent_encode(&message);
        let mut fields: Vec<(&[u8], &[u8])> = Vec::with_capacity(4);
        if !self.headers_sent.swap(true, Ordering::SeqCst) {
            fields.push((b":status", b"200"));
            fields.push((b"content-type", b"application/grpc"));
        }
        fields.push((b"grpc-status", code.as_bytes()));
        if !message.is_empty() {
            fields.push((b"grpc-message", message.as_bytes()));
        }
        let _ = self.stream.send_headers(&fields, true);
    }
}

fn gone(e: crate::h2::StreamGone) -> Status {
    Status::new(Code::Unavailable, format!("stream: {e}"))
}

impl Sink for Call {
    fn send(&self, msg: &[u8]) -> Result<(), Status> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(deadline_exceeded());
        }
        if msg.len() > MAX_MESSAGE {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "grpc: trying to send message larger than max ({} vs. {MAX_MESSAGE})",
                    msg.len()
                ),
            ));
        }
        self.send_response_headers()?;
        self.stream.send_data(&framed(msg), false).map_err(gone)
    }

    fn recv(&self) -> Result<Option<Vec<u8>>, Status> {
        self.recv_by(self.deadline)
    }

    fn is_closed(&self) -> bool {
        self.stream.is_closed() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}
