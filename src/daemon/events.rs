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
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

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

/// containerd's filters (crate::filter) over an event's `topic` and
/// `namespace`.
fn matches(filters: &[String], env: &Envelope) -> bool {
    let fields = [
        ("topic", env.topic.as_str()),
        ("namespace", env.namespace.as_str()),
    ];
    crate::filter::matches_any(
        filters,
        &crate::filter::Record {
            fields: &fields,
            labels: &Default::default(),
        },
    )
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
        crate::filter::parse_all(&r.filters).map_err(|e| {
            Status::new(
                Code::InvalidArgument,
                format!("subscription error: failed parsing subscription filters: {e}"),
            )
        })?;
        let rx = self.0.subscribe(r.filters);
        // Ends when the subscriber goes away (send fails) or the daemon
        // drops the exchange.
        for env in rx {
            out.send(&prost::Message::encode_to_vec(&env))?;
        }
        Ok(())
    }
}
