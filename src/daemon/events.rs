//! The event exchange: shims forward task events
//! (`containerd.services.events.ttrpc.v1.Events/Forward`), clients publish
//! and subscribe (`containerd.services.events.v1.Events`). Every envelope
//! goes to each subscriber whose filters match.

use super::api::lock;
use super::api::{missing, Ctx, Handler, Sink};
use super::services::DecodeReq;
use crate::proto::events::{Envelope, ForwardRequest};
use crate::proto::services::events::{PublishRequest, SubscribeRequest};
use crate::proto::types::{Empty, Timestamp};
use crate::ttrpc::{unary, unknown_method, Code, Status};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};

/// How often a quiet subscription checks that its subscriber is still there.
const SUBSCRIBER_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
pub struct Exchange {
    subscribers: Mutex<Vec<(Vec<String>, Sender<Envelope>)>>,
}

impl Exchange {
    pub fn publish(&self, env: Envelope) {
        lock(&self.subscribers)
            .retain(|(filters, tx)| !matches(filters, &env) || tx.send(env.clone()).is_ok());
    }

    pub fn subscribe(&self, filters: Vec<String>) -> Receiver<Envelope> {
        let (tx, rx) = channel();
        lock(&self.subscribers).push((filters, tx));
        rx
    }
}

/// containerd's event filters as ctr uses them: `topic==X`,
/// `namespace==X`, `topic~=X` (substring); ORed across the list, ANDed
/// across a comma-separated term list.
fn matches(filters: &[String], env: &Envelope) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| {
            f.split(',').all(|term| {
                let (field, op, value) = match term.split_once("==") {
                    Some((a, b)) => (a, "==", b),
                    None => match term.split_once("~=") {
                        Some((a, b)) => (a, "~=", b),
                        None => (term, "", ""),
                    },
                };
                let value = value.trim().trim_matches('"');
                let have = match field.trim() {
                    "topic" => env.topic.as_str(),
                    "namespace" => env.namespace.as_str(),
                    _ => return false,
                };
                match op {
                    "==" => have == value,
                    "~=" => have.contains(value),
                    _ => !have.is_empty(),
                }
            })
        })
}

/// Both Events services: the shims' `Forward` and the clients' Publish,
/// Forward and Subscribe.
pub struct Events(pub Arc<Exchange>);

impl Handler for Events {
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        match method {
            "Forward" => unary(payload, |r: ForwardRequest| {
                let env = r.envelope.ok_or_else(|| missing("envelope"))?;
                if env.timestamp.is_none() {
                    return Err(missing("envelope timestamp"));
                }
                if env.topic.is_empty() {
                    return Err(missing("envelope topic"));
                }
                self.0.publish(env);
                Ok(Empty {})
            }),
            "Publish" => unary(payload, |r: PublishRequest| {
                if !r.topic.starts_with('/') {
                    return Err(Status::new(
                        Code::InvalidArgument,
                        format!("topic {:?}: must start with '/'", r.topic),
                    ));
                }
                self.0.publish(Envelope {
                    timestamp: Some(Timestamp::now()),
                    namespace: ctx.namespace.clone(),
                    topic: r.topic,
                    event: r.event,
                });
                Ok(Empty {})
            }),
            _ => Err(unknown_method(method)),
        }
    }

    fn stream(&self, _: &Ctx, method: &str, payload: &[u8], out: &dyn Sink) -> Result<(), Status> {
        if method != "Subscribe" {
            return Err(unknown_method(method));
        }
        let r = SubscribeRequest::decode_req(payload)?;
        let rx = self.0.subscribe(r.filters);
        // Ends when the subscriber goes away (send fails, or found
        // closed while waiting) or the daemon drops the exchange.
        loop {
            match rx.recv_timeout(SUBSCRIBER_CHECK) {
                Ok(env) => out.send(&prost::Message::encode_to_vec(&env))?,
                Err(RecvTimeoutError::Timeout) if out.is_closed() => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }
}
