//! Telling containerd what happened: task events forwarded to its ttrpc
//! Events service, in order, from a queue that one thread drains; while
//! containerd is away (restarting) the queue waits and the send is
//! retried. Without a ttrpc address the events go through containerd's
//! `publish` command (the publish binary), as containerd's shims do.

use super::log::Log;
use super::reaper::Reaper;
use crate::proto::events::{Envelope, ForwardRequest, EVENTS_SERVICE, FORWARD_METHOD};
use crate::proto::types::{Any, Timestamp};
use crate::ttrpc::{Client, Code};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How to reach containerd.
#[derive(Debug, Clone)]
pub enum Sink {
    /// TTRPC_ADDRESS: containerd's ttrpc socket.
    Ttrpc(String),
    /// `-publish-binary` with `-address`: `BIN --address A publish --topic T --namespace NS`.
    Binary { binary: String, address: String },
}

/// How many events wait for containerd at most: a shim whose containerd
/// stays away must not grow without bound.
const MAX_QUEUED: usize = 10_000;

struct Queue {
    items: VecDeque<Envelope>,
    /// An envelope being sent right now (for flush); it is the front one.
    busy: bool,
    started: bool,
    /// Events dropped because the queue was full.
    dropped: u64,
}

impl Queue {
    /// Queue `env`; when that makes more than `max`, drop the oldest event
    /// that is no exit (containerd's waiters need those most), else the
    /// oldest exit, never the one being sent. Returns the dropped one.
    fn push_bounded(&mut self, env: Envelope, max: usize) -> Option<Envelope> {
        self.items.push_back(env);
        if self.items.len() <= max {
            return None;
        }
        let first = usize::from(self.busy);
        let pos = (first..self.items.len())
            .find(|i| self.items[*i].topic != crate::proto::events::topic::TASK_EXIT)
            .unwrap_or(first);
        let dropped = self.items.remove(pos)?;
        self.dropped += 1;
        Some(dropped)
    }
}

struct Inner {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// The event queue; clones share it.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
    sink: Arc<Sink>,
    namespace: Arc<str>,
    reaper: Reaper,
    log: Log,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl Publisher {
    pub fn new(sink: Sink, namespace: &str, reaper: Reaper, log: Log) -> Publisher {
        Publisher {
            inner: Arc::new(Inner {
                queue: Mutex::new(Queue {
                    items: VecDeque::new(),
                    busy: false,
                    started: false,
                    dropped: 0,
                }),
                changed: Condvar::new(),
            }),
            sink: Arc::new(sink),
            namespace: namespace.into(),
            reaper,
            log,
        }
    }

    /// Queue an event (its timestamp is now); the sending thread starts
    /// with the first event.
    pub fn publish(&self, topic: &str, event: Any) {
        let env = Envelope {
            timestamp: Some(Timestamp::now()),
            namespace: self.namespace.to_string(),
            topic: topic.to_string(),
            event: Some(event),
        };
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lost) = q.push_bounded(env, MAX_QUEUED) {
            // Said the first time and then every thousandth, not per event.
            if q.dropped % 1000 == 1 {
                self.log.error(&format!(
                    "containerd is away and {MAX_QUEUED} events wait: dropped {} \
                     ({} dropped so far)",
                    lost.topic, q.dropped
                ));
            }
        }
        if !q.started {
            q.started = true;
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("events".into())
                .stack_size(super::SMALL_STACK)
                .spawn(move || me.send_forever());
            if spawned.is_err() {
                q.started = false;
            }
        }
        self.inner.changed.notify_all();
    }

