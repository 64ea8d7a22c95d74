//! The session keyring: each container gets its own, so keys are not shared
//! with the host's session.

use crate::error::Result;

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Join a new anonymous-to-the-host session keyring named `name`.
/// Kernels or namespaces without keyring support are not an error.
pub fn join_new_session(name: &str) -> Result<()> {
    let cname = super::cstring(name)?;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, name) reads one NUL-terminated string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            cname.as_ptr(),
        )
    };
    if ret == -1 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS | libc::EACCES | libc::EPERM | libc::EDQUOT) => Ok(()),
            _ => Err(crate::Error::from(e).wrap("join a new session keyring")),
        };
    }
    Ok(())
}
