//! Container lifecycle over a state directory: what happens, and in which
//! order. How each kernel thing is done lives in `crate::sys`.
//!
//! create: the runtime clones the container's init with every new namespace
//! at once; the init prepares everything (rootfs, devices, console, user,
//! capabilities), reports ready over a socketpair and then blocks in
//! accept() on `exec.sock` in the state dir. start: connects to that
//! socket, which releases the init into execve. The socket's presence is
//! what makes a live container "created".

pub mod container;
pub mod create;
pub mod events;
pub mod exec;
pub mod features;
mod hooks;
mod init;
mod mount_sources;
pub mod ops;
pub mod ps;
mod rootfs;
pub mod tty;
mod user_process;

pub use container::{Container, StateRoot, Status};

/// Name of the start handshake socket in a container's state dir.
pub(crate) const EXEC_SOCKET: &str = "exec.sock";
/// The runtime-spec version we write into state.
pub const OCI_VERSION: &str = "1.0.2-dev";
