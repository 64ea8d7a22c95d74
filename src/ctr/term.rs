//! The user's terminal for `run -t` / `exec -t`: raw mode while the
//! process runs, and its window size for ResizePty.

pub use crate::sys::pty::RawMode;

/// The window size (width, height) of the terminal on stdin, if any.
pub fn window_size() -> Option<(u32, u32)> {
    crate::sys::pty::size(rustix::stdio::stdin()).map(|(rows, cols)| (cols as u32, rows as u32))
}

/// Whether stdout is a terminal (pull draws live progress then).
pub fn stdout_is_tty() -> bool {
    rustix::termios::isatty(rustix::stdio::stdout())
}

/// Whether stdin is a terminal.
pub fn stdin_is_tty() -> bool {
    rustix::termios::isatty(rustix::stdio::stdin())
}
