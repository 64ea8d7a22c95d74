//! eventfd(2) and waiting for one to fire.

use super::check;
use crate::error::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub fn new() -> Result<OwnedFd> {
    // SAFETY: eventfd returns a new fd that we own.
    let fd =
        check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) } as libc::c_long).context("eventfd")?;
    // SAFETY: fd was just returned by eventfd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Wait up to `timeout_ms` for the eventfd to fire; consume and report it.
pub fn wait(fd: &OwnedFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) } > 0;
    if ready {
        let mut count = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer from our eventfd.
        unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr() as *mut libc::c_void, 8) };
    }
    ready
}
