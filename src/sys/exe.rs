//! Running from a read-only view of our own binary, so a process that
//! enters a container can never be used to rewrite the host's binary
//! through /proc/PID/exe (CVE-2019-5736).
//!
//! The view is a detached, read-only bind mount of the binary (open_tree +
//! mount_setattr): no copy, the page cache is shared, and a write through
//! /proc/PID/exe fails with EROFS. Where the kernel lacks those calls, a
//! sealed memfd copy serves instead.

use super::check;
use crate::error::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const MEMFD_NAME: &str = "skiff-sealed";

/// Is our binary already out of reach of writers (a sealed memfd, or any
/// read-only mount)?
pub fn is_sealed() -> bool {
    let memfd = std::fs::read_link("/proc/self/exe").is_ok_and(|p| {
        p.to_string_lossy()
            .starts_with(&format!("/memfd:{MEMFD_NAME}"))
    });
    memfd
        || rustix::fs::statvfs("/proc/self/exe")
            .is_ok_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// A detached read-only bind mount of our binary, as an fd of the file.
fn readonly_view() -> Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let path = super::cstring("/proc/self/exe")?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: open_tree on a NUL-terminated path; returns a new fd we own.
    let fd =
        check(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })
            .context("open_tree of our binary")?;
    // SAFETY: fd was just returned by open_tree.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = super::cstring("")?;
    // SAFETY: mount_setattr on our detached mount with a valid mount_attr of
    // the size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).context("make the view of our binary read-only")?;
    Ok(tree)
}

/// A sealed memfd copy of our binary.
fn sealed_copy() -> Result<OwnedFd> {
    let name = super::cstring(MEMFD_NAME)?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a NUL-terminated name; the fd is ours.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), flags) } as libc::c_long)
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
    Ok(memfd)
}

/// Re-exec this very command line from a read-only view (or a sealed copy)
/// of the binary, unless we already run from one. Returns only when already
/// sealed.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let exe = readonly_view().or_else(|_| sealed_copy())?;
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
            exe.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(super::last_error().wrap("re-exec from the read-only binary"))
}
