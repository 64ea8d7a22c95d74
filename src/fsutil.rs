//! Small file helpers shared by the runtime and the applets.

use std::io::Read;
use std::path::Path;

/// Read a whole text file of at most `limit` bytes; a larger one is an
/// `ErrorKind::FileTooLarge` error saying so (nothing beyond the limit is
/// read).
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    read_bounded_from(std::fs::File::open(path)?, limit)
}

/// PATH when none is set, as the runtimes use.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What execve would run for `name`: `name` itself if it has a slash,
/// else the first of that name in the `path` list (an empty entry is the
/// current directory) — if runnable (executable, not a directory).
pub fn find_executable(name: &str, path: &str) -> Option<String> {
    let runnable = |p: &str| {
        rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok() && !Path::new(p).is_dir()
    };
    if name.contains('/') {
        return runnable(name).then(|| name.to_string());
    }
    path.split(':')
        .map(|dir| format!("{}/{name}", if dir.is_empty() { "." } else { dir }))
        .find(|p| runnable(p))
}

/// [`read_bounded`] from any reader (stdin, a pipe).
pub fn read_bounded_from(reader: impl Read, limit: u64) -> std::io::Result<String> {
    let mut data = Vec::new();
    reader.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {limit} bytes (the limit)"),
        ));
    }
    String::from_utf8(data)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit_and_no_further() {
        assert_eq!(read_bounded_from(&b"abc"[..], 3).unwrap(), "abc");
        let e = read_bounded_from(&b"abcd"[..], 3).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("larger than 3 bytes"), "{e}");
        // An endless reader: bounded all the same.
        let e = read_bounded_from(std::io::repeat(b' '), 1 << 10).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
        let e = read_bounded_from(&b"\xff"[..], 3).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
