//! Running from a sealed copy of our own binary, so a process that enters a
//! container can never be used to rewrite the host's binary through
//! /proc/PID/exe (CVE-2019-5736).

use super::check;
use crate::error::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const MEMFD_NAME: &str = "skiff-sealed";

/// Are we already running from the sealed copy?
pub fn is_sealed() -> bool {
    std::fs::read_link("/proc/self/exe").is_ok_and(|p| {
        p.to_string_lossy()
            .starts_with(&format!("/memfd:{MEMFD_NAME}"))
    })
}

/// Re-exec this very command line from a sealed memfd copy of the binary,
/// unless we already run from one. Returns only when already sealed.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let name = super::cstring(MEMFD_NAME)?;
    // SAFETY: memfd_create with a NUL-terminated name; the fd is ours.
    let fd = check(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    } as libc::c_long)
    .context("memfd_create for the sealed binary")?;
    // SAFETY: fd was just returned by memfd_create.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut src = std::fs::File::open("/proc/self/exe").context("open /proc/self/exe")?;
    let mut dst = std::fs::File::from(memfd.try_clone().context("dup memfd")?);
    std::io::copy(&mut src, &mut dst).context("copy the binary into a memfd")?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our memfd with integer arguments.
    check(unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } as libc::c_long)
        .context("seal the memfd")?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()).unwrap_or_default())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|s| s.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = super::cstring("")?;
    // SAFETY: the arrays are NULL-terminated and point at strings that live
    // across the call; AT_EMPTY_PATH executes the fd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            memfd.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(super::last_error().wrap("re-exec from the sealed binary"))
}
