//! HTTP/2 (RFC 9113) over a unix socket, as gRPC uses it: cleartext with
//! prior knowledge, no push, no priorities. Blocking threads and no async
//! runtime: each connection has one reader thread that parses frames and
//! keeps the state ([`Conn`]); whoever sends (a handler, a client call)
//! writes whole frames under the connection's write lock, so frames of
//! different streams interleave and header blocks stay contiguous.
//!
//! [`frame`] is the codec, [`flow`] the windows, `conn` the state machine
//! shared by the server and the client side, [`hpack`] the header
//! compression.

mod conn;
pub mod flow;
pub mod frame;
pub mod hpack;
mod huffman;

pub use conn::{Conn, Event, Limits, Role, StreamGone, StreamRef};

/// HTTP/2 error codes (RFC 9113 §7), as RST_STREAM and GOAWAY carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    NoError = 0x0,
    Protocol = 0x1,
    Internal = 0x2,
    FlowControl = 0x3,
    SettingsTimeout = 0x4,
    StreamClosed = 0x5,
    FrameSize = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    Compression = 0x9,
    Connect = 0xa,
    EnhanceYourCalm = 0xb,
    InadequateSecurity = 0xc,
    Http11Required = 0xd,
}
