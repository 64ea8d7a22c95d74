//! The native driver's one job: a snapshot starts as a full copy of its
//! parent's tree. The copy keeps what a layer can carry: file types
//! (devices, fifos, symlinks), owners, modes (set after chown, which clears
//! set-id bits), extended attributes (after chown: it clears
//! security.capability), modification times and hard links.

use crate::error::{Context, Error, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, Timespec, Timestamps, Uid};
use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Copy the tree `from` to `to` (which must not exist).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let mut links = HashMap::new();
    copy(from, to, &mut links)
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))
}

fn copy(from: &Path, to: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    let m = fs::symlink_metadata(from).with_context(|| from.display().to_string())?;
    let ft = FileType::from_raw_mode(m.mode());
    let err = |e: rustix::io::Errno| Error::from(e).wrap(to.display());
    if ft != FileType::Directory && m.nlink() > 1 {
        if let Some(first) = links.get(&(m.dev(), m.ino())) {
            return fs::hard_link(first, to).with_context(|| to.display().to_string());
        }
        links.insert((m.dev(), m.ino()), to.to_path_buf());
    }
    match ft {
        FileType::Directory => {
            rfs::mkdir(to, Mode::from_raw_mode(0o700)).map_err(err)?;
            let mut names: Vec<_> = fs::read_dir(from)
                .with_context(|| from.display().to_string())?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .with_context(|| from.display().to_string())?;
            names.sort();
            for n in names {
                copy(&from.join(&n), &to.join(&n), links)?;
            }
        }
        FileType::RegularFile => {
            fs::copy(from, to).with_context(|| to.display().to_string())?;
        }
        FileType::Symlink => {
            let target = fs::read_link(from).with_context(|| from.display().to_string())?;
            std::os::unix::fs::symlink(&target, to).with_context(|| to.display().to_string())?;
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
            rfs::mknodat(rfs::CWD, to, ft, Mode::from_raw_mode(0o600), m.rdev()).map_err(err)?;
        }
        other => {
            return Err(Error::new(format!(
                "{}: cannot copy a {other:?}",
                from.display()
            )))
        }
    }
    rfs::chownat(
        rfs::CWD,
        to,
        Some(Uid::from_raw(m.uid())),
        Some(Gid::from_raw(m.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(err)?;
    if ft != FileType::Symlink {
        rfs::chmod(to, Mode::from_raw_mode(m.mode() & 0o7777)).map_err(err)?;
    }
    copy_xattrs(from, to)?;
    let t = |s: i64, ns: i64| Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = Timestamps {
        last_access: t(m.atime(), m.atime_nsec()),
        last_modification: t(m.mtime(), m.mtime_nsec()),
    };
    rfs::utimensat(rfs::CWD, to, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(err)?;
    Ok(())
}

fn copy_xattrs(from: &Path, to: &Path) -> Result<()> {
    let what = || format!("extended attributes of {}", from.display());
    let mut names = vec![0u8; 4096];
    let n = match rfs::llistxattr(from, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(Error::from(e).wrap(what())),
    };
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let name = std::ffi::OsStr::from_bytes(name);
        let mut value = vec![0u8; 65536];
        let len = rfs::lgetxattr(from, name, &mut value[..]).with_context(what)?;
        rfs::lsetxattr(to, name, &value[..len], rfs::XattrFlags::empty())
            .with_context(|| format!("set extended attributes on {}", to.display()))?;
    }
    Ok(())
}
