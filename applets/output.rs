//! Writing to stdout without dying of SIGPIPE-as-abort: a closed pipe ends
//! the program quietly, as `ls | head` users expect.

use std::io::Write;

pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("write to stdout: {e}");
        std::process::exit(1);
    }
}
