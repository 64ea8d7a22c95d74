//! Passing file descriptors over unix sockets (SCM_RIGHTS).

use crate::error::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const CMSG_SPACE_ONE_FD: usize = 24; // CMSG_SPACE(sizeof(int)) on 64-bit

#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_SPACE_ONE_FD]);

/// Send `fd` along with the bytes `data` over a connected unix socket.
pub fn send_fd(sock: &impl AsRawFd, data: &[u8], fd: RawFd) -> Result<()> {
    let mut buf = CmsgBuf([0; CMSG_SPACE_ONE_FD]);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; the control buffer is large and aligned
    // enough for one cmsghdr with one int, and CMSG_* stay inside it.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.0.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = CMSG_SPACE_ONE_FD as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, fd);
        if libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) == -1 {
            return Err(super::last_error().wrap("send fd over socket"));
        }
    }
    Ok(())
}

/// Receive one fd (and up to `data.len()` bytes) from a unix socket.
/// Returns the bytes read and the fd, if one came.
pub fn recv_fd(sock: &impl AsRawFd, data: &mut [u8]) -> Result<(usize, Option<OwnedFd>)> {
    let mut buf = CmsgBuf([0; CMSG_SPACE_ONE_FD]);
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: as in send_fd; the kernel writes at most msg_controllen bytes
    // of control data, and we read an fd only from an SCM_RIGHTS header.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.0.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = CMSG_SPACE_ONE_FD as _;
        let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n == -1 {
            return Err(super::last_error().wrap("receive fd from socket"));
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        let fd = if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd);
            Some(OwnedFd::from_raw_fd(raw))
        } else {
            None
        };
        Ok((n as usize, fd))
    }
}

/// A connected pair of SOCK_SEQPACKET unix sockets (message boundaries kept),
/// both close-on-exec.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let (a, b) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .context("socketpair")?;
    Ok((a, b))
}
