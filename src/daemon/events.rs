//! The event exchange: shims forward task events
//! (`containerd.services.events.ttrpc.v1.Events/Forward`), clients publish
//! and subscribe (`containerd.services.events.v1.Events`). Every envelope
//! goes to each subscriber whose filters match.
//!
//! # Events of a restart
//! What happened while no daemon ran reaches the new one in its first
//! moments: recovery publishes the exits of shims that died (before any
//! client can have subscribed), and live shims forward the exits they
//! queued as soon as the socket answers, racing the clients that
//! reconnect. So the events of the first [`START_REPLAY`] after start are
//! kept (at most [`START_REPLAY_MAX`]) and also given to every subscriber
//! that arrives within that time; afterwards events go only to those
//! subscribed when they happen, as in containerd.

use super::api::lock;
use super::api::{missing, Ctx, Handler, Sink};
use super::services::DecodeReq;
use crate::proto::events::{Envelope, ForwardRequest};
use crate::proto::services::events::{PublishRequest, SubscribeRequest};
use crate::proto::types::{Empty, Timestamp};
use crate::ttrpc::{unary, unknown_method, Code, Status};
use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after start the events are replayed to new subscribers.
pub const START_REPLAY: Duration = Duration::from_secs(10);
/// How many start-up events are kept for them.
pub const START_REPLAY_MAX: usize = 1024;
/// How often a subscriber's stream checks that its client is still there
/// (when no event came for it meanwhile).
const CLIENT_CHECK: Duration = Duration::from_millis(500);

pub struct Exchange {
    inner: Mutex<Inner>,
}

struct Inner {
    next_id: u64,
    subscribers: Vec<Subscriber>,
    /// The start-up events, until the replay time is over.
    early: Option<(Instant, VecDeque<Envelope>)>,
}

struct Subscriber {
    id: u64,
    /// Parsed once at Subscribe, matched against every event.
    filters: crate::filter::AnyOf,
    tx: Sender<Envelope>,
}

impl Default for Exchange {
    fn default() -> Exchange {
        Exchange {
            inner: Mutex::new(Inner {
                next_id: 0,
                subscribers: Vec::new(),
                early: Some((Instant::now() + START_REPLAY, VecDeque::new())),
            }),
        }
    }
}

impl Inner {
    /// The start-up events, while they are to be replayed.
    fn early(&mut self) -> Option<&mut VecDeque<Envelope>> {
        if self
            .early
            .as_ref()
            .is_some_and(|(until, _)| Instant::now() >= *until)
        {
            self.early = None;
        }
        self.early.as_mut().map(|(_, events)| events)
    }
}

/// A subscriber's end: leaves the exchange when dropped.
pub struct Subscription<'a> {
    exchange: &'a Exchange,
    id: u64,
    pub rx: Receiver<Envelope>,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        lock(&self.exchange.inner)
            .subscribers
            .retain(|s| s.id != self.id);
    }
}

impl Exchange {
    pub fn publish(&self, env: Envelope) {
        let mut inner = lock(&self.inner);
        if let Some(early) = inner.early() {
            if early.len() == START_REPLAY_MAX {
                early.pop_front();
            }
            early.push_back(env.clone());
        }
        inner
            .subscribers
            .retain(|s| !matches(&s.filters, &env) || s.tx.send(env.clone()).is_ok());
    }

    /// Subscribe; the start-up events that match come first. Under the
    /// one lock, so none is both replayed and sent, or neither.
    pub fn subscribe(&self, filters: crate::filter::AnyOf) -> Subscription<'_> {
        let (tx, rx) = channel();
        let mut inner = lock(&self.inner);
        if let Some(early) = inner.early() {
            for env in early.iter().filter(|e| matches(&filters, e)) {
                let _ = tx.send(env.clone());
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.subscribers.push(Subscriber { id, filters, tx });
        Subscription {
            exchange: self,
            id,
            rx,
        }
    }
}

/// containerd's filters (crate::filter) over an event's `topic` and
/// `namespace`.
fn matches(filters: &crate::filter::AnyOf, env: &Envelope) -> bool {
    let fields = [
        ("topic", env.topic.as_str()),
        ("namespace", env.namespace.as_str()),
    ];
    filters.matches(&crate::filter::Record {
        fields: &fields,
        labels: &Default::default(),
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
        let filters = crate::filter::parse_all(&r.filters).map_err(|e| {
            Status::new(
                Code::InvalidArgument,
                format!("subscription error: failed parsing subscription filters: {e}"),
            )
        })?;
        let sub = self.0.subscribe(filters);
        // Ends when the client goes away: a send fails, or (no event
        // matching its filters for a while) its stream was cut.
        loop {
            match sub.rx.recv_timeout(CLIENT_CHECK) {
                Ok(env) => out.send(&prost::Message::encode_to_vec(&env))?,
                Err(RecvTimeoutError::Timeout) if out.is_closed() => return Ok(()),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(topic: &str) -> Envelope {
        Envelope {
            timestamp: Some(Timestamp::now()),
            namespace: "ns".into(),
            topic: topic.into(),
            event: None,
        }
    }

    #[test]
    fn start_up_events_reach_a_late_subscriber_once() {
        let x = Exchange::default();
        x.publish(env("/tasks/exit"));
        x.publish(env("/tasks/delete"));
        let sub =
            x.subscribe(crate::filter::parse_all(&["topic==\"/tasks/exit\"".into()]).unwrap());
        x.publish(env("/tasks/exit"));
        let got: Vec<String> = sub.rx.try_iter().map(|e| e.topic).collect();
        assert_eq!(got, ["/tasks/exit", "/tasks/exit"]);
    }

    #[test]
    fn a_dropped_subscription_leaves_the_exchange() {
        let x = Exchange::default();
        let sub = x.subscribe(crate::filter::parse_all(&["topic==\"/never\"".into()]).unwrap());
        assert_eq!(lock(&x.inner).subscribers.len(), 1);
        drop(sub);
        assert!(lock(&x.inner).subscribers.is_empty());
    }
}
