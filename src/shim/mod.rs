//! containerd's shim v2 (`containerd-shim-skiff-v2`): the long-lived parent
//! of a container's processes. It serves containerd's task API over ttrpc,
//! drives the OCI runtime as a subprocess, holds the processes' stdio,
//! reaps them, records their exits and tells containerd through events.
//!
//! Memory is the design constraint (one shim per container or pod): a few
//! threads with small stacks, no async runtime, nothing made before it is
//! needed. Measured (release build, one running container, 9 threads):
//! VmHWM ~2.0 MB, of which RssAnon ~0.2 MB; the rest is this binary's text
//! mapped from the page cache, shared by every shim and runtime process.
//! How much of it a process maps depends on the kernel more than on us
//! (64 KiB fault-around; 6.x maps whole large folios of a freshly written
//! file: three touched pages of a just-copied binary map 1.6 MB).

pub mod address;
pub mod console;
pub mod container;
pub mod daemon;
pub mod events;
pub mod log;
pub mod logger;
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
