//! The transport-independent service layer: each daemon service is a
//! [`Handler`] that answers typed protobuf payloads for a namespace; the
//! ttrpc binding ([`TtrpcService`]) and the gRPC server
//! ([`crate::grpc::Server`]) only carry bytes and the namespace to it.

use crate::ttrpc::{self, Code, RequestContext, ServerStream, Status};
use std::sync::Arc;

/// ttrpc metadata key carrying the namespace (containerd's
/// pkg/namespaces/ttrpc.go); gRPC uses `containerd-namespace`.
pub const NAMESPACE_KEY_TTRPC: &str = "containerd-namespace-ttrpc";
pub const NAMESPACE_KEY_GRPC: &str = "containerd-namespace";
pub const DEFAULT_NAMESPACE: &str = "default";
/// Metadata key naming the lease a call works under (containerd's
/// leases/grpc.go); what the call makes is added to that lease.
pub const LEASE_KEY: &str = "containerd-lease";

/// What a handler knows of a call besides its payload.
pub struct Ctx {
    pub namespace: String,
    /// The lease named in the call's metadata ([`LEASE_KEY`]), if any.
    pub lease: Option<String>,
}

impl Ctx {
    /// A call's context from its metadata, whatever the transport: no (or
    /// an empty) namespace is [`DEFAULT_NAMESPACE`]; a namespace that is
    /// not a containerd identifier is InvalidArgument (namespaces prefix
    /// shared keys as `ns/...`: a `/` in one would reach another's).
    pub fn new(namespace: Option<&str>, lease: Option<&str>) -> Result<Ctx, Status> {
        let ns = namespace
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE);
        crate::record::check_identifier("namespace", ns).map_err(status)?;
        Ok(Ctx {
            namespace: ns.to_string(),
            lease: lease.filter(|l| !l.is_empty()).map(str::to_string),
        })
    }
}

/// A streaming method's side of the stream: where it sends its messages
/// and, for client-streaming methods, what the client sends after the
/// request.
pub trait Sink: Sync {
    fn send(&self, msg: &[u8]) -> Result<(), Status>;
    /// The client's next message; None once it closed its side, an error
    /// when it went away without closing.
    fn recv(&self) -> Result<Option<Vec<u8>>, Status>;
    /// Whether the client went away: a method that waits long between
    /// messages (Subscribe) polls this to end, since only a send would
    /// tell it otherwise.
    fn is_closed(&self) -> bool {
        false
    }
}

/// One service (`containerd.services.<name>.v1.<Name>`).
pub trait Handler: Send + Sync + 'static {
    /// A unary method: the encoded answer, or a status.
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status>;

    /// A server-streaming method: `payload` is the request, answers go to `out`.
    fn stream(
        &self,
        ctx: &Ctx,
        method: &str,
        payload: &[u8],
        out: &dyn Sink,
    ) -> Result<(), Status> {
        let _ = (ctx, payload, out);
        Err(ttrpc::unknown_method(method))
    }
}

/// A handler whose calls are logged at debug level with their duration:
/// where a slow request spends its time (a container's
/// start is a dozen calls) shows in the daemon's own log.
pub struct Timed {
    pub service: &'static str,
    pub inner: Arc<dyn Handler>,
}

impl Timed {
    /// `h` as is unless debug logging is on (then timed).
    pub fn wrap(service: &'static str, h: Arc<dyn Handler>) -> Arc<dyn Handler> {
        if crate::log::enabled(crate::log::Level::Debug) {
            Arc::new(Timed { service, inner: h })
        } else {
            h
        }
    }

    fn timed<T>(
        &self,
        ctx: &Ctx,
        method: &str,
        f: impl FnOnce() -> Result<T, Status>,
    ) -> Result<T, Status> {
        let t0 = std::time::Instant::now();
        let r = f();
        let took = t0.elapsed();
        let service = self.service.rsplit('.').next().unwrap_or(self.service);
        crate::log::debug!(
            "rpc {service}.{method} ns={} {:.2} ms{}",
            ctx.namespace,
            took.as_secs_f64() * 1e3,
            match &r {
                Ok(_) => String::new(),
                Err(e) => format!(": {:?}", e.code),
            }
        );
        r
    }
}

impl Handler for Timed {
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        self.timed(ctx, method, || self.inner.call(ctx, method, payload))
    }

    fn stream(
        &self,
        ctx: &Ctx,
        method: &str,
        payload: &[u8],
        out: &dyn Sink,
    ) -> Result<(), Status> {
        self.timed(ctx, method, || self.inner.stream(ctx, method, payload, out))
    }
}

/// A [`Handler`] served over ttrpc.
pub struct TtrpcService(pub Arc<dyn Handler>);

impl TtrpcService {
    fn ctx(rc: &RequestContext) -> Result<Ctx, Status> {
        let ns = rc
            .get(NAMESPACE_KEY_TTRPC)
            .or_else(|| rc.get(NAMESPACE_KEY_GRPC));
        Ctx::new(ns, rc.get(LEASE_KEY))
    }
}

struct StreamSink<'a>(&'a ServerStream);

impl Sink for StreamSink<'_> {
    fn send(&self, msg: &[u8]) -> Result<(), Status> {
        self.0.send(msg)
    }

    fn recv(&self) -> Result<Option<Vec<u8>>, Status> {
        self.0.recv()
    }

    fn is_closed(&self) -> bool {
        self.0.is_cut()
    }
}

impl ttrpc::Service for TtrpcService {
    fn call(&self, rc: &RequestContext, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        self.0.call(&Self::ctx(rc)?, method, payload)
    }

    fn call_stream(
        &self,
        rc: &RequestContext,
        method: &str,
        stream: &ServerStream,
    ) -> Result<(), Status> {
        let ctx = Self::ctx(rc)?;
        let payload = stream
            .recv()?
            .ok_or_else(|| Status::new(Code::InvalidArgument, format!("{method}: no request")))?;
        self.0.stream(&ctx, method, &payload, &StreamSink(stream))
    }
}

/// A crate error as a status (kinds become codes).
pub fn status(e: crate::Error) -> Status {
    Status::from(e)
}

/// A required message field that is missing.
pub fn missing(what: &str) -> Status {
    Status::new(Code::InvalidArgument, format!("{what}: required"))
}

pub fn encode<M: prost::Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

/// Nanoseconds since the epoch as a protobuf timestamp.
pub fn timestamp(nanos: u64) -> Option<crate::proto::types::Timestamp> {
    Some(crate::proto::types::Timestamp {
        seconds: (nanos / 1_000_000_000) as i64,
        nanos: (nanos % 1_000_000_000) as i32,
    })
}

/// A poisoned lock only means a handler panicked: the data is still usable.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
