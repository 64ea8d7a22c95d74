//! ttrpc, containerd's small RPC protocol over unix sockets: the framing
//! ([`frame`]), a [`Server`] for the shim's task service and a [`Client`]
//! for calls to containerd (events) or to a shim.
//!
//! No async runtime: a server runs a thread per connection (reading
//! frames) and a short-lived thread per request, all with small stacks, so
//! an idle shim holds a few pages per connection. Messages are the prost
//! structs of [`crate::proto`]. Unary calls are what containerd's task and
//! event services use; streams (ttrpc 1.2: [`Service::call_stream`],
//! [`Client::stream`]) are there for the daemon's Subscribe and content
//! transfers.
//!
//! ```no_run
//! use skiff::proto::task::{StateRequest, StateResponse, SERVICE_V2};
//! use skiff::ttrpc::{self, Code, RequestContext, Server, Service, Status};
//! use std::sync::Arc;
//!
//! struct Task;
//! impl Service for Task {
//!     fn call(&self, _: &RequestContext, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
//!         match method {
//!             "State" => ttrpc::unary(payload, |r: StateRequest| {
//!                 Err::<StateResponse, _>(Status::new(Code::NotFound, format!("{}: not found", r.id)))
//!             }),
//!             _ => Err(ttrpc::unknown_method(method)),
//!         }
//!     }
//! }
//!
//! let mut server = Server::new();
//! server.register(SERVICE_V2, Arc::new(Task));
//! server.allow_uid(Some(0));
//! // server.shutdown_handle() (cloned into the Task) makes serve return.
//! server.serve(ttrpc::listen("unix:///run/containerd/s/abc")?)?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod addr;
mod client;
pub mod frame;
mod server;
mod stream;

pub use addr::{connect_stream, listen};
pub(crate) use addr::{peer_cred, NoSignalWriter};
pub use client::{call, Client, ClientStream};
pub use server::{RequestContext, Server, ServerStream, ShutdownHandle};

use crate::error::{Error, Kind};
use std::fmt;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Stack of a connection's reader thread (server and client): it only
/// reads frames and decodes the ttrpc envelope.
pub(crate) const READER_STACK: usize = 64 << 10;
/// A peer that does not read for this long is cut off, so a writer never
/// blocks forever on a full socket.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// gRPC status codes (numbers are gRPC's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    Canceled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The code of a wire number; numbers gRPC does not define are Unknown.
    pub fn from_i32(n: i32) -> Code {
        use Code::*;
        const ALL: [Code; 17] = [
            Ok,
            Canceled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        ];
        usize::try_from(n)
            .ok()
            .and_then(|i| ALL.get(i).copied())
            .unwrap_or(Unknown)
    }
}

/// The outcome of a failed call, as it travels in a Response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn to_proto(&self) -> crate::proto::types::RpcStatus {
        crate::proto::types::RpcStatus {
            code: self.code as i32,
            message: self.message.clone(),
            details: Vec::new(),
        }
    }

    pub(crate) fn from_proto(s: &crate::proto::types::RpcStatus) -> Status {
        Status::new(Code::from_i32(s.code), s.message.clone())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

impl std::error::Error for Status {}

/// An error's [`Kind`] becomes the code containerd branches on.
impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let code = match e.kind() {
            Kind::Other => Code::Unknown,
            Kind::NotFound => Code::NotFound,
            Kind::AlreadyExists => Code::AlreadyExists,
            Kind::InvalidArgument => Code::InvalidArgument,
            Kind::FailedPrecondition => Code::FailedPrecondition,
            Kind::Unimplemented => Code::Unimplemented,
            Kind::DeadlineExceeded => Code::DeadlineExceeded,
            Kind::PermissionDenied => Code::PermissionDenied,
        };
        Status::new(code, e.message())
    }
}

impl From<std::io::Error> for Status {
    fn from(e: std::io::Error) -> Status {
        Status::from(Error::from(e))
    }
}

