//! `binary:///path?key=value` stdio: a logging program that reads the
//! process's output itself, as containerd's shims run it: the stdout and
//! stderr pipes' read ends as its fds 3 and 4, a pipe on fd 5 that it
//! closes once ready, CONTAINER_ID and CONTAINER_NAMESPACE in its
//! environment, each query pair as arguments.
//!
//! std's Command places only fds 0-2, so the logger is started through
//! this binary's shim applet (`-exec-logger`), which moves 0/1/2 to 3/4/5
//! and execs it (no unsafe pre-exec hook in the shim).

use super::reaper::Reaper;
use crate::error::{Context, Result};
use crate::sys::process::Pid;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The hidden shim flag that runs a logger (see `applets/shim.rs`).
pub const EXEC_LOGGER_FLAG: &str = "-exec-logger";

/// How long a logger has to say it is ready (as containerd's shim).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Who the logger logs for.
pub struct LoggerEnv<'a> {
    pub reaper: &'a Reaper,
    pub container_id: &'a str,
    pub namespace: &'a str,
}

/// A started logger: the write ends for the process, and its pid.
pub struct Logger {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub pid: Pid,
    /// Before the logger started, for [`Reaper::watch`].
    pub since: super::reaper::Mark,
}

/// `%XX` decoding of a URI component.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The program and arguments of a `binary://` URI.
pub fn parse_uri(uri: &str) -> Result<(String, Vec<String>)> {
    let rest = uri
        .strip_prefix("binary://")
        .ok_or_else(|| crate::err_kind!(InvalidArgument, "{uri:?} is not a binary:// URI"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err(crate::err_kind!(
            InvalidArgument,
            "logger {uri:?}: the path must be absolute"
        ));
    }
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        args.push(unescape(k));
        if !v.is_empty() {
            args.push(unescape(v));
        }
    }
    Ok((unescape(path), args))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")
}

/// Start the logger of `uri` and wait until it is ready.
pub fn start(uri: &str, env: &LoggerEnv) -> Result<Logger> {
    let (path, args) = parse_uri(uri)?;
    super::runtime::find_executable(&path)?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("containerd-shim-skiff-v2")
        .arg(EXEC_LOGGER_FLAG)
        .arg(&path)
        .args(&args)
        .env("CONTAINER_ID", env.container_id)
        .env("CONTAINER_NAMESPACE", env.namespace)
        .current_dir("/")
        .stdin(Stdio::from(out_r))
        .stdout(Stdio::from(err_r))
        .stderr(Stdio::from(ready_w));
    let child = env
        .reaper
        .spawn(&mut cmd)
        .with_context(|| format!("start logger {path}"))?;
    // Our copies of its ends close here, so the ready pipe ends with it.
    drop(cmd);
    let (pid, since) = (child.pid(), child.since);
    if !wait_closed(&ready_r, READY_TIMEOUT) {
        let _ = crate::sys::process::kill(pid, libc::SIGKILL);
        return Err(crate::err!(
            "logger {path}: not ready within {READY_TIMEOUT:?}"
        ));
    }
    Ok(Logger {
        stdout: out_w,
        stderr: err_w,
        pid,
        since,
    })
}

/// Wait until the other side of a pipe is closed (read gives 0).
fn wait_closed(r: &OwnedFd, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    let mut buf = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match crate::sys::fs::wait_readable(r, Some(left)) {
            Ok(true) => match rustix::io::read(r, &mut buf) {
                Ok(0) => return true,
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return true,
            },
            Ok(false) | Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_gives_program_and_arguments() {
        let (p, a) = parse_uri("binary:///usr/bin/logger?--tag=my%20app&-v").unwrap();
        assert_eq!(p, "/usr/bin/logger");
        assert_eq!(a, ["--tag", "my app", "-v"]);
        assert!(parse_uri("binary://relative/x").is_err());
    }
}
