//! Loading a compiled seccomp filter into the calling thread:
//! seccomp(2) with SECCOMP_SET_MODE_FILTER.

use crate::error::{Error, Result};
use crate::seccomp::Program;

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;

// The pointer cast below relies on identical layouts.
const _: () = assert!(
    std::mem::size_of::<crate::seccomp::SockFilter>() == std::mem::size_of::<libc::sock_filter>()
        && std::mem::align_of::<crate::seccomp::SockFilter>()
            == std::mem::align_of::<libc::sock_filter>()
);

/// Install `prog` with its flags. The caller either has set no_new_privs
/// (`process::set_no_new_privs`) or holds CAP_SYS_ADMIN; the filter then
/// applies to this thread (all threads with SECCOMP_FILTER_FLAG_TSYNC) and
/// to everything it execs. Allocates nothing unless it fails.
pub fn install(prog: &Program) -> Result<()> {
    let len = prog.filter.len();
    if len == 0 || len > u16::MAX as usize {
        crate::bail!("seccomp: a filter of {len} instructions cannot be installed");
    }
    let fprog = libc::sock_fprog {
        len: len as _,
        filter: prog.filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `SockFilter` is #[repr(C)] with the fields of the kernel's
    // struct sock_filter (u16, u8, u8, u32) in that order, so the pointer
    // names `len` valid sock_filter values; `fprog` and `prog.filter` live
    // across the call and the kernel copies the program before returning.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            prog.flags as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret == -1 {
        let e = std::io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::EACCES) {
            " (installing a filter needs no_new_privs or CAP_SYS_ADMIN)"
        } else {
            ""
        };
        return Err(Error::new(format!(
            "seccomp: install filter: {}{hint}",
            Error::from(e)
        )));
    }
    if ret > 0 {
        // With SECCOMP_FILTER_FLAG_TSYNC: the id of a thread that could not
        // be synchronized; nothing was installed.
        crate::bail!("seccomp: install filter: thread {ret} could not be synchronized (TSYNC)");
    }
    Ok(())
}
