//! gRPC over HTTP/2 ([`crate::h2`]) on a unix socket: the [`Server`] that
//! serves the daemon's [`Handler`](crate::daemon::api::Handler)s to
//! containerd's clients, and the [`Client`] skiff's ctr uses.
//!
//! The wire (gRPC's PROTOCOL-HTTP2): a call is one HTTP/2 stream; the
//! request headers carry `:path` = `/service/Method`, `grpc-timeout` and
//! metadata (containerd's `containerd-namespace`); each message is a
//! 5-byte prefix (compressed flag, big-endian length) and the protobuf;
//! the answer ends with trailers `grpc-status` and a percent-encoded
//! `grpc-message`. Status codes are [`crate::ttrpc::Code`]'s numbers.

mod budget;
mod client;
mod server;

pub use client::{Client, ClientStream};
pub use server::{Server, ShutdownHandle};

use crate::h2::hpack::HeaderField;
use crate::h2::{ErrorCode, Event, StreamRef};
use crate::ttrpc::{Code, Status};
use budget::{Budget, Reserved};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest message either side takes or sends (containerd's
/// default for both directions).
pub const MAX_MESSAGE: usize = 16 << 20;

/// A message with its 5-byte prefix (never compressed).
pub(crate) fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// The value of header `name` (lowercase, as HTTP/2 sends names).
pub(crate) fn header<'a>(fields: &'a [HeaderField], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|f| f.name == name.as_bytes())
        .map(|f| &f.value[..])
}

/// Reads a stream's messages (reassembled from DATA frames as they come,
/// so a large message never needs a large window) and what ends it.
pub(crate) struct MessageReader {
    buf: Vec<u8>,
    /// Whether the first header block (the response headers on a client;
    /// the request's, consumed before, on a server) has been seen.
    headers_seen: bool,
    /// The response's `:status` (client side).
    pub http_status: Option<Vec<u8>>,
    /// The block that ended the stream (the trailers), if one did.
    pub trailers: Option<Vec<HeaderField>>,
    pub(crate) ended: bool,
    /// What a large message being assembled draws on (server side).
    budget: Option<Arc<Budget>>,
    /// The reservation of the message being assembled.
    reserved: Option<Reserved>,
}

impl MessageReader {
    /// For a server: the request headers were read already.
    pub(crate) fn after_headers() -> MessageReader {
        MessageReader {
            buf: Vec::new(),
            headers_seen: true,
            http_status: None,
            trailers: None,
            ended: false,
            budget: None,
            reserved: None,
        }
    }

    /// For a server: large messages are assembled within `budget`.
    pub(crate) fn within(budget: Arc<Budget>) -> MessageReader {
        MessageReader {
            budget: Some(budget),
            ..MessageReader::after_headers()
        }
    }

    /// For a client: the response headers come first.
    pub(crate) fn before_headers() -> MessageReader {
        MessageReader {
            headers_seen: false,
            ..MessageReader::after_headers()
        }
    }

