//! The daemon connection as ctr uses it: one gRPC connection (as
//! containerd's ctr, so it talks to containerd too), every call carrying
//! the namespace and bounded by the command's `--timeout`.

use crate::grpc::{Client, ClientStream};
use crate::ttrpc::{Code, Status};
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The metadata key containerd reads the namespace from over gRPC.
const NAMESPACE_KEY: &str = crate::daemon::api::NAMESPACE_KEY_GRPC;
/// The metadata key naming the lease a call works under.
const LEASE_KEY: &str = crate::daemon::api::LEASE_KEY;

/// A connection to the daemon, bound to one namespace; clones share the
/// connection (calls from many threads may be in flight at once).
#[derive(Clone)]
pub struct Conn {
    client: Arc<Client>,
    namespace: String,
    metadata: Vec<(String, String)>,
    deadline: Option<Instant>,
}

impl Conn {
    /// Connect to `address` (a path or `unix://path`); `timeout` bounds
    /// the whole command (ctr's `--timeout`, zero = none). The error reads
    /// as ctr's (`failed to dial "ADDR": ...`).
    pub fn connect(address: &str, namespace: &str, timeout: Duration) -> Result<Conn, String> {
        let client = Client::connect(address).map_err(|e| {
            let path = address.strip_prefix("unix://").unwrap_or(address);
            format!(
                "failed to dial \"{path}\": connection error: desc = \"transport: error while dialing: dial unix {path}: connect: {}\"",
                strip_os_error(&e)
            )
        })?;
        Ok(Conn {
            client: Arc::new(client),
            namespace: namespace.to_string(),
            metadata: vec![(NAMESPACE_KEY.to_string(), namespace.to_string())],
            deadline: (!timeout.is_zero()).then(|| Instant::now() + timeout),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// This connection with every call made under the lease `id` (the
    /// server adds what the calls create to it, as containerd's client
    /// passes its lease in the call metadata).
    pub fn with_lease(&self, id: &str) -> Conn {
        let mut c = self.clone();
        c.metadata.retain(|(k, _)| k != LEASE_KEY);
        c.metadata.push((LEASE_KEY.to_string(), id.to_string()));
        c
    }

    fn remaining(&self) -> Result<Option<Duration>, Status> {
        match self.deadline {
            None => Ok(None),
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(Status::new(
                    Code::DeadlineExceeded,
                    "context deadline exceeded",
                )),
            },
        }
    }

    /// A unary call in the namespace.
    pub fn call<Req: Message, Resp: Message + Default>(
        &self,
        service: &str,
        method: &str,
        req: &Req,
    ) -> Result<Resp, Status> {
        let payload = self.client.call(
            service,
            method,
            req.encode_to_vec(),
            self.remaining()?,
            &self.metadata,
        )?;
        Resp::decode(&payload[..]).map_err(|e| {
            Status::new(
                Code::Internal,
                format!("{service}/{method}: decode answer: {e}"),
            )
        })
    }

    /// A unary call with no deadline even under `--timeout` (Wait blocks
    /// as long as the process runs).
    pub fn call_unbounded<Req: Message, Resp: Message + Default>(
        &self,
        service: &str,
        method: &str,
        req: &Req,
    ) -> Result<Resp, Status> {
        let payload =
            self.client
                .call(service, method, req.encode_to_vec(), None, &self.metadata)?;
        Resp::decode(&payload[..]).map_err(|e| {
            Status::new(
                Code::Internal,
                format!("{service}/{method}: decode answer: {e}"),
            )
        })
    }

    /// A server stream in the namespace (pull progress, events, content reads).
    pub fn stream<Req: Message>(
        &self,
        service: &str,
        method: &str,
        req: &Req,
    ) -> Result<ClientStream, Status> {
        self.client
            .stream(service, method, req.encode_to_vec(), false, &self.metadata)
    }

    /// A stream both sides send on (Content.Write).
    pub fn stream_both<Req: Message>(
        &self,
        service: &str,
        method: &str,
        first: &Req,
    ) -> Result<ClientStream, Status> {
        self.client
            .stream(service, method, first.encode_to_vec(), true, &self.metadata)
    }

    /// The deadline left for a stream's receives.
    pub fn stream_timeout(&self) -> Result<Option<Duration>, Status> {
        self.remaining()
    }
}

/// "No such file or directory (os error 2)" → "no such file or directory",
/// as Go words it.
fn strip_os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.rsplit(": ").next().unwrap_or(&s).to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}
