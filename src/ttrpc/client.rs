//! The ttrpc client: one connection, calls from many threads in flight at
//! once (stream ids 1, 3, 5, … in the order they go out), a reader thread
//! handing each response to the call waiting for its stream id.

use super::addr::{connect_stream, NoSignalWriter};
use super::frame::{
    self, Frame, FLAG_NO_DATA, FLAG_REMOTE_CLOSED, FLAG_REMOTE_OPEN, MAX_DATA, TYPE_DATA,
    TYPE_REQUEST, TYPE_RESPONSE,
};
use super::stream::Inbox;
use super::{
    lock, short_type_name, take_entry, too_large, wait_for, Code, Status, READER_STACK,
    WRITE_TIMEOUT,
};
use crate::proto::ttrpc::{KeyValue, Request, Response};
use prost::Message;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Reply = Result<Vec<u8>, Status>;

/// Where the reader thread leaves one call's answer (a mutex and a condvar
/// weigh less in the binary than a channel).
#[derive(Default)]
struct Slot {
    reply: Mutex<Option<Reply>>,
    ready: Condvar,
}

impl Slot {
    fn put(&self, reply: Reply) {
        *lock(&self.reply) = Some(reply);
        self.ready.notify_one();
    }

    /// The answer, or None if `deadline` passed first.
    fn take(&self, deadline: Option<Instant>) -> Option<Reply> {
        wait_for(&self.reply, &self.ready, deadline, Option::take)
    }
}

/// A client on one connection; calls from many threads may be in flight
/// at once (stream ids 1,3,5,…; a reader thread matches responses).
pub struct Client {
    inner: Arc<Inner>,
    reader: Option<JoinHandle<()>>,
}

struct Inner {
    stream: UnixStream,
    /// Held while a stream id is taken and its request written, so ids go
    /// out in increasing order (ttrpc v1.2 servers refuse anything else)
    /// and frames never interleave; waited for with a deadline.
    turn: Mutex<Turn>,
    turn_free: Condvar,
    calls: Mutex<Calls>,
}

struct Turn {
    next_id: u32,
    taken: bool,
}

/// The right to write on the connection, given back on drop.
struct TurnGuard<'a>(&'a Inner);

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.turn).taken = false;
        self.0.turn_free.notify_one();
    }
}

/// Who waits for what comes on a stream id.
enum Waiter {
    /// A unary call: one response.
    Call(Arc<Slot>),
    /// A stream: data frames, then its end.
    Stream(Arc<Inbox>),
}

impl Waiter {
    fn end(&self, status: Status) {
        match self {
            Waiter::Call(slot) => slot.put(Err(status)),
            Waiter::Stream(inbox) => inbox.finish(Err(status)),
        }
    }
}

#[derive(Default)]
struct Calls {
    waiting: Vec<(u32, Waiter)>,
    /// Why the connection is gone, once it is.
    closed: Option<String>,
}

impl Client {
    /// `addr` is a path, `unix:///path`, or `unix://@abstract` / `@abstract`.
    ///
    /// A bare path (`/run/x.sock`) is a socket file here. containerd 1.6
    /// reads addresses differently: a shim's printed address without
    /// `unix://` is dialled as an ABSTRACT socket of that name (its
    /// `socket.path()` prefixes NUL when there is no `unix://` to trim). A
    /// shim serving a file must therefore print `unix:///path`.
    pub fn connect(addr: &str) -> io::Result<Client> {
        Client::from_stream(connect_stream(addr)?)
    }

    /// A client on a connected stream.
    pub fn from_stream(stream: UnixStream) -> io::Result<Client> {
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let inner = Arc::new(Inner {
            stream,
            turn: Mutex::new(Turn {
                next_id: 1,
                taken: false,
            }),
            turn_free: Condvar::new(),
            calls: Mutex::new(Calls::default()),
        });
        let reader_inner = inner.clone();
        let reader = std::thread::Builder::new()
            .name("ttrpc-client".into())
            .stack_size(READER_STACK)
            .spawn(move || reader_inner.read_responses())?;
        Ok(Client {
            inner,
            reader: Some(reader),
        })
    }

