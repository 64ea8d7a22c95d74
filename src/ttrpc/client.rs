//! The ttrpc client: one connection, calls from many threads in flight at
//! once (stream ids 1, 3, 5, … in the order they go out), a reader thread
//! handing each response to the call waiting for its stream id.

use super::addr::{connect_stream, NoSignalWriter};
use super::frame::{
    self, Frame, FLAG_NO_DATA, FLAG_REMOTE_CLOSED, FLAG_REMOTE_OPEN, MAX_DATA, TYPE_DATA,
    TYPE_REQUEST, TYPE_RESPONSE,
};
use super::stream::Inbox;
use super::{lock, short_type_name, take_entry, Code, Status};
use crate::proto::ttrpc::{KeyValue, Request, Response};
use prost::Message;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const READER_STACK: usize = 64 << 10;
/// A server that stops reading for this long fails the call (Unavailable).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

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

    /// The answer, or None if `timeout` passed first.
    fn take(&self, timeout: Option<Duration>) -> Option<Reply> {
        let end = timeout.map(|t| Instant::now() + t);
        let mut reply = lock(&self.reply);
        loop {
            if let Some(r) = reply.take() {
                return Some(r);
            }
            reply = match end {
                None => self.ready.wait(reply).unwrap_or_else(|p| p.into_inner()),
                Some(end) => {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    let waited = self.ready.wait_timeout(reply, left);
                    waited.unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
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
    /// out in increasing order (ttrpc v1.2 servers refuse anything else).
    send: Mutex<u32>,
    calls: Mutex<Calls>,
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
    pub fn connect(addr: &str) -> io::Result<Client> {
        Client::from_stream(connect_stream(addr)?)
    }

    /// A client on a connected stream.
    pub fn from_stream(stream: UnixStream) -> io::Result<Client> {
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let inner = Arc::new(Inner {
            stream,
            send: Mutex::new(1),
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
    /// otherwise only the server streams.
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
            .send(&req, flags, Waiter::Stream(inbox.clone()))
            .map_err(|why| Status::new(Code::Unavailable, format!("{service}/{method}: {why}")))?;
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
    /// answer within `timeout` is DeadlineExceeded (the server is told the
    /// timeout too).
    pub fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        timeout: Option<Duration>,
        metadata: &[(String, String)],
    ) -> Result<Vec<u8>, Status> {
        let req = encode_request(service, method, payload, timeout, metadata)?;
        let slot = Arc::new(Slot::default());
        let id = self
            .inner
            .send(&req, 0, Waiter::Call(slot.clone()))
            .map_err(|why| Status::new(Code::Unavailable, format!("{service}/{method}: {why}")))?;
        match slot.take(timeout) {
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

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.inner.stream.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Inner {
    /// Take the next stream id, register `waiter` for what comes back and
    /// write the request; the stream id, or why it could not go out.
    fn send(&self, req: &[u8], flags: u8, waiter: Waiter) -> Result<u32, String> {
        let mut next = lock(&self.send);
        let id = *next;
        {
            let mut calls = lock(&self.calls);
            if let Some(why) = &calls.closed {
                return Err(why.clone());
            }
            calls.waiting.push((id, waiter));
        }
        let buf = frame::encode_frame(id, TYPE_REQUEST, flags, req).map_err(|e| e.to_string())?;
        if let Err(e) = NoSignalWriter(&self.stream).write_all(&buf) {
            take_entry(&mut lock(&self.calls).waiting, &id);
            // A partial frame leaves the stream unusable for everyone.
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
            return Err(format!("send request: {e}"));
        }
        // Odd ids; after 2^31 calls wrap to 1 again (servers then refuse, as
        // ttrpc's own client would also run out).
        *next = id.checked_add(2).unwrap_or(1);
        Ok(id)
    }

    fn read_responses(&self) {
        let why = loop {
            match frame::read_frame(&mut &self.stream) {
                Ok(Some(Frame::Message(h, data))) if h.kind == TYPE_RESPONSE => {
                    let reply = decode_response(&data);
                    match take_entry(&mut lock(&self.calls).waiting, &h.stream_id) {
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
                    if let Some(waiter) = take_entry(&mut lock(&self.calls).waiting, &h.stream_id) {
                        waiter.end(Status::new(
                            Code::ResourceExhausted,
                            format!(
                                "response length {} exceed maximum message size of {MAX_DATA}",
                                h.length
                            ),
                        ));
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
        let mut calls = lock(&self.calls);
        let Some(inbox) = calls.waiting.iter().find_map(|(id, w)| match w {
            Waiter::Stream(inbox) if *id == h.stream_id => Some(inbox.clone()),
            _ => None,
        }) else {
            return; // a stream we gave up on
        };
        if h.flags & FLAG_NO_DATA == 0 {
            inbox.push(data);
        }
        if h.flags & FLAG_REMOTE_CLOSED != 0 {
            take_entry(&mut calls.waiting, &h.stream_id);
            inbox.finish(Ok(()));
        }
    }

    /// Write a data frame on stream `id`.
    fn send_data(&self, id: u32, flags: u8, msg: &[u8]) -> Result<(), Status> {
        let unavailable = |e: String| Status::new(Code::Unavailable, format!("stream {id}: {e}"));
        let buf = frame::encode_frame(id, TYPE_DATA, flags, msg)
            .map_err(|e| Status::new(Code::ResourceExhausted, format!("stream {id}: {e}")))?;
        let _order = lock(&self.send);
        if let Some(why) = &lock(&self.calls).closed {
            return Err(unavailable(why.clone()));
        }
        NoSignalWriter(&self.stream).write_all(&buf).map_err(|e| {
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
            unavailable(e.to_string())
        })
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
            format!(
                "{service}/{method}: message length {} exceed maximum message size of {MAX_DATA}",
                req.len()
            ),
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
        self.inbox.next(timeout).unwrap_or_else(|| {
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