    /// The next message; `Ok(None)` once the peer ended the stream;
    /// DeadlineExceeded if `deadline` passed first (the reader can be
    /// asked again).
    pub(crate) fn next(
        &mut self,
        stream: &StreamRef,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u8>>, Status> {
        loop {
            if self.buf.len() >= 5 {
                if self.buf[0] != 0 {
                    return Err(Status::new(
                        Code::Internal,
                        "grpc: compressed messages are not supported (no grpc-encoding was offered)",
                    ));
                }
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if len > MAX_MESSAGE {
                    return Err(Status::new(
                        Code::ResourceExhausted,
                        format!("grpc: received message larger than max ({len} vs. {MAX_MESSAGE})"),
                    ));
                }
                if self.buf.len() >= 5 + len {
                    let msg = self.buf[5..5 + len].to_vec();
                    self.buf.drain(..5 + len);
                    self.reserved = None;
                    return Ok(Some(msg));
                }
                // Incomplete: a large one must fit the budget first.
                if let Some(budget) = &self.budget {
                    if self.reserved.is_none() && len > budget::UNRESERVED {
                        self.reserved = Some(budget.reserve(len)?);
                    }
                }
            }
            if self.ended {
                if !self.buf.is_empty() {
                    return Err(Status::new(
                        Code::Internal,
                        format!(
                            "grpc: stream ended inside a message ({} bytes)",
                            self.buf.len()
                        ),
                    ));
                }
                return Ok(None);
            }
            let Some(ev) = stream.next(deadline) else {
                return Err(Status::new(
                    Code::DeadlineExceeded,
                    "context deadline exceeded",
                ));
            };
            match ev {
                Event::Data { data, end } => {
                    self.buf.extend_from_slice(&data);
                    self.ended = end;
                }
                Event::Headers { fields, end } if !self.headers_seen => {
                    self.headers_seen = true;
                    self.http_status = header(&fields, ":status").map(<[u8]>::to_vec);
                    if end {
                        // Trailers-only: the status came with the headers.
                        self.trailers = Some(fields);
                        self.ended = true;
                    }
                }
                Event::Headers { fields, end } => {
                    if !end {
                        return Err(Status::new(
                            Code::Internal,
                            "grpc: trailers without END_STREAM",
                        ));
                    }
                    self.trailers = Some(fields);
                    self.ended = true;
                }
                Event::Reset(code) => return Err(reset_status(code)),
                Event::Closed(why) => {
                    return Err(Status::new(
                        Code::Unavailable,
                        format!("connection closed: {why}"),
                    ))
                }
            }
        }
    }
}

/// The status of a stream the peer reset (gRPC's mapping of HTTP/2 codes).
fn reset_status(code: u32) -> Status {
    let c = match code {
        c if c == ErrorCode::RefusedStream as u32 => Code::Unavailable,
        c if c == ErrorCode::Cancel as u32 => Code::Canceled,
        c if c == ErrorCode::EnhanceYourCalm as u32 => Code::ResourceExhausted,
        c if c == ErrorCode::InadequateSecurity as u32 => Code::PermissionDenied,
        _ => Code::Internal,
    };
    Status::new(
        c,
        format!("stream terminated by RST_STREAM with error code: {code}"),
    )
}

/// The status trailers carry (`grpc-status`, `grpc-message`).
pub(crate) fn status_of(trailers: &[HeaderField]) -> Result<(), Status> {
    let Some(code) = header(trailers, "grpc-status") else {
        return Err(Status::new(
            Code::Internal,
            "server closed the stream without sending trailers",
        ));
    };
    let code = std::str::from_utf8(code)
        .ok()
        .and_then(|c| c.parse::<i32>().ok())
        .map_or(Code::Unknown, Code::from_i32);
    if code == Code::Ok {
        return Ok(());
    }
    let message = header(trailers, "grpc-message")
        .map(percent_decode)
        .unwrap_or_default();
    Err(Status::new(code, message))
}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`percent_encode`]; a `%` not followed by two hex
/// digits is kept as it is (gRPC's rule).
pub fn percent_decode(v: &[u8]) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' && i + 2 < v.len() {
            if let (Some(h), Some(l)) = (hex(v[i + 1]), hex(v[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `grpc-timeout`: at most 8 digits and a unit (H M S m u n).
pub fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A duration as `grpc-timeout`, in the finest unit that fits 8 digits
/// (rounded up, so the server never gives up before the client).
pub fn format_timeout(d: Duration) -> String {
    let nanos = d.as_nanos().max(1);
    for (unit, per) in [
        ('n', 1u128),
        ('u', 1_000),
        ('m', 1_000_000),
        ('S', 1_000_000_000),
        ('M', 60_000_000_000),
        ('H', 3_600_000_000_000),
    ] {
        let n = nanos.div_ceil(per);
        if n < 100_000_000 {
            return format!("{n}{unit}");
        }
    }
    "99999999H".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_and_format_in_grpc_units() {
        assert_eq!(parse_timeout(b"10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_timeout(b"1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout(b"7n"), Some(Duration::from_nanos(7)));
        assert_eq!(parse_timeout(b"123456789S"), None, "over 8 digits");
        assert_eq!(parse_timeout(b"S"), None);
        assert_eq!(parse_timeout(b"10x"), None);
        assert_eq!(parse_timeout(b"-1S"), None);
        assert_eq!(format_timeout(Duration::from_millis(1500)), "1500000u");
        assert_eq!(format_timeout(Duration::from_secs(30)), "30000000u");
        assert_eq!(format_timeout(Duration::from_secs(3000)), "3000000m");
        for d in [1, 999, 10_000_000, 123_456_789_000_000] {
            let d = Duration::from_nanos(d);
            let back = parse_timeout(format_timeout(d).as_bytes()).unwrap();
            assert!(
                back >= d && back - d < d / 1000 + Duration::from_nanos(1),
                "{d:?} {back:?}"
            );
        }
    }

    #[test]
    fn messages_are_percent_encoded_both_ways() {
        let s = "namespace \"x\": 100% not found\nnext — ok";
        let e = percent_encode(s);
        assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{e}");
        assert!(e.contains("100%25 not found%0Anext %E2%80%94 ok"), "{e}");
        assert_eq!(percent_decode(e.as_bytes()), s);
        // Malformed escapes stay as they are.
        assert_eq!(percent_decode(b"50%"), "50%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
    }

    #[test]
    fn trailers_give_the_status() {
        let f = |n: &str, v: &str| HeaderField {
            name: n.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        };
        assert_eq!(status_of(&[f("grpc-status", "0")]), Ok(()));
        let e =
            status_of(&[f("grpc-status", "5"), f("grpc-message", "x%3A not found")]).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (Code::NotFound, "x: not found")
        );
        assert_eq!(status_of(&[]).unwrap_err().code, Code::Internal);
        assert_eq!(
            status_of(&[f("grpc-status", "x")]).unwrap_err().code,
            Code::Unknown
        );
        assert_eq!(framed(b"ab"), vec![0, 0, 0, 0, 2, b'a', b'b']);
    }
}

#[cfg(test)]
mod server_tests;
