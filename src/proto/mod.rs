//! containerd's protobuf messages, as our own structs with prost's derive.
//!
//! No code generation: each struct is written here, and its field numbers
//! are those of containerd's `.proto` files (facts of the wire format; the
//! file each module follows is named in its header). Field order in each
//! struct follows the field numbers, so the encoding matches protoc's byte
//! for byte (tests/ttrpc_wire.rs checks that against `protoc --encode`).

pub mod events;
pub mod options;
pub mod services;
pub mod task;
pub mod ttrpc;
pub mod types;
