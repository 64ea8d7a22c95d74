//! Thin safe wrappers over the kernel: how each thing is done. All of the
//! crate's `unsafe` lives under this module; callers above it decide what
//! to do and when.

pub mod bpf;
pub mod caps;
pub mod eventfd;
pub mod exe;
pub mod fs;
pub mod keyring;
pub mod mount;
pub mod ns;
pub mod process;
pub mod pty;
pub mod seccomp;
pub mod signal;
pub mod sock;
pub mod user;

use crate::error::{Error, Result};
use std::ffi::CString;

/// The errno of the last failed libc call, as an [`Error`].
pub(crate) fn last_error() -> Error {
    Error::from(std::io::Error::last_os_error())
}

/// Check a libc return value: -1 means errno is set.
pub(crate) fn check(ret: libc::c_long) -> Result<libc::c_long> {
    if ret == -1 {
        Err(last_error())
    } else {
        Ok(ret)
    }
}

pub(crate) fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(format!("{s:?}: contains a NUL byte")))
}

/// The raw errno value of an error that came from the OS, if any.
pub fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}
