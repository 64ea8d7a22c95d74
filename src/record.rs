//! One record, one file: the on-disk primitive under the metadata and
//! snapshot stores. A record is replaced by write-temp, fsync, rename,
//! fsync(dir), so after a crash a reader sees the old or the new record,
//! never a torn one; temporaries left by a crash are hidden (dot names) and
//! removed by [`sweep_temporaries`].

use crate::error::{Context, Error, Result};
use crate::json::{self, Node, Writer};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Labels of images, containers, snapshots, content, leases, namespaces.
pub type Labels = BTreeMap<String, String>;

const TMP_PREFIX: &str = ".tmp-";

/// Replace `path` with `data` atomically and durably. Safe to call from
/// several threads at once: each write has its own temporary.
pub fn write(path: &Path, data: &[u8]) -> Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = parent(path);
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let res = (|| -> Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.with_context(|| format!("write {}", path.display()))
}

/// Remove a record durably; a missing record is not an error.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)).with_context(|| format!("remove {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::from(e).wrap(format!("remove {}", path.display()))),
    }
}

/// Read a record; None when it does not exist.
pub fn read(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::from(e).wrap(format!("read {}", path.display()))),
    }
}

/// The record files of a directory (temporaries skipped), sorted by name.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::from(e).wrap(format!("list {}", dir.display()))),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("list {}", dir.display()))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && name.ends_with(".json") {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Remove temporaries a killed writer left in `dir` (not recursive): only
/// those whose writer (the pid in the name) is gone, so a write in flight
/// in another process or thread is left alone.
pub fn sweep_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !crate::sys::process::alive(pid) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Create a directory (and missing parents), durably: each new entry's
/// parent is synced, so a record written inside survives a power cut too.
pub fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(p)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::from(e).wrap(format!("create {}", dir.display()))),
    }
    sync_dir(parent(dir))
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("sync {}", dir.display()))
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A file name for a key that may hold any character (image names have
/// `/` and `:`): the hex SHA-256 of the key. The key itself is stored in
/// the record.
pub fn hashed_name(key: &str) -> String {
    format!(
        "{}.json",
        crate::image::digest::Digest::of(key.as_bytes()).hex()
    )
}

/// Parse a record's JSON; errors name the file.
pub fn parse(text: &str, path: &Path) -> Result<miniserde::json::Value> {
    json::parse(text, &path.display().to_string())
}

pub fn write_labels(w: &mut Writer, labels: &Labels) {
    w.key("labels").object();
    for (k, v) in labels {
        w.key(k).str(v);
    }
    w.end_object();
}

pub fn read_labels(n: &Node) -> Result<Labels> {
    Ok(match n.get("labels")? {
        Some(l) => l.string_map()?.into_iter().collect(),
        None => Labels::new(),
    })
}

/// Bytes (a protobuf Any, an OCI spec) as base64 in a JSON string.
pub fn write_bytes(w: &mut Writer, key: &str, data: &[u8]) {
    w.key(key).str(&crate::base64::encode(data));
}

pub fn read_bytes(n: &Node, key: &str) -> Result<Vec<u8>> {
    match n.get(key)? {
        None => Ok(Vec::new()),
        Some(v) => crate::base64::decode(v.str()?).ok_or_else(|| v.invalid("not valid base64")),
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> u64 {
    let (s, n) = crate::time::now();
    s as u64 * 1_000_000_000 + n as u64
}

/// containerd's limit on one label: key and value together at most 4096
/// bytes, and a key is not empty.
pub fn check_labels(what: &str, labels: &Labels) -> Result<()> {
    for (k, v) in labels {
        if k.is_empty() {
            return Err(crate::err_kind!(InvalidArgument, "{what}: empty label key"));
        }
        if k.len() + v.len() > 4096 {
            return Err(crate::err_kind!(
                InvalidArgument,
                "{what}: label {:?}: key and value longer than 4096 bytes",
                &k[..k.len().min(64)]
            ));
        }
    }
    Ok(())
}

/// containerd's identifier rule for namespaces, containers, leases:
/// alphanumerics separated by single `.`, `_` or `-`, at most 76 bytes.
pub fn check_identifier(what: &str, id: &str) -> Result<()> {
    let bad = |why: &str| Err(crate::err_kind!(InvalidArgument, "{what} {id:?}: {why}"));
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id.len() > 76 {
        return bad("longer than 76 characters");
    }
    let b = id.as_bytes();
    let sep = |c: u8| matches!(c, b'.' | b'_' | b'-');
    if sep(b[0]) || sep(b[b.len() - 1]) {
        return bad("must start and end with a letter or digit");
    }
    for w in b.windows(2) {
        if sep(w[0]) && sep(w[1]) {
            return bad("separators must not repeat");
        }
    }
    if !b.iter().all(|&c| c.is_ascii_alphanumeric() || sep(c)) {
        return bad("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_containerd() {
        for ok in ["default", "k8s.io", "a-b_c.d", "x1"] {
            check_identifier("namespace", ok).unwrap();
        }
        for bad in ["", "-a", "a-", "a..b", "a/b", "a b", &"x".repeat(77)] {
            let e = check_identifier("namespace", bad).unwrap_err();
            assert_eq!(e.kind(), crate::Kind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn write_replaces_and_list_hides_temporaries() {
        let dir = std::env::temp_dir().join(format!("skiff-record-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.json");
        write(&p, b"1").unwrap();
        write(&p, b"2").unwrap();
        // A dead writer's (pid_max is below 2^22) and a live one's.
        fs::write(dir.join(".tmp-4194305-1"), b"torn").unwrap();
        let live = format!(".tmp-{}-99", std::process::id());
        fs::write(dir.join(&live), b"in flight").unwrap();
        assert_eq!(read(&p).unwrap().as_deref(), Some("2"));
        assert_eq!(list(&dir).unwrap(), vec![p.clone()]);
        sweep_temporaries(&dir);
        assert!(!dir.join(".tmp-4194305-1").exists());
        assert!(dir.join(&live).exists(), "a live writer's temporary stays");
        remove(&p).unwrap();
        remove(&p).unwrap();
        assert!(read(&p).unwrap().is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
