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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const MEMFD_NAME: &str = "skiff-sealed";

/// Is our binary already out of reach of writers? Judged by the file we
/// run from, not by its name: a memfd named like ours but unsealed, or a
/// file whose path merely looks safe, does not count.
pub fn is_sealed() -> bool {
    rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .is_ok_and(|fd| is_write_protected(fd.as_fd()))
}

/// Can nobody write the file behind `fd`: a memfd sealed against writes
/// and size changes (F_GET_SEALS), or a file on a read-only mount
/// (fstatvfs ST_RDONLY)?
pub fn is_write_protected(fd: BorrowedFd) -> bool {
    use rustix::fs::SealFlags;
    let needed = SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK;
    // Files that cannot carry seals answer EINVAL.
    if rustix::fs::fcntl_get_seals(fd).is_ok_and(|s| s.contains(needed)) {
        return true;
    }
    rustix::fs::fstatvfs(fd)
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

/// A read-only view of our binary for running it as a child that would
/// otherwise protect itself by re-executing (the runtime's create and
/// exec): a child exec'd through `/proc/self/fd/N` of this fd runs from it
/// and finds itself sealed. None where the view cannot be made read-only;
/// no sealed copy then (a long-lived caller would keep the binary's size
/// in memory for it).
pub fn readonly_self() -> Option<OwnedFd> {
    readonly_view()
        .ok()
        .filter(|fd| is_write_protected(fd.as_fd()))
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

/// Set, to our pid, in the environment of the re-exec: the same process
/// (execve keeps the pid) finding it knows it was re-executed already; a
/// child that inherits it has another pid.
const REEXEC_MARKER: &str = "_SKIFF_REEXEC_PID";

/// Were we re-executed by [`ensure_sealed`] already (this very process)?
fn reexeced_already(marker: Option<std::ffi::OsString>, pid: u32) -> bool {
    marker.is_some_and(|m| m.to_str() == Some(pid.to_string().as_str()))
}

/// The file to re-exec from: the read-only view if it is one, else a
/// sealed copy; checked write-protected either way (the view can turn out
/// writable, e.g. where mount_setattr is filtered and answers success).
fn protected_image(view: Result<OwnedFd>) -> Result<OwnedFd> {
    match view {
        Ok(fd) if is_write_protected(fd.as_fd()) => Ok(fd),
        _ => {
            let copy = sealed_copy()?;
            if !is_write_protected(copy.as_fd()) {
                crate::bail!("the sealed copy of our binary to re-exec from is writable");
            }
            Ok(copy)
        }
    }
}

/// Re-exec this very command line from a read-only view (or a sealed copy)
/// of the binary, unless we already run from one. Returns only when already
/// sealed. Re-executes at most once: a process that finds itself
/// re-executed and still unprotected fails instead of looping.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    if reexeced_already(std::env::var_os(REEXEC_MARKER), std::process::id()) {
        crate::bail!(
            "re-executed from a protected view of our binary, and still not running from one"
        );
    }
    let exe = protected_image(readonly_view())?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()).unwrap_or_default())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != REEXEC_MARKER)
        .chain([(REEXEC_MARKER.into(), std::process::id().to_string().into())])
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn memfd(name: &str) -> std::fs::File {
        let flags = rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING;
        let fd = rustix::fs::memfd_create(name, flags).unwrap();
        let mut f = std::fs::File::from(fd);
        f.write_all(b"image").unwrap();
        f
    }

    #[test]
    fn protection_is_judged_by_the_file_not_its_name() {
        // Named like our sealed copy, but writable.
        let unsealed = memfd(MEMFD_NAME);
        assert!(!is_write_protected(unsealed.as_fd()));
        // Sealed against writes only: it could still grow.
        let partly = memfd("other");
        rustix::fs::fcntl_add_seals(&partly, rustix::fs::SealFlags::WRITE).unwrap();
        assert!(!is_write_protected(partly.as_fd()));
        let sealed = memfd("any-name");
        rustix::fs::fcntl_add_seals(
            &sealed,
            rustix::fs::SealFlags::WRITE
                | rustix::fs::SealFlags::GROW
                | rustix::fs::SealFlags::SHRINK,
        )
        .unwrap();
        assert!(is_write_protected(sealed.as_fd()));
        // A file on a writable mount; our own sealed copy; the view.
        let tmp = std::env::temp_dir().join(format!("skiff-exe-{}", std::process::id()));
        let plain = std::fs::File::create(&tmp).unwrap();
        let _ = std::fs::remove_file(&tmp);
        assert!(!is_write_protected(plain.as_fd()));
        assert!(is_write_protected(sealed_copy().unwrap().as_fd()));
        if let Ok(view) = readonly_view() {
            assert!(is_write_protected(view.as_fd()));
        }
    }

    /// A view that turns out writable is replaced by the sealed copy (it
    /// was an error).
    #[test]
    fn a_writable_view_falls_back_to_the_sealed_copy() {
        let tmp = std::env::temp_dir().join(format!("skiff-view-{}", std::process::id()));
        let writable = OwnedFd::from(std::fs::File::create(&tmp).unwrap());
        let _ = std::fs::remove_file(&tmp);
        let image = protected_image(Ok(writable)).unwrap();
        assert!(is_write_protected(image.as_fd()));
        assert!(rustix::fs::fcntl_get_seals(&image).is_ok(), "a memfd");
        let image = protected_image(Err(crate::Error::new("no open_tree"))).unwrap();
        assert!(is_write_protected(image.as_fd()));
    }

    /// The marker names the re-executed process itself: a child that
    /// inherits it (another pid) may re-exec; the process itself may not.
    #[test]
    fn one_reexec_per_process() {
        assert!(reexeced_already(Some("42".into()), 42));
        assert!(!reexeced_already(Some("42".into()), 43));
        assert!(!reexeced_already(None, 42));
    }
}
