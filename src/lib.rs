//! skiff: the container stack as one library. Every applet in `applets/` is
//! a thin front-end over the modules here.

pub mod base64;
pub mod cgroups;
pub mod ctr;
pub mod daemon;
pub mod error;
pub mod filter;
pub mod fsutil;
pub mod grpc;
pub mod h2;
pub mod image;
pub mod json;
pub mod log;
pub mod metadata;
pub mod oci;
pub mod proto;
pub mod record;
pub mod registry;
pub mod runtime;
pub mod seccomp;
mod serve;
pub mod shim;
pub mod snapshot;
pub mod sys;
pub mod time;
pub mod toml;
pub mod ttrpc;

pub use error::{Context, Error, Kind, Result};
