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

struct Queue {
    items: VecDeque<Envelope>,
    /// An envelope being sent right now (for flush).
    busy: bool,
    started: bool,
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
        q.items.push_back(env);
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
