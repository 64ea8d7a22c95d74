//! `runc run` in the foreground with a terminal and no console socket: the
//! runtime receives the pty master itself and relays it to its own stdio.

use crate::error::{Context, Result};
use crate::sys::{pty, sock};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

/// Where a new process's pty master goes: the console socket at `path`, or
/// (with a terminal and no socket) a socketpair whose other end the runtime
/// keeps to relay the terminal itself. Returns (the process's end, ours).
pub(crate) fn console_endpoints(
    path: Option<&str>,
    terminal: bool,
) -> Result<(Option<UnixStream>, Option<UnixStream>)> {
    match path {
        Some(p) => {
            let s =
                UnixStream::connect(p).with_context(|| format!("connect to console socket {p}"))?;
            Ok((Some(s), None))
        }
        None if terminal => {
            let (a, b) = UnixStream::pair().context("socketpair for the console")?;
            Ok((Some(a), Some(b)))
        }
        None => Ok((None, None)),
    }
}

pub struct Relay {
    master: File,
    output: Option<JoinHandle<()>>,
    _raw: Option<pty::RawMode>,
}

/// Take the master the init sent, and start copying both ways.
pub fn start(socket: &UnixStream) -> Result<Relay> {
    let mut name = [0u8; 64];
    let (_, fd) = sock::recv_fd(socket, &mut name)?;
    let master: OwnedFd = fd.ok_or_else(|| crate::err!("terminal: the init sent no pty master"))?;
    let master = File::from(master);
    let raw = pty::RawMode::stdin();
    let relay = Relay {
        master: master.try_clone().context("dup pty master")?,
        output: None,
        _raw: raw,
    };
    resize_from_stdin(&relay.master);
    let mut to_master = master.try_clone().context("dup pty master")?;
    // Input: detached; it ends when stdin does or the pty goes away.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut from_master = master;
    let output = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut stdout = std::io::stdout();
        // EIO once the last slave holder is gone.
        while let Ok(n) = from_master.read(&mut buf) {
            if n == 0
                || stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
            {
                break;
            }
        }
    });
    Ok(Relay {
        output: Some(output),
        ..relay
    })
}

fn resize_from_stdin(master: &File) {
    if let Some((rows, cols)) = pty::size(rustix::stdio::stdin()) {
        let _ = pty::set_size(master, rows, cols);
    }
}

impl Relay {
    /// The user's terminal changed size (SIGWINCH).
    pub fn resize(&self) {
        resize_from_stdin(&self.master);
    }

    /// Wait (briefly) for the last output after the init exited.
    pub fn finish(mut self) {
        if let Some(h) = self.output.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while !h.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}
