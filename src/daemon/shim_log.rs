//! The shim's log fifo `<bundle>/log`: made before the shim starts and
//! read by the daemon for the shim's life, as containerd does (Debian's
//! runc shim refuses to run without a reader; skiff's shim drops lines
//! when there is none). Lines go to the daemon's log at debug level.

use crate::error::{Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use std::io::Read;
use std::path::Path;

/// Make the fifo (if missing) and open its read end now, non-blocking, so
/// a shim opening it for writing finds a reader.
pub fn open(bundle: &Path) -> Result<std::fs::File> {
    let path = bundle.join("log");
    match rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    ) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => {}
        Err(e) => {
            return Err(crate::Error::from(std::io::Error::from(e))
                .wrap(format!("mkfifo {}", path.display())))
        }
    }
    let fd = rustix::fs::open(
        &path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("open {}", path.display()))?;
    Ok(std::fs::File::from(fd))
}

/// Copy the fifo's lines to the daemon's log until every writer is gone
/// (the shim exited), on a small thread.
pub fn follow(file: std::fs::File, who: String) {
    let _ = std::thread::Builder::new()
        .name("shim-log".into())
        .stack_size(64 << 10)
        .spawn(move || copy(file, &who));
}

fn copy(mut file: std::fs::File, who: &str) {
    let mut buf = [0u8; 4096];
    let mut pending = Vec::new();
    loop {
        // Linux reports POLLHUP on a fifo only after a writer came and went.
        let mut fds = [PollFd::new(&file, PollFlags::IN)];
        if poll(&mut fds, None).is_err() {
            continue;
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    crate::log::debug!("shim {who}: {}", String::from_utf8_lossy(&line).trim_end());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}
