//! The event exchange: shims forward task events
//! (`containerd.services.events.ttrpc.v1.Events/Forward`), clients publish
//! and subscribe (`containerd.services.events.v1.Events`). Every envelope
//! goes to each subscriber whose filters match.
//!
//! # Events of a restart
//! What happened while no daemon ran reaches the new one in its first
//! moments: recovery publishes the exits (and deletes) of shims that died
//! before any client can have subscribed, and live shims forward the
//! exits they queued as soon as the socket answers, racing the clients
//! that reconnect. Those events alone, and only until [`START_REPLAY`]
//! after the daemon starts serving, are also given to every subscriber
//! that arrives (at most [`START_REPLAY_MAX`] kept). Every other event goes
//! only to those subscribed when it happens, as in containerd (which does
//! not replay at all): a resubscriber gets no duplicate of a live event,
//! and a task created anew is not sent its predecessor's exit.

use super::api::lock;
use super::api::{missing, Ctx, Handler, Sink};
use super::services::DecodeReq;
use crate::proto::events::{Envelope, ForwardRequest, TaskExit};
use crate::proto::services::events::{PublishRequest, SubscribeRequest};
use crate::proto::types::{Empty, Timestamp};
use crate::ttrpc::{unary, unknown_method, Code, Status};
use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after the daemon starts serving the events of a restart
/// are replayed to new subscribers.
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
    replay: Replay,
}

/// The events of a restart, while they are to be replayed.
enum Replay {
    /// Recovering, not serving yet: kept.
    Starting(VecDeque<Envelope>),
    /// Serving since `since` (wall clock, to compare with an exit's
    /// time), replayed until `until`.
    Serving {
        since: Timestamp,
        until: Instant,
        events: VecDeque<Envelope>,
    },
    Over,
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
                replay: Replay::Starting(VecDeque::new()),
            }),
        }
    }
}

impl Inner {
    /// The events of a restart, while they are to be replayed.
    fn replayed(&mut self) -> Option<&mut VecDeque<Envelope>> {
        if matches!(&self.replay, Replay::Serving { until, .. } if Instant::now() >= *until) {
            self.replay = Replay::Over;
        }
        match &mut self.replay {
            Replay::Starting(events) | Replay::Serving { events, .. } => Some(events),
            Replay::Over => None,
        }
    }

    /// Whether a shim's forwarded event tells of an exit from before the
    /// daemon served (queued while no daemon ran).
    fn exited_before_serving(&self, env: &Envelope) -> bool {
        let since = match &self.replay {
            Replay::Starting(_) => return env.topic == TASK_EXIT_TOPIC,
            Replay::Serving { since, .. } => since,
            Replay::Over => return false,
        };
        if env.topic != TASK_EXIT_TOPIC {
            return false;
        }
        let Some(exited_at) = env
            .event
            .as_ref()
            .and_then(|a| <TaskExit as prost::Message>::decode(a.value.as_slice()).ok())
            .and_then(|e| e.exited_at)
        else {
            return false;
        };
        (exited_at.seconds, exited_at.nanos) < (since.seconds, since.nanos)
    }
}

const TASK_EXIT_TOPIC: &str = crate::proto::events::topic::TASK_EXIT;

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
    /// Send `env` to the subscribers whose filters match.
    pub fn publish(&self, env: Envelope) {
        send(&mut lock(&self.inner), env);
    }

    /// [`Exchange::publish`] an event of a restart (recovery's exit of a
    /// dead shim): replayed to subscribers that come soon after.
    pub fn publish_replayed(&self, env: Envelope) {
        let mut inner = lock(&self.inner);
        keep(&mut inner, &env);
        send(&mut inner, env);
    }

    /// [`Exchange::publish`] an event a shim forwarded: an exit from before
    /// the daemon served is one of a restart (see the module's doc).
    pub fn publish_forwarded(&self, env: Envelope) {
        let mut inner = lock(&self.inner);
        if inner.exited_before_serving(&env) {
            keep(&mut inner, &env);
        }
        send(&mut inner, env);
    }

    /// The daemon serves from now: the replay lasts [`START_REPLAY`] more.
    pub fn serving(&self) {
        let mut inner = lock(&self.inner);
        if let Replay::Starting(events) = &mut inner.replay {
            inner.replay = Replay::Serving {
                since: Timestamp::now(),
                until: Instant::now() + START_REPLAY,
                events: std::mem::take(events),
            };
        }
    }

    /// Subscribe; the events of a restart that match come first. Under
    /// the one lock, so none is both replayed and sent, or neither.
    pub fn subscribe(&self, filters: crate::filter::AnyOf) -> Subscription<'_> {
        let (tx, rx) = channel();
        let mut inner = lock(&self.inner);
        if let Some(events) = inner.replayed() {
            for env in events.iter().filter(|e| matches(&filters, e)) {
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

fn keep(inner: &mut Inner, env: &Envelope) {
    if let Some(events) = inner.replayed() {
        if events.len() == START_REPLAY_MAX {
            events.pop_front();
        }
        events.push_back(env.clone());
    }
}

fn send(inner: &mut Inner, env: Envelope) {
    inner
        .subscribers
        .retain(|s| !matches(&s.filters, &env) || s.tx.send(env.clone()).is_ok());
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
                self.0.publish_forwarded(env);
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

    fn exit_at(t: Timestamp) -> Envelope {
        Envelope {
            event: Some(crate::proto::events::any(
                crate::proto::events::TASK_EXIT,
                &TaskExit {
                    exited_at: Some(t),
                    ..Default::default()
                },
            )),
            ..env(TASK_EXIT_TOPIC)
        }
    }

    fn topics(sub: &Subscription) -> Vec<String> {
        sub.rx.try_iter().map(|e| e.topic).collect()
    }

    #[test]
    fn a_restarts_events_reach_a_late_subscriber_once() {
        let x = Exchange::default();
        x.publish_replayed(env("/tasks/exit"));
        x.publish_replayed(env("/tasks/delete"));
        x.serving();
        let sub =
            x.subscribe(crate::filter::parse_all(&["topic==\"/tasks/exit\"".into()]).unwrap());
        x.publish(env("/tasks/exit"));
        assert_eq!(topics(&sub), ["/tasks/exit", "/tasks/exit"]);
    }

    #[test]
    fn live_events_are_not_replayed() {
        let x = Exchange::default();
        x.serving();
        x.publish(env("/tasks/create"));
        // A shim's exit that happened while the daemon served.
        x.publish_forwarded(exit_at(Timestamp::now()));
        let sub = x.subscribe(crate::filter::AnyOf::default());
        assert_eq!(topics(&sub), Vec::<String>::new());
    }

    #[test]
    fn a_shims_exit_from_before_serving_is_replayed() {
        let x = Exchange::default();
        let before = Timestamp::now();
        std::thread::sleep(Duration::from_millis(5));
        x.serving();
        x.publish_forwarded(exit_at(before));
        x.publish_forwarded(env("/tasks/oom"));
        let sub = x.subscribe(crate::filter::AnyOf::default());
        assert_eq!(topics(&sub), [TASK_EXIT_TOPIC]);
    }

    #[test]
    fn the_replay_ends() {
        let x = Exchange::default();
        x.publish_replayed(env("/tasks/exit"));
        x.serving();
        if let Replay::Serving { until, .. } = &mut lock(&x.inner).replay {
            *until = Instant::now();
        }
        let sub = x.subscribe(crate::filter::AnyOf::default());
        assert_eq!(topics(&sub), Vec::<String>::new());
        x.publish_replayed(env("/tasks/exit"));
        assert!(matches!(lock(&x.inner).replay, Replay::Over));
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