    /// Open a streaming call (ttrpc 1.2): the request carries `payload`;
    /// with `client_streams` the client may send messages too
    /// ([`ClientStream::send`], ended by [`ClientStream::close_send`]),
    /// otherwise only the server streams. Read the stream or drop it: once
    /// 64 messages (or 8 MiB) of it wait unread, the connection's reader
    /// waits too, holding up every other answer on this client (and
    /// then the server), as in Go ttrpc.
    pub fn stream(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        client_streams: bool,
        metadata: &[(String, String)],
    ) -> Result<ClientStream, Status> {
        let req = encode_request(service, method, payload, None, metadata)?;
        let inbox = Arc::new(Inbox::default());
        let flags = if client_streams {
            FLAG_REMOTE_OPEN
        } else {
            FLAG_REMOTE_CLOSED
        };
        let id = self
            .inner
            .send(&req, flags, Waiter::Stream(inbox.clone()), None)
            .map_err(|s| Status::new(s.code, format!("{service}/{method}: {}", s.message)))?;
        Ok(ClientStream {
            inner: self.inner.clone(),
            id,
            inbox,
            client_streams,
            sent_close: Default::default(),
        })
    }

    /// Whether the connection is gone (every call would fail Unavailable):
    /// time to connect again.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.calls).closed.is_some()
    }

    /// Call `service`/`method` with an encoded request; the encoded answer,
    /// or the server's status. A transport failure is Unavailable; no
    /// answer within `timeout` (counted from the call, so waiting to send
    /// and sending count too) is DeadlineExceeded (the server is told the
    /// timeout too).
    pub fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        timeout: Option<Duration>,
        metadata: &[(String, String)],
    ) -> Result<Vec<u8>, Status> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let req = encode_request(service, method, payload, timeout, metadata)?;
        let slot = Arc::new(Slot::default());
        let id = self
            .inner
            .send(&req, 0, Waiter::Call(slot.clone()), deadline)
            .map_err(|s| Status::new(s.code, format!("{service}/{method}: {}", s.message)))?;
        match slot.take(deadline) {
            Some(Err(s)) if s.code == Code::Unavailable => Err(Status::new(
                Code::Unavailable,
                format!("{service}/{method}: {}", s.message),
            )),
            Some(reply) => reply,
            None => {
                take_entry(&mut lock(&self.inner.calls).waiting, &id);
                Err(Status::new(
                    Code::DeadlineExceeded,
                    format!("{service}/{method}: no answer within {timeout:?}"),
                ))
            }
        }
    }
}