    /// Wait until everything queued is sent, up to `timeout` (before the
    /// shim exits).
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        while !q.items.is_empty() || q.busy {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            q = self
                .inner
                .changed
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    fn send_forever(&self) {
        let mut client: Option<Client> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let env = {
                let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(env) = q.items.front().cloned() {
                        q.busy = true;
                        break env;
                    }
                    q = self
                        .inner
                        .changed
                        .wait(q)
                        .unwrap_or_else(|e| e.into_inner());
                }
            };
            match self.send(&mut client, &env) {
                Ok(()) => {
                    backoff = Duration::from_millis(50);
                    self.done_with_front();
                }
                Err(Retry::Later) => {
                    // containerd is away: keep the event, try again.
                    client = None;
                    {
                        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
                        q.busy = false;
                        self.inner.changed.notify_all();
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(Retry::Never) => {
                    self.log.error(&format!(
                        "event {} dropped: containerd refused it",
                        env.topic
                    ));
                    self.done_with_front()
                }
            }
        }
    }

    fn done_with_front(&self) {
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.items.pop_front();
        q.busy = false;
        self.inner.changed.notify_all();
    }

    fn send(&self, client: &mut Option<Client>, env: &Envelope) -> Result<(), Retry> {
        match &*self.sink {
            Sink::Ttrpc(addr) => {
                if client.is_none() {
                    *client = Some(Client::connect(addr).map_err(|_| Retry::Later)?);
                }
                let c = client.as_ref().ok_or(Retry::Later)?;
                let req = ForwardRequest {
                    envelope: Some(env.clone()),
                };
                match crate::ttrpc::call::<_, crate::proto::types::Empty>(
                    c,
                    EVENTS_SERVICE,
                    FORWARD_METHOD,
                    &req,
                    Some(CALL_TIMEOUT),
                ) {
                    Ok(_) => Ok(()),
                    Err(s) if matches!(s.code, Code::Unavailable | Code::DeadlineExceeded) => {
                        Err(Retry::Later)
                    }
                    // containerd refused this event: sending it again would not help.
                    Err(_) => Err(Retry::Never),
                }
            }
            Sink::Binary { binary, address } => self.publish_binary(binary, address, env),
        }
    }

    fn publish_binary(&self, binary: &str, address: &str, env: &Envelope) -> Result<(), Retry> {
        use prost::Message;
        use std::io::Write;
        use std::process::{Command, Stdio};
        let Some(event) = &env.event else {
            return Err(Retry::Never);
        };
        let binary = super::runtime::find_executable(binary).map_err(|_| Retry::Never)?;
        let mut cmd = Command::new(binary);
        cmd.args(["--address", address, "publish", "--topic", &env.topic])
            .args(["--namespace", &env.namespace])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = self.reaper.spawn(&mut cmd).map_err(|_| Retry::Never)?;
        if let Some(mut stdin) = child.child.stdin.take() {
            let _ = stdin.write_all(&event.encode_to_vec());
        }
        let reaped = self.reaper.wait(&child);
        if reaped.exit == crate::sys::process::Exit::Code(0) {
            Ok(())
        } else {
            Err(Retry::Later)
        }
    }
}

enum Retry {
    Later,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::events::topic;

    fn env(topic: &str) -> Envelope {
        Envelope {
            topic: topic.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_event_that_is_no_exit() {
        let mut q = Queue {
            items: VecDeque::new(),
            busy: true,
            started: true,
            dropped: 0,
        };
        for t in [topic::TASK_START, topic::TASK_EXIT, topic::TASK_CREATE] {
            assert!(q.push_bounded(env(t), 3).is_none());
        }
        // The front is being sent: the create goes, not the start.
        let lost = q.push_bounded(env(topic::TASK_EXIT), 3).unwrap();
        assert_eq!(lost.topic, topic::TASK_CREATE);
        // Only exits behind the front: the oldest of them goes.
        let lost = q.push_bounded(env(topic::TASK_EXIT), 3).unwrap();
        assert_eq!(lost.topic, topic::TASK_EXIT);
        let topics: Vec<_> = q.items.iter().map(|e| e.topic.as_str()).collect();
        assert_eq!(
            topics,
            [topic::TASK_START, topic::TASK_EXIT, topic::TASK_EXIT]
        );
        assert_eq!(q.dropped, 2);
    }
}
