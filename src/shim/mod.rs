//! containerd's shim v2 (`containerd-shim-skiff-v2`): the long-lived parent
//! of a container's processes. It serves containerd's task API over ttrpc,
//! drives the OCI runtime as a subprocess, holds the processes' stdio,
//! reaps them, records their exits and tells containerd through events.
//!
//! Memory is the design constraint (one shim per container or pod): a few
//! threads with small stacks, no async runtime, nothing made before it is
//! needed.

pub mod address;
pub mod console;
pub mod daemon;
pub mod events;
pub mod metrics;
pub mod oom;
pub mod options;
pub mod process;
pub mod reaper;
pub mod rootfs;
pub mod runtime;
pub mod service;
pub mod stdio;

/// Stack size of the shim's threads: they copy bytes or wait; none recurses.
pub const SMALL_STACK: usize = 64 * 1024;