/// A failed call as a crate [`Error`], keeping the kinds that have one.
impl From<Status> for Error {
    fn from(s: Status) -> Error {
        let kind = match s.code {
            Code::NotFound => Kind::NotFound,
            Code::AlreadyExists => Kind::AlreadyExists,
            Code::InvalidArgument => Kind::InvalidArgument,
            Code::FailedPrecondition => Kind::FailedPrecondition,
            Code::Unimplemented => Kind::Unimplemented,
            Code::DeadlineExceeded => Kind::DeadlineExceeded,
            Code::PermissionDenied => Kind::PermissionDenied,
            _ => Kind::Other,
        };
        Error::of(kind, s.message)
    }
}

/// One ttrpc service (e.g. "containerd.task.v2.Task"). Handlers may block
/// (Wait blocks until the process exits): the server runs each request on
/// its own thread, so a blocked Wait never holds up other requests.
pub trait Service: Send + Sync + 'static {
    /// Answer `method` with the encoded response, or fail with a status.
    /// An unknown method is `Status::new(Code::Unimplemented, format!("method {method}"))`
    /// (see [`unknown_method`]).
    fn call(&self, ctx: &RequestContext, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status>;

    /// A streaming method (ttrpc 1.2: containerd's Events.Subscribe,
    /// Content.Read/Write): [`ServerStream::recv`] gives the request's
    /// payload, then what the client streams; [`ServerStream::send`]
    /// streams back. Ok ends the stream normally, Err with that status.
    /// A handler of a client-streaming call must keep reading: once 64
    /// messages (or 8 MiB) wait unread, the connection's reader waits for
    /// it, holding up the client's other calls on that connection.
    fn call_stream(
        &self,
        ctx: &RequestContext,
        method: &str,
        stream: &ServerStream,
    ) -> Result<(), Status> {
        let _ = (ctx, stream);
        Err(unknown_method(method))
    }
}

/// The status ttrpc answers an unknown method with.
pub fn unknown_method(method: &str) -> Status {
    Status::new(Code::Unimplemented, format!("method {method}"))
}

/// Decode a request, run `f`, encode its answer; a payload that does not
/// decode is InvalidArgument naming the message type.
pub fn unary<Req: prost::Message + Default, Resp: prost::Message>(
    payload: &[u8],
    f: impl FnOnce(Req) -> Result<Resp, Status>,
) -> Result<Vec<u8>, Status> {
    let req = Req::decode(payload).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("decode {}: {e}", short_type_name::<Req>()),
        )
    })?;
    Ok(f(req)?.encode_to_vec())
}

/// `CreateTaskRequest` for `skiff::proto::task::CreateTaskRequest`.
pub(crate) fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Remove and return the value under `key` from a short list of pairs
/// (services, connections, calls in flight: a few each, so a scan beats a
/// hash map, also in binary size).
pub(crate) fn take_entry<K: PartialEq, V>(list: &mut Vec<(K, V)>, key: &K) -> Option<V> {
    let i = list.iter().position(|(k, _)| k == key)?;
    Some(list.swap_remove(i).1)
}

/// ttrpc's words for a message over [`frame::MAX_DATA`] (`what` is
/// "message", "response", ...), as Go ttrpc's clients match them.
pub(crate) fn too_large(what: &str, len: usize) -> String {
    format!(
        "{what} length {len} exceed maximum message size of {}",
        frame::MAX_DATA
    )
}

/// Wait on `ready` (signalled when `m` changes) until `check` gives a
/// value; None once `deadline` passed first.
pub(crate) fn wait_for<T, R>(
    m: &Mutex<T>,
    ready: &Condvar,
    deadline: Option<Instant>,
    mut check: impl FnMut(&mut T) -> Option<R>,
) -> Option<R> {
    let mut guard = lock(m);
    loop {
        if let Some(r) = check(&mut guard) {
            return Some(r);
        }
        guard = match deadline {
            None => ready.wait(guard).unwrap_or_else(|p| p.into_inner()),
            Some(end) => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                let waited = ready.wait_timeout(guard, left);
                waited.unwrap_or_else(|p| p.into_inner()).0
            }
        };
    }
}

/// A poisoned lock only means a handler panicked: the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
