//! The ttrpc client: one connection, calls from many threads in flight at
//! once (stream ids 1, 3, 5, … in the order they go out), a reader thread
//! handing each response to the call waiting for its stream id.

use super::addr::{connect_stream, NoSignalWriter};
use super::frame::{self, Frame, MAX_DATA, TYPE_REQUEST, TYPE_RESPONSE};
use super::server::lock;
use super::{short_type_name, Code, Status};
use crate::proto::ttrpc::{KeyValue, Request, Response};
use prost::Message;
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const READER_STACK: usize = 64 << 10;
/// A server that stops reading for this long fails the call (Unavailable).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

type Reply = Result<Vec<u8>, Status>;

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

#[derive(Default)]
struct Calls {
    waiting: HashMap<u32, SyncSender<Reply>>,
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
        let (tx, rx) = sync_channel(1);
        let id = self
            .inner
            .send(&req, tx)
            .map_err(|why| Status::new(Code::Unavailable, format!("{service}/{method}: {why}")))?;
        let reply = match timeout {
            Some(t) => rx.recv_timeout(t),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match reply {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                lock(&self.inner.calls).waiting.remove(&id);
                Err(Status::new(
                    Code::DeadlineExceeded,
                    format!("{service}/{method}: no answer within {timeout:?}"),
                ))
            }
            Err(RecvTimeoutError::Disconnected) => Err(Status::new(
                Code::Unavailable,
                format!("{service}/{method}: connection closed"),
            )),
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
    /// Take the next stream id, register `tx` for its answer and write the
    /// request; the stream id, or why it could not go out.
    fn send(&self, req: &[u8], tx: SyncSender<Reply>) -> Result<u32, String> {
        let mut next = lock(&self.send);
        let id = *next;
        {
            let mut calls = lock(&self.calls);
            if let Some(why) = &calls.closed {
                return Err(why.clone());
            }
            calls.waiting.insert(id, tx);
        }
        let buf = frame::encode_frame(id, TYPE_REQUEST, 0, req).map_err(|e| e.to_string())?;
        if let Err(e) = NoSignalWriter(&self.stream).write_all(&buf) {
            lock(&self.calls).waiting.remove(&id);
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
                    if let Some(tx) = lock(&self.calls).waiting.remove(&h.stream_id) {
                        let _ = tx.send(reply);
                    }
                }
                Ok(Some(Frame::TooLarge(h))) if h.kind == TYPE_RESPONSE => {
                    if let Some(tx) = lock(&self.calls).waiting.remove(&h.stream_id) {
                        let _ = tx.send(Err(Status::new(
                            Code::ResourceExhausted,
                            format!(
                                "response length {} exceed maximum message size of {MAX_DATA}",
                                h.length
                            ),
                        )));
                    }
                }
                Ok(Some(_)) => {} // not an answer to a unary call
                Ok(None) => break "connection closed".to_string(),
                Err(e) => break format!("connection broken: {e}"),
            }
        };
        let mut calls = lock(&self.calls);
        for (_, tx) in calls.waiting.drain() {
            let _ = tx.send(Err(Status::new(Code::Unavailable, why.clone())));
        }
        calls.closed = Some(why);
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
