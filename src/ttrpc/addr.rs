//! ttrpc addresses: a path, `unix:///path`, or an abstract socket
//! (`unix://@name` or `@name`), and the socket plumbing shared by the
//! server and the client.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

fn socket_addr(addr: &str) -> io::Result<SocketAddr> {
    let rest = addr.strip_prefix("unix://").unwrap_or(addr);
    if rest.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket address {addr:?}: empty"),
        ));
    }
    match rest.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(rest),
    }
    .map_err(|e| io::Error::new(e.kind(), format!("socket address {addr:?}: {e}")))
}

/// Listen on `addr`. A path that exists is an error (AddrInUse): the
/// caller decides whether a stale socket may be removed.
pub fn listen(addr: &str) -> io::Result<UnixListener> {
    UnixListener::bind_addr(&socket_addr(addr)?)
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {addr}: {e}")))
}

/// Connect a stream to `addr`.
pub fn connect_stream(addr: &str) -> io::Result<UnixStream> {
    UnixStream::connect_addr(&socket_addr(addr)?)
        .map_err(|e| io::Error::new(e.kind(), format!("connect to {addr}: {e}")))
}

/// Writes with MSG_NOSIGNAL: a peer that went away is an EPIPE error, not a
/// SIGPIPE that would kill a process that did not ignore it.
pub(crate) struct NoSignalWriter<'a, S: AsFd>(pub &'a S);

impl<S: AsFd> Write for NoSignalWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match rustix::net::send(self.0, buf, rustix::net::SendFlags::NOSIGNAL) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The uid of the process at the other end of a unix stream.
pub(crate) fn peer_uid(s: &UnixStream) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(s)?.uid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_paths_and_abstract_sockets() {
        let a = socket_addr("unix:///run/x.sock").unwrap();
        assert_eq!(a.as_pathname().unwrap().to_str(), Some("/run/x.sock"));
        let a = socket_addr("/run/x.sock").unwrap();
        assert_eq!(a.as_pathname().unwrap().to_str(), Some("/run/x.sock"));
        let a = socket_addr("unix://@skiff/x").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"skiff/x"[..]));
        let a = socket_addr("@y").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"y"[..]));
        assert!(socket_addr("unix://").is_err());
        assert!(socket_addr(&format!("/{}", "x".repeat(200))).is_err());
    }
}
