//! The gRPC client (skiff's ctr to a daemon): one HTTP/2 connection with
//! a reader thread; unary calls and streams from any thread at once.

use super::{format_timeout, framed, status_of, MessageReader};
use crate::h2::{Conn, Limits, Role, StreamRef};
use crate::ttrpc::{lock, Code, Status};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Stack of the connection's reader thread.
const READER_STACK: usize = 128 << 10;

pub struct Client {
    conn: Arc<Conn>,
}

impl Client {
    /// Connect to `addr` (a path, `unix://path` or `unix://@abstract`).
    pub fn connect(addr: &str) -> io::Result<Client> {
        let sock = crate::ttrpc::connect_stream(addr)?;
        let conn = Conn::open(sock, Role::Client, Limits::default())?;
        let reader = conn.clone();
        std::thread::Builder::new()
            .name("grpc-client".into())
            .stack_size(READER_STACK)
            .spawn(move || reader.run_reader(&mut |_| false))?;
        Ok(Client { conn })
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    fn start(
        &self,
        service: &str,
        method: &str,
        timeout: Option<Duration>,
        metadata: &[(String, String)],
    ) -> Result<StreamRef, Status> {
        let path = format!("/{service}/{method}");
        let timeout = timeout.map(format_timeout);
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.as_bytes()),
            (b":authority", b"localhost"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", b"skiff-grpc/0.1"),
        ];
        if let Some(t) = &timeout {
            fields.push((b"grpc-timeout", t.as_bytes()));
        }
        let keys: Vec<String> = metadata
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        for (k, (_, v)) in keys.iter().zip(metadata) {
            fields.push((k.as_bytes(), v.as_bytes()));
        }
        self.conn
            .open_stream(&fields, false)
            .map_err(|e| Status::new(Code::Unavailable, format!("{path}: {e}")))
    }

    /// A unary call: the answer's payload, or the server's status;
    /// DeadlineExceeded once `timeout` passed.
    pub fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        timeout: Option<Duration>,
        metadata: &[(String, String)],
    ) -> Result<Vec<u8>, Status> {
        check_size(service, method, &payload)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let stream = self.start(service, method, timeout, metadata)?;
        stream
            .send_data(&framed(&payload), true)
            .map_err(|e| Status::new(Code::Unavailable, format!("{service}/{method}: {e}")))?;
        let mut reader = MessageReader::before_headers();
        let mut answer = None;
        while let Some(msg) = reader.next(&stream, deadline)? {
            answer.get_or_insert(msg);
        }
        end_status(&reader)?;
        answer.ok_or_else(|| {
            Status::new(
                Code::Internal,
                format!("{service}/{method}: no response message"),
            )
        })
    }

    /// A streaming call: `first` is the request (server streaming) or the
    /// first of the client's messages (`client_streams`).
    pub fn stream(
        &self,
        service: &str,
        method: &str,
        first: Vec<u8>,
        client_streams: bool,
        metadata: &[(String, String)],
    ) -> Result<ClientStream, Status> {
        check_size(service, method, &first)?;
        let stream = self.start(service, method, None, metadata)?;
        // A server may answer and reset the stream before the request is
        // out (grpc-go does for an unknown method): the status it sent is
        // then what recv reports, so a failed send is not the error.
        let _ = stream.send_data(&framed(&first), !client_streams);
        Ok(ClientStream {
            stream,
            reader: Mutex::new(MessageReader::before_headers()),
            client_streams,
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.conn.close();
    }
}

fn check_size(service: &str, method: &str, msg: &[u8]) -> Result<(), Status> {
    if msg.len() > super::MAX_MESSAGE {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!(
                "{service}/{method}: trying to send message larger than max ({} vs. {})",
                msg.len(),
                super::MAX_MESSAGE
            ),
        ));
    }
    Ok(())
}

/// How a stream ended: the HTTP status, then the trailers' status.
fn end_status(reader: &MessageReader) -> Result<(), Status> {
    if let Some(s) = &reader.http_status {
        if s != b"200" {
            let n: u32 = std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let code = match n {
                400 => Code::Internal,
                401 => Code::Unauthenticated,
                403 => Code::PermissionDenied,
                404 => Code::Unimplemented,
                429 | 502..=504 => Code::Unavailable,
                _ => Code::Unknown,
            };
            return Err(Status::new(
                code,
                format!("unexpected HTTP status code received from server: {n}"),
            ));
        }
    }
    status_of(reader.trailers.as_deref().unwrap_or_default())
}

/// The client's side of a streaming call.
pub struct ClientStream {
    stream: StreamRef,
    reader: Mutex<MessageReader>,
    client_streams: bool,
}

impl ClientStream {
    /// The next message; `Ok(None)` once the server ended the stream with
    /// OK, its status when not; DeadlineExceeded if nothing came within
    /// `timeout`.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Option<Vec<u8>>, Status> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut reader = lock(&self.reader);
        match reader.next(&self.stream, deadline)? {
            Some(msg) => Ok(Some(msg)),
            None => end_status(&reader).map(|()| None),
        }
    }

    /// Send one more message (a stream opened with `client_streams`).
    pub fn send(&self, msg: &[u8]) -> Result<(), Status> {
        self.check_client_streams()?;
        check_size("stream", "send", msg)?;
        self.stream
            .send_data(&framed(msg), false)
            .map_err(|e| Status::new(Code::Unavailable, e.to_string()))
    }

    /// End the client's side: the server's recv then sees the end.
    pub fn close_send(&self) -> Result<(), Status> {
        self.check_client_streams()?;
        self.stream
            .send_data(&[], true)
            .map_err(|e| Status::new(Code::Unavailable, e.to_string()))
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
