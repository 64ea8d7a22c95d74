//! Runtime logs in runc's shapes (logrus): `time="…" level=debug msg="…"`
//! text lines, or one JSON object per line. The library only emits
//! (`crate::log::debug!`, `crate::log::warn!`); the program decides, once,
//! where lines go and from which level on ([`init`]). Until then nothing is
//! written: a library never prints behind its caller's back.
//!
//! A disabled level costs one atomic load: the message is not formatted and
//! nothing is allocated.
//!
//! Lines go to a copy of the sink made at [`init`], never to "fd 2 now": a
//! container's init is a clone of the runtime, and once its console is
//! attached its fd 2 is the container's, not the runtime's. The copy is
//! close-on-exec, so neither hooks nor the container inherit it.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    /// logrus's name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Sink {
    /// The log file, or a close-on-exec copy of stderr as it was at
    /// [`init`]; None if stderr was closed then.
    fd: Option<OwnedFd>,
    /// No log file: the lines go to (the copy of) stderr.
    to_stderr: bool,
    format: Format,
    /// Name the emitting module and source line (runc does under --debug).
    caller: bool,
}

/// 0: nothing is written (no sink yet).
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);
static SINK: OnceLock<Sink> = OnceLock::new();

/// Where lines go (`file`, else stderr as it is now), in which format, and
/// the most verbose level written. The first call wins; later calls return
/// false. The file should be opened for appending and close-on-exec.
pub fn init(file: Option<OwnedFd>, format: Format, max: Level) -> bool {
    if SINK.get().is_some() {
        return false;
    }
    let caller = max >= Level::Debug;
    let to_stderr = file.is_none();
    let fd = file.or_else(|| rustix::io::fcntl_dupfd_cloexec(std::io::stderr().as_fd(), 3).ok());
    let set = SINK
        .set(Sink {
            fd,
            to_stderr,
            format,
            caller,
        })
        .is_ok();
    if set {
        MAX_LEVEL.store(max as u8, Ordering::Release);
    }
    set
}

/// From now on, write this process's lines to (a close-on-exec copy of)
/// `to`; with None, to nowhere, and the old sink is closed. For a
/// container's init: once its creator may have exited, it must not keep the
/// creator's stderr open (a caller reading that to its end would wait for
/// `start`), and its last lines belong to whoever runs `start`. Does nothing
/// when there is no sink.
pub fn redirect(to: Option<BorrowedFd>) -> crate::Result<()> {
    let Some(sink) = sink_fd() else {
        return Ok(());
    };
    match to {
        Some(fd) => crate::sys::process::dup_onto_cloexec(fd, sink),
        None => {
            // The read end of a pipe nobody writes: lines written to it
            // fail (EBADF) and nothing is held open.
            let (read, _write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| {
                    crate::Error::from(std::io::Error::from(e)).wrap("log: close the sink")
                })?;
            crate::sys::process::dup_onto_cloexec(read.as_fd(), sink)
        }
    }
}

/// Would a line at `level` be written?
#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Acquire)
}

/// Do lines go to stderr (no log file)?
pub fn to_stderr() -> bool {
    SINK.get().is_none_or(|s| s.to_stderr)
}

/// The descriptor lines are written to, if any: not the caller's to hand on
/// (a `--preserve-fds` range must not include it).
pub fn sink_fd() -> Option<RawFd> {
    SINK.get()?.fd.as_ref().map(AsRawFd::as_raw_fd)
}

/// Where a line was emitted (filled in by the macros).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub module: &'static str,
    pub file: &'static str,
    pub line: u32,
}

/// Write one line, if `level` is enabled. Use the macros.
pub fn write(level: Level, caller: Caller, args: fmt::Arguments) {
    if !enabled(level) {
        return;
    }
    let Some(sink) = SINK.get() else { return };
    let (secs, _) = crate::time::now();
    let time = crate::time::rfc3339_nano(secs, 0);
    let msg = args.to_string();
    let caller = sink.caller.then_some(caller);
    let line = format_line(sink.format, &time, level, &msg, caller);
    // One write per line, so lines of concurrent writers do not interleave.
    if let Some(fd) = &sink.fd {
        let _ = rustix::io::write(fd, line.as_bytes());
    }
}

