//! Layer tars from snapshot trees (the diff service's Diff):
//! - [`write_upper`]: an overlay snapshot's own directory is already the
//!   change set; its whiteouts (0/0 character devices) become `.wh.NAME`
//!   entries and an opaque directory (`trusted.overlay.opaque=y`) gets a
//!   `.wh..wh..opq` entry;
//! - [`write_changes`]: two full trees (the native snapshotter) are
//!   compared: what the upper adds or changes is written, what it lacks
//!   becomes a whiteout.
//!
//! The trees may belong to a running container: every name is opened
//! relative to its parent's descriptor and never followed
//! (`O_NOFOLLOW`), so a file swapped for a symlink meanwhile cannot pull
//! anything from outside the tree into the layer. Entries are written in
//! name order, a directory before what it holds; a file linked more than
//! once is written once and then as hard links. Extended attributes are
//! not carried (the tar crate writes no PAX records).

use crate::error::{Context, Error, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Write the overlay upper directory `upper` as a layer tar to `out`.
pub fn write_upper<W: Write>(upper: &Path, out: W) -> Result<W> {
    let mut w = Writer::new(out);
    let root = open_root(upper)?;
    w.walk_upper(&root, b"")
        .with_context(|| format!("diff of {}", upper.display()))?;
    w.finish()
}

/// Write what `upper` changes against `lower` (None: an empty tree) as a
/// layer tar to `out`.
pub fn write_changes<W: Write>(lower: Option<&Path>, upper: &Path, out: W) -> Result<W> {
    let mut w = Writer::new(out);
    let lower_fd = lower.map(open_root).transpose()?;
    let upper_fd = open_root(upper)?;
    w.walk_changes(lower_fd.as_ref(), &upper_fd, b"")
        .with_context(|| format!("diff of {}", upper.display()))?;
    w.finish()
}

fn open_root(p: &Path) -> Result<OwnedFd> {
    rfs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", p.display()))
}

fn open_sub(dir: BorrowedFd, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn lstat(dir: BorrowedFd, name: &[u8]) -> rustix::io::Result<Option<Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The names in a directory, sorted, without `.` and `..`.
fn names(dir: BorrowedFd) -> Result<Vec<Vec<u8>>> {
    let fd = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for e in rfs::Dir::read_from(&fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    out.sort();
    Ok(out)
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

fn is_whiteout_device(st: &Stat) -> bool {
    kind(st) == FileType::CharacterDevice && st.st_rdev == 0
}

fn is_opaque(dir: BorrowedFd) -> bool {
    let mut v = [0u8; 4];
    matches!(rfs::fgetxattr(dir, "trusted.overlay.opaque", &mut v), Ok(1) if v[0] == b'y')
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

fn as_path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

/// Does the entry differ in what a layer records?
fn differs(dir_l: BorrowedFd, dir_u: BorrowedFd, name: &[u8], l: &Stat, u: &Stat) -> bool {
    if kind(l) != kind(u) || l.st_mode != u.st_mode || l.st_uid != u.st_uid || l.st_gid != u.st_gid
    {
        return true;
    }
    match kind(u) {
        FileType::Directory => l.st_mtime != u.st_mtime || l.st_mtime_nsec != u.st_mtime_nsec,
        FileType::Symlink => {
            rfs::readlinkat(dir_l, name, Vec::new()).ok()
                != rfs::readlinkat(dir_u, name, Vec::new()).ok()
        }
        FileType::CharacterDevice | FileType::BlockDevice => l.st_rdev != u.st_rdev,
        _ => {
            l.st_size != u.st_size || l.st_mtime != u.st_mtime || l.st_mtime_nsec != u.st_mtime_nsec
        }
    }
}

struct Writer<W: Write> {
    tar: tar::Builder<W>,
    /// The first path written of each multiply-linked file, by (dev, ino).
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> Writer<W> {
    fn new(out: W) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        Writer {
            tar,
            links: HashMap::new(),
        }
    }

    fn finish(self) -> Result<W> {
        self.tar.into_inner().context("finish the layer tar")
    }

    fn header(st: &Stat, t: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(t);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    /// One entry (not what a directory holds).
    fn entry(&mut self, dir: BorrowedFd, name: &[u8], path: &[u8], st: &Stat) -> Result<()> {
        let what = || format!("{}", as_path(path).display());
        let empty: &[u8] = &[];
        match kind(st) {
            FileType::Directory => {
                let mut h = Self::header(st, tar::EntryType::Directory);
                let p = [path, b"/"].concat();
                self.tar
                    .append_data(&mut h, as_path(&p), empty)
                    .with_context(what)
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let id = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&id) {
                        let mut h = Self::header(st, tar::EntryType::Link);
                        let first = first.clone();
                        return self
                            .tar
                            .append_link(&mut h, as_path(path), as_path(&first))
                            .with_context(what);
                    }
                    self.links.insert(id, path.to_vec());
                }
                let f = rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(what)?;
                let mut h = Self::header(st, tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                let file = std::fs::File::from(f);
                // A file that shrank meanwhile fails the entry (the tar
                // crate checks the count) rather than writing a short one.
                self.tar
                    .append_data(&mut h, as_path(path), file.take(st.st_size as u64))
                    .with_context(what)
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, name, Vec::new()).with_context(what)?;
                let mut h = Self::header(st, tar::EntryType::Symlink);
                self.tar
                    .append_link(&mut h, as_path(path), as_path(target.as_bytes()))
                    .with_context(what)
            }
            t @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                let et = match t {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = Self::header(st, et);
                if t != FileType::Fifo {
                    h.set_device_major(rfs::major(st.st_rdev))
                        .with_context(what)?;
                    h.set_device_minor(rfs::minor(st.st_rdev))
                        .with_context(what)?;
                }
                self.tar
                    .append_data(&mut h, as_path(path), empty)
                    .with_context(what)
            }
            // Sockets do not go into layers.
            _ => Ok(()),
        }
    }

    /// A whiteout of `name` in the directory `prefix` (`name` = OPAQUE
    /// hides the whole directory's lower content).
    fn whiteout(&mut self, prefix: &[u8], name: &[u8]) -> Result<()> {
        let base = if name == OPAQUE {
            name.to_vec()
        } else {
            [WHITEOUT, name].concat()
        };
        let path = join(prefix, &base);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0);
        h.set_size(0);
        h.set_mtime(0);
        let empty: &[u8] = &[];
        self.tar
            .append_data(&mut h, as_path(&path), empty)
            .with_context(|| format!("{}", as_path(&path).display()))
    }

    fn walk_upper(&mut self, dir: &OwnedFd, prefix: &[u8]) -> Result<()> {
        for name in names(dir.as_fd())? {
            let path = join(prefix, &name);
            let Some(st) = lstat(dir.as_fd(), &name)? else {
                continue; // removed meanwhile
            };
            if is_whiteout_device(&st) {
                self.whiteout(prefix, &name)?;
                continue;
            }
            self.entry(dir.as_fd(), &name, &path, &st)?;
            if kind(&st) == FileType::Directory {
                let sub = open_sub(dir.as_fd(), &name)
                    .map_err(|e| Error::from(e).wrap(as_path(&path).display()))?;
                if is_opaque(sub.as_fd()) {
                    self.whiteout(&path, OPAQUE)?;
                }
                self.walk_upper(&sub, &path)?;
            }
        }
        Ok(())
    }

    fn walk_changes(
        &mut self,
        lower: Option<&OwnedFd>,
        upper: &OwnedFd,
        prefix: &[u8],
    ) -> Result<()> {
        let up = names(upper.as_fd())?;
        let low = match lower {
            Some(l) => names(l.as_fd())?,
            None => Vec::new(),
        };
        // Lower names gone from the upper: whiteouts.
        for name in &low {
            if up.binary_search(name).is_err() {
                self.whiteout(prefix, name)?;
            }
        }
        for name in up {
            let path = join(prefix, &name);
            let Some(u) = lstat(upper.as_fd(), &name)? else {
                continue;
            };
            let l = match lower {
                Some(ld) => lstat(ld.as_fd(), &name)?,
                None => None,
            };
            let is_dir = kind(&u) == FileType::Directory;
            let changed = match (&l, lower) {
                (Some(l), Some(ld)) => differs(ld.as_fd(), upper.as_fd(), &name, l, &u),
                _ => true,
            };
            if changed {
                self.entry(upper.as_fd(), &name, &path, &u)?;
            }
            if is_dir {
                let sub = open_sub(upper.as_fd(), &name)
                    .map_err(|e| Error::from(e).wrap(as_path(&path).display()))?;
                // A directory replacing a non-directory has no lower content.
                let lower_sub = match (&l, lower) {
                    (Some(l), Some(ld)) if kind(l) == FileType::Directory => Some(
                        open_sub(ld.as_fd(), &name)
                            .map_err(|e| Error::from(e).wrap(as_path(&path).display()))?,
                    ),
                    _ => None,
                };
                self.walk_changes(lower_sub.as_ref(), &sub, &path)?;
            }
        }
        Ok(())
    }
}
