//! Changing user and group ids.

use super::check;
use crate::error::{Context, Result};

/// setgroups(2); one thread only (the caller is single-threaded).
pub fn set_groups(gids: &[u32]) -> Result<()> {
    // SAFETY: gids points at gids.len() gid_t values.
    let ret = unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) };
    check(ret).context("setgroups")?;
    Ok(())
}

/// setresgid(2) with all three ids equal.
pub fn set_gid(gid: u32) -> Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    check(ret).with_context(|| format!("setgid {gid}"))?;
    Ok(())
}

/// setresuid(2) with all three ids equal.
pub fn set_uid(uid: u32) -> Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    check(ret).with_context(|| format!("setuid {uid}"))?;
    Ok(())
}
