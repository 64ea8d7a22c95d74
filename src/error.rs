//! One error type for the whole crate: a message that reads
//! `what: which thing: cause`, built up with [`Context`] as it travels, and a
//! [`Kind`] a caller can branch on (a shim maps it to a ttrpc/gRPC code).

use std::fmt;

/// What kind of failure an error is, for callers that must branch on it
/// (containerd branches on NotFound, AlreadyExists, FailedPrecondition...).
/// The kind survives [`Error::wrap`] and [`Context`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// Anything not classified below.
    #[default]
    Other,
    /// The thing named (container, process, file, blob) does not exist.
    NotFound,
    /// The thing to be made exists already.
    AlreadyExists,
    /// The request is malformed: a bad id, flag, field or value.
    InvalidArgument,
    /// The thing is in the wrong state for this (e.g. delete of a running
    /// container without force).
    FailedPrecondition,
    /// Not implemented (yet, or on this host).
    Unimplemented,
    /// A time limit ran out.
    DeadlineExceeded,
    /// Permission denied.
    PermissionDenied,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    msg: String,
    kind: Kind,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error {
            msg: msg.into(),
            kind: Kind::Other,
        }
    }

    /// An error of a given kind.
    pub fn of(kind: Kind, msg: impl Into<String>) -> Self {
        Error {
            msg: msg.into(),
            kind,
        }
    }

    pub fn message(&self) -> &str {
        &self.msg
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The same error, classified as `kind`.
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// Prefix the message with what was being done when it happened.
    pub fn wrap(self, what: impl fmt::Display) -> Self {
        Error {
            msg: format!("{what}: {}", self.msg),
            kind: self.kind,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => Kind::NotFound,
            K::AlreadyExists => Kind::AlreadyExists,
            K::PermissionDenied => Kind::PermissionDenied,
            K::InvalidInput | K::InvalidData => Kind::InvalidArgument,
            K::TimedOut => Kind::DeadlineExceeded,
            K::Unsupported => Kind::Unimplemented,
            _ => Kind::Other,
        };
        Error::of(kind, io_message(&e))
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::from(std::io::Error::from(e))
    }
}

/// std's io::Error Display appends " (os error N)"; keep only the text.
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Build an [`Error`] from a format string.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::error::Error::new(format!($($arg)*)) };
}

/// Build an [`Error`] of a [`Kind`] from a format string:
/// `err_kind!(NotFound, "container {id} does not exist")`.
#[macro_export]
macro_rules! err_kind {
    ($kind:ident, $($arg:tt)*) => {
        $crate::error::Error::of($crate::error::Kind::$kind, format!($($arg)*))
    };
}

/// Return early with an [`Error`] built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::err!($($arg)*)) };
}

/// Add context to any error that converts into [`Error`].
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().wrap(what))
    }
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().wrap(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes_and_drops_os_error_suffix() {
        let e: Result<()> =
            Err(std::io::Error::from_raw_os_error(libc::ENOENT)).context("open /x/config.json");
        let e = e.unwrap_err();
        assert_eq!(
            e.message(),
            "open /x/config.json: No such file or directory"
        );
        assert_eq!(e.kind(), Kind::NotFound, "the kind survives the context");
    }
}