#[cfg(test)]
impl Client {
    /// Jump the stream ids ahead (to test what happens when they run out).
    pub(crate) fn set_next_id(&self, id: u32) {
        lock(&self.inner.turn).next_id = id;
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.inner.stream.shutdown(std::net::Shutdown::Both);
        // A reader waiting for an unread stream to make room gives up.
        for (_, waiter) in &lock(&self.inner.calls).waiting {
            if let Waiter::Stream(inbox) = waiter {
                inbox.finish(Err(Status::new(Code::Unavailable, "client closed")));
            }
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Inner {
    /// Wait for the turn to write, at most until `deadline`.
    fn take_turn(&self, deadline: Option<Instant>) -> Option<(TurnGuard<'_>, u32)> {
        let id = wait_for(&self.turn, &self.turn_free, deadline, |t| {
            (!t.taken).then(|| {
                t.taken = true;
                t.next_id
            })
        })?;
        Some((TurnGuard(self), id))
    }

    /// Take the next stream id, register `waiter` for what comes back and
    /// write the request, all by `deadline`; the stream id, or why it
    /// could not go out (DeadlineExceeded, or Unavailable).
    fn send(
        &self,
        req: &[u8],
        flags: u8,
        waiter: Waiter,
        deadline: Option<Instant>,
    ) -> Result<u32, Status> {
        // Encoded before anything is registered (the id is set below).
        let mut buf = frame::encode_frame(0, TYPE_REQUEST, flags, req)
            .map_err(|e| Status::new(Code::ResourceExhausted, e.to_string()))?;
        let too_late = || {
            Status::new(
                Code::DeadlineExceeded,
                "no turn to send before the deadline",
            )
        };
        let (_turn, id) = self.take_turn(deadline).ok_or_else(too_late)?;
        buf[4..8].copy_from_slice(&id.to_be_bytes());
        {
            let mut calls = lock(&self.calls);
            if let Some(why) = &calls.closed {
                return Err(Status::new(Code::Unavailable, why.clone()));
            }
            calls.waiting.push((id, waiter));
        }
        if let Err(e) = self.write_by(&buf, deadline) {
            take_entry(&mut lock(&self.calls).waiting, &id);
            return Err(e);
        }
        match id.checked_add(2) {
            Some(next) => lock(&self.turn).next_id = next,
            // Odd ids are used up (2^31 calls): ids cannot start over (a
            // server refuses them), so callers must connect again.
            None => {
                let mut calls = lock(&self.calls);
                calls
                    .closed
                    .get_or_insert_with(|| "stream ids used up: connect again".into());
            }
        }
        Ok(id)
    }

    /// Write a whole frame by `deadline` (the caller holds the turn); a
    /// frame cut short leaves the connection unusable, so it is closed.
    fn write_by(&self, buf: &[u8], deadline: Option<Instant>) -> Result<(), Status> {
        let mut written = 0;
        while written < buf.len() {
            let mut limit = WRITE_TIMEOUT;
            if let Some(deadline) = deadline {
                limit = limit.min(deadline.saturating_duration_since(Instant::now()));
            }
            let sent = if limit.is_zero() {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                self.stream
                    .set_write_timeout(Some(limit))
                    .and_then(|()| NoSignalWriter(&self.stream).write(&buf[written..]))
            };
            match sent {
                Ok(0) => return Err(self.cut(written, io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && limit < WRITE_TIMEOUT => {
                    let cut = self.cut(written, e);
                    return Err(Status::new(
                        Code::DeadlineExceeded,
                        format!("not sent before the deadline: {}", cut.message),
                    ));
                }
                Err(e) => return Err(self.cut(written, e)),
            }
        }
        Ok(())
    }

    /// A write failed after `written` bytes of a frame: Unavailable, and
    /// the connection closed unless nothing went out.
    fn cut(&self, written: usize, e: io::Error) -> Status {
        if written > 0 || e.kind() != io::ErrorKind::WouldBlock {
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
        Status::new(Code::Unavailable, format!("send request: {e}"))
    }

    fn read_responses(&self) {
        let why = loop {
            match frame::read_frame(&mut &self.stream) {
                Ok(Some(Frame::Message(h, data))) if h.kind == TYPE_RESPONSE => {
                    let reply = decode_response(&data);
                    // Not under the calls lock: a push may wait for room.
                    let waiter = take_entry(&mut lock(&self.calls).waiting, &h.stream_id);
                    match waiter {
                        Some(Waiter::Call(slot)) => slot.put(reply),
                        // A response ends a stream: with an error, or with
                        // one last message.
                        Some(Waiter::Stream(inbox)) => match reply {
                            Ok(last) => {
                                if !last.is_empty() {
                                    inbox.push(last);
                                }
                                inbox.finish(Ok(()));
                            }
                            Err(status) => inbox.finish(Err(status)),
                        },
                        None => {}
                    }
                }
                Ok(Some(Frame::Message(h, data))) if h.kind == TYPE_DATA => {
                    self.stream_data(h, data);
                }
                Ok(Some(Frame::TooLarge(h))) if h.kind == TYPE_RESPONSE || h.kind == TYPE_DATA => {
                    let waiter = take_entry(&mut lock(&self.calls).waiting, &h.stream_id);
                    if let Some(waiter) = waiter {
                        let why = too_large("response", h.length as usize);
                        waiter.end(Status::new(Code::ResourceExhausted, why));
                    }
                }
                Ok(Some(_)) => {} // a type from a later ttrpc
                Ok(None) => break "connection closed".to_string(),
                Err(e) => break format!("connection broken: {e}"),
            }
        };
        let mut calls = lock(&self.calls);
        for (_, waiter) in calls.waiting.drain(..) {
            waiter.end(Status::new(Code::Unavailable, why.clone()));
        }
        calls.closed = Some(why);
    }

    /// A data frame of a stream: a message, and/or the server's end.
    fn stream_data(&self, h: frame::Header, data: Vec<u8>) {
        let found = lock(&self.calls)
            .waiting
            .iter()
            .find_map(|(id, w)| match w {
                Waiter::Stream(inbox) if *id == h.stream_id => Some(inbox.clone()),
                _ => None,
            });
        let Some(inbox) = found else {
            return; // a stream we gave up on
        };
        if h.flags & FLAG_NO_DATA == 0 {
            inbox.push(data); // waits while the stream's queue is full
        }
        if h.flags & FLAG_REMOTE_CLOSED != 0 {
            take_entry(&mut lock(&self.calls).waiting, &h.stream_id);
            inbox.finish(Ok(()));
        }
    }

    /// Write a data frame on stream `id`.
    fn send_data(&self, id: u32, flags: u8, msg: &[u8]) -> Result<(), Status> {
        let buf = frame::encode_frame(id, TYPE_DATA, flags, msg)
            .map_err(|e| Status::new(Code::ResourceExhausted, format!("stream {id}: {e}")))?;
        let unavailable = |e: String| Status::new(Code::Unavailable, format!("stream {id}: {e}"));
        let _turn = self.take_turn(None);
        if let Some(why) = &lock(&self.calls).closed {
            return Err(unavailable(why.clone()));
        }
        self.write_by(&buf, None)
            .map_err(|s| unavailable(s.message))
    }
}

/// A ttrpc Request, encoded and checked against the size limit.
fn encode_request(
    service: &str,
    method: &str,
    payload: Vec<u8>,
    timeout: Option<Duration>,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, Status> {
    let req = Request {
        service: service.to_string(),
        method: method.to_string(),
        payload,
        timeout_nano: timeout.map_or(0, |t| t.as_nanos().min(i64::MAX as u128) as i64),
        metadata: metadata
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    }
    .encode_to_vec();
    if req.len() > MAX_DATA {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!("{service}/{method}: {}", too_large("message", req.len())),
        ));
    }
    Ok(req)
}

/// The client's side of a streaming call (see [`Client::stream`]).
pub struct ClientStream {
    inner: Arc<Inner>,
    id: u32,
    inbox: Arc<Inbox>,
    client_streams: bool,
    /// Whether close_send went out (a dropped stream closes its side).
    sent_close: std::sync::atomic::AtomicBool,
}

impl ClientStream {
    /// The next message from the server; `Ok(None)` when the stream ended
    /// normally, the server's status when not; DeadlineExceeded if nothing
    /// came within `timeout`.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Option<Vec<u8>>, Status> {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.inbox.next(deadline).unwrap_or_else(|| {
            Err(Status::new(
                Code::DeadlineExceeded,
                format!("stream {}: nothing within {timeout:?}", self.id),
            ))
        })
    }

    /// Send one message (a stream opened with `client_streams`).
    pub fn send(&self, msg: &[u8]) -> Result<(), Status> {
        self.check_client_streams()?;
        self.inner.send_data(self.id, 0, msg)
    }

    /// Close the client's side: the server's recv then sees the end.
    pub fn close_send(&self) -> Result<(), Status> {
        self.check_client_streams()?;
        self.sent_close
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner
            .send_data(self.id, FLAG_REMOTE_CLOSED | FLAG_NO_DATA, &[])
    }

    fn check_client_streams(&self) -> Result<(), Status> {
        if self.client_streams {
            Ok(())
        } else {
            Err(Status::new(
                Code::FailedPrecondition,
                "the stream was opened without client_streams",
            ))
        }
    }
}

impl Drop for ClientStream {
    /// Answers still coming on this stream are dropped; an open client
    /// side is closed, so the server's handler is not left waiting.
    fn drop(&mut self) {
        take_entry(&mut lock(&self.inner.calls).waiting, &self.id);
        // The reader may wait for this stream to make room: it need not.
        self.inbox
            .finish(Err(Status::new(Code::Canceled, "stream dropped")));
        if self.client_streams && !*self.sent_close.get_mut() {
            let _ = self.close_send();
        }
    }
}

fn decode_response(data: &[u8]) -> Reply {
    let resp = Response::decode(data)
        .map_err(|e| Status::new(Code::Internal, format!("unmarshal response: {e}")))?;
    match resp.status {
        Some(s) if s.code != Code::Ok as i32 => Err(Status::from_proto(&s)),
        _ => Ok(resp.payload),
    }
}

/// Typed helper on top of Client::call.
pub fn call<Req: Message, Resp: Message + Default>(
    client: &Client,
    service: &str,
    method: &str,
    req: &Req,
    timeout: Option<Duration>,
) -> Result<Resp, Status> {
    let payload = client.call(service, method, req.encode_to_vec(), timeout, &[])?;
    Resp::decode(&payload[..]).map_err(|e| {
        Status::new(
            Code::Internal,
            format!("decode {}: {e}", short_type_name::<Resp>()),
        )
    })
}
