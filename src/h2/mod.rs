//! HTTP/2 (RFC 7540) for the daemon's gRPC transport.

pub mod hpack;
mod huffman;
