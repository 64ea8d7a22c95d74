//! Pseudo-terminals for containers with `terminal: true`.

use crate::error::{Context, Result};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

pub fn set_size(fd: impl AsFd, rows: u16, cols: u16) -> Result<()> {
    let ws = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, ws).context("set terminal size")
}

/// Make `fd` the controlling terminal of this (new) session.
pub fn make_controlling(fd: impl AsFd) -> Result<()> {
    rustix::process::ioctl_tiocsctty(fd).context("make the pty the controlling terminal")
}

/// Unlock a freshly opened master and open its slave through the master
/// (TIOCGPTPEER), which needs no path lookup in any mount namespace.
pub fn open_peer(master: &OwnedFd) -> Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    rustix::pty::unlockpt(master).context("unlockpt")?;
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER on a pty master returns a new fd that we own.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER as _, flags) };
    if fd < 0 {
        return Err(super::last_error().wrap("open the pty slave"));
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Give the pty slave to the process's user, so it can use its terminal
/// (reopen /dev/tty, chmod it, run `mesg`). The group stays what devpts gave
/// (its gid= option, tty), as runc leaves it. Like runc, an owner the
/// current user namespace cannot map (EINVAL, EPERM) or a read-only devpts
/// is not an error: the terminal stays as it is.
pub fn give_to(slave: &OwnedFd, uid: u32) -> Result<()> {
    if uid == u32::MAX {
        // -1 means "leave unchanged" to the kernel, not a user.
        return Ok(());
    }
    let owner = rustix::fs::Uid::from_raw(uid);
    match rustix::fs::fchown(slave, Some(owner), None) {
        Ok(()) => Ok(()),
        Err(e)
            if e == rustix::io::Errno::INVAL
                || e == rustix::io::Errno::PERM
                || e == rustix::io::Errno::ROFS =>
        {
            Ok(())
        }
        Err(e) => Err(crate::Error::from(e).wrap("terminal: give the pty to the process's user")),
    }
}

/// The window size of a terminal, if `fd` is one.
pub fn size(fd: impl AsFd) -> Option<(u16, u16)> {
    rustix::termios::tcgetwinsize(fd)
        .ok()
        .map(|w| (w.ws_row, w.ws_col))
}

/// A terminal put in raw mode, restored when dropped.
pub struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    /// Raw mode on stdin when it is a terminal; None otherwise.
    pub fn stdin() -> Option<RawMode> {
        let stdin = rustix::stdio::stdin();
        if !rustix::termios::isatty(stdin) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