/// One line in `format`, newline included: logrus's text fields in its
/// order (time, level, msg, func, file), or its JSON keys sorted.
pub fn format_line(
    format: Format,
    time: &str,
    level: Level,
    msg: &str,
    caller: Option<Caller>,
) -> String {
    let place = caller.map(|c| (format!("{}()", c.module), format!("{}:{}", c.file, c.line)));
    let mut out = String::with_capacity(msg.len() + 64);
    match format {
        Format::Text => {
            out.push_str("time=");
            crate::json::quote_into(&mut out, time);
            out.push_str(" level=");
            out.push_str(level.as_str());
            out.push_str(" msg=");
            crate::json::quote_into(&mut out, msg);
            if let Some((func, file)) = &place {
                out.push_str(" func=");
                crate::json::quote_into(&mut out, func);
                out.push_str(" file=");
                crate::json::quote_into(&mut out, file);
            }
        }
        Format::Json => {
            let mut w = crate::json::Writer::compact();
            w.begin_object();
            if let Some((func, file)) = &place {
                w.key("file").str(file).key("func").str(func);
            }
            w.key("level")
                .str(level.as_str())
                .key("msg")
                .str(msg)
                .key("time")
                .str(time);
            w.end_object();
            out.push_str(&w.finish());
        }
    }
    out.push('\n');
    out
}

/// Log at a level; the arguments are formatted only when it is enabled.
#[doc(hidden)]
#[macro_export]
macro_rules! __skiff_log {
    ($level:expr, $($arg:tt)+) => {
        if $crate::log::enabled($level) {
            $crate::log::write(
                $level,
                $crate::log::Caller { module: module_path!(), file: file!(), line: line!() },
                format_args!($($arg)+),
            );
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __skiff_log_debug {
    ($($arg:tt)+) => { $crate::__skiff_log!($crate::log::Level::Debug, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __skiff_log_warn {
    ($($arg:tt)+) => { $crate::__skiff_log!($crate::log::Level::Warn, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __skiff_log_error {
    ($($arg:tt)+) => { $crate::__skiff_log!($crate::log::Level::Error, $($arg)+) };
}

/// `debug!("...", args)`: what the runtime is doing (runc's --debug).
pub use crate::__skiff_log_debug as debug;
/// `error!("...", args)`: what made a command fail (the program's own).
pub use crate::__skiff_log_error as error;
/// `warn!("...", args)`: something went wrong and the work goes on.
pub use crate::__skiff_log_warn as warn;

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: Caller = Caller {
        module: "skiff::runtime::create",
        file: "src/runtime/create.rs",
        line: 42,
    };

    #[test]
    fn text_lines_have_logrus_shape() {
        let l = format_line(
            Format::Text,
            "2026-01-02T03:04:05Z",
            Level::Debug,
            "start \"x\"",
            None,
        );
        assert_eq!(
            l,
            "time=\"2026-01-02T03:04:05Z\" level=debug msg=\"start \\\"x\\\"\"\n"
        );
        let l = format_line(Format::Text, "t", Level::Warn, "m", Some(HERE));
        assert_eq!(
            l,
            "time=\"t\" level=warning msg=\"m\" func=\"skiff::runtime::create()\" file=\"src/runtime/create.rs:42\"\n"
        );
    }

    #[test]
    fn json_lines_sort_their_keys() {
        let l = format_line(Format::Json, "t", Level::Error, "boom", None);
        assert_eq!(l, "{\"level\":\"error\",\"msg\":\"boom\",\"time\":\"t\"}\n");
        let l = format_line(Format::Json, "t", Level::Debug, "m", Some(HERE));
        assert!(l.starts_with("{\"file\":\"src/runtime/create.rs:42\",\"func\":"));
    }

    #[test]
    fn nothing_is_enabled_before_init() {
        // Unit tests never call init: the library stays silent.
        assert!(!enabled(Level::Error));
        assert!(!enabled(Level::Debug));
    }
}
