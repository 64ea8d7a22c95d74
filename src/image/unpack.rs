//! Layer extraction that never touches anything outside the target.
//!
//! Every path of a layer entry is cleaned lexically (a `..` that would climb
//! above the root is an error), its parent is opened with openat2
//! `RESOLVE_IN_ROOT`, so symlinks are followed as if chrooted in the target,
//! and the entry itself is made with an `*at` call on that parent and a
//! single name that is never followed. OCI whiteouts apply to lower layers.
//!
//! Names and link targets are bytes, kept as the layer has them (a tar
//! name need not be UTF-8, and two different names must stay two files).
//! What one image may unpack is bounded by [`Limits`]: a small compressed
//! layer can expand without end, and the tar crate keeps PAX and GNU
//! long-name records in memory.

use crate::error::{Error, Kind, Result};
use crate::image::digest::Digest;
use crate::image::oci::Compression;
use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid,
    XattrFlags,
};
use rustix::io::Errno;
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A layer refused for what it holds: InvalidArgument, so that the
/// daemon's client is told the image is bad (the host's own failures, a
/// full disk or an I/O error, keep their kinds).
fn bad(msg: impl Into<String>) -> Error {
    Error::of(Kind::InvalidArgument, msg)
}

/// Return early with [`bad`].
macro_rules! refuse {
    ($($arg:tt)*) => { return Err(bad(format!($($arg)*))) };
}

/// A failure reading the layer's tar: one the kernel reported (no OS
/// code means a bad header, a truncated stream, corrupt compression or a
/// limit met) keeps its kind; the others are the layer's fault.
fn tar_error(e: io::Error) -> Error {
    let from_kernel = e.raw_os_error().is_some();
    let e = Error::from(e);
    if from_kernel {
        e
    } else {
        e.with_kind(Kind::InvalidArgument)
    }
}

/// A kernel answer about a link's target: names that are missing, in
/// the way, not directories or loops are what the layer asked for, so
/// InvalidArgument; anything else (no space, I/O) is the host's.
fn link_error(e: Errno, what: String) -> Error {
    let layer_fault = matches!(
        e,
        Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::EXIST | Errno::PERM | Errno::XDEV
    );
    let e = Error::from(e).wrap(what);
    if layer_fault {
        e.with_kind(Kind::InvalidArgument)
    } else {
        e
    }
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What one image may unpack to. The defaults are far above any real
/// image; they stop a hostile or broken layer before it fills the disk or
/// the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed tar bytes, all layers together.
    pub max_bytes: u64,
    /// Tar entries, all layers together.
    pub max_entries: u64,
    /// Bytes in one entry's name.
    pub max_path: usize,
    /// Bytes in one link target.
    pub max_link: usize,
    /// Components in one entry's name.
    pub max_depth: usize,
    /// Bytes of headers and PAX/GNU extension records before one entry
    /// (the tar crate holds them in memory).
    pub max_metadata: u64,
    /// Bytes of names one layer's apply keeps in memory (what it made,
    /// for opaque whiteouts; its directories, to set their times last).
    pub max_names: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 << 30,
            max_entries: 16 << 20,
            max_path: 4096,
            max_link: 4096,
            max_depth: 512,
            max_metadata: 1 << 20,
            max_names: 256 << 20,
        }
    }
}

/// A name for messages: printable, and two different names never print
/// the same.
pub fn show(name: &[u8]) -> String {
    name.escape_ascii().to_string()
}

/// Clean a layer path: drop `/`, `.` and empty components; `..` pops one.
/// Returns the components, or an error when `..` would climb above the root.
pub fn clean_path(name: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("path climbs out of the root");
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Clean a path as the kernel resolves it under RESOLVE_IN_ROOT: `..` at
/// the root stays at the root.
fn clean_clamped(name: &[u8]) -> Vec<u8> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join(&b'/')
}

/// What a cleaned entry name means for whiteouts.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout<'a> {
    None,
    /// Remove `name` in the parent.
    Remove(&'a [u8]),
    /// Remove everything the lower layers put in the parent.
    Opaque,
}

pub fn whiteout(base: &[u8]) -> Whiteout<'_> {
    if base == OPAQUE {
        Whiteout::Opaque
    } else if let Some(n) = base.strip_prefix(WHITEOUT) {
        Whiteout::Remove(n)
    } else {
        Whiteout::None
    }
}

/// Decompress by the magic bytes (media types are not always honest).
pub fn decompressor<'a, R: Read + 'a>(
    reader: R,
    declared: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(256 << 10, reader);
    let head = br.fill_buf()?;
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.is_empty() {
        declared
    } else {
        Compression::None
    };
    Ok(match kind {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
        Compression::None => Box::new(br),
    })
}

fn resolve() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Open a directory inside the root (`""` is the root itself).
fn open_dir(root: BorrowedFd, path: &[u8]) -> rustix::io::Result<OwnedFd> {
    let p: &[u8] = if path.is_empty() { b"." } else { path };
    rfs::openat2(
        root,
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        resolve(),
    )
}

fn lstat(dir: BorrowedFd, name: &[u8]) -> rustix::io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_dir(st: &rfs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// overlayfs's whiteout: a character device 0/0.
fn is_whiteout_device(st: &rfs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Hide what lower layers have in the directory `dir` (an overlay layer's).
fn set_opaque(dir: impl AsFd) -> Result<()> {
    rfs::fsetxattr(dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
        .map_err(|e| Error::from(e).wrap("set trusted.overlay.opaque"))
}

/// A directory by name in `parent`, opened for reading (O_PATH fds take no
/// xattrs).
fn open_subdir(dir: BorrowedFd, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// One directory on the way down of [`remove_all`]: its name in its
/// parent, its identity (to recognise the parent again when climbing back
/// through `..`), and the subdirectories still to remove.
struct Level {
    name: Vec<u8>,
    id: (u64, u64),
    pending: Vec<Vec<u8>>,
}

/// Unlink everything in `dir` but subdirectories, which are returned.
fn clear_files(dir: BorrowedFd, name: Vec<u8>) -> rustix::io::Result<Level> {
    let st = rfs::fstat(dir)?;
    let mut pending = Vec::new();
    for child in children(dir)? {
        match rfs::unlinkat(dir, &child[..], AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR) | Err(Errno::PERM) => pending.push(child),
            Err(e) => return Err(e),
        }
    }
    Ok(Level {
        name,
        id: (st.st_dev, st.st_ino),
        pending,
    })
}

/// Remove `name` in `dir`, and everything below it, without following
/// symlinks. No recursion: the walk holds one directory open at a time and
/// climbs back through `..` (checked to be the directory it came from), so
/// a tree of any depth costs memory for names, not stack or descriptors.
pub fn remove_all(dir: BorrowedFd, name: &[u8]) -> rustix::io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let mut cur = open_subdir(dir, name)?;
    let mut stack = vec![clear_files(cur.as_fd(), name.to_vec())?];
    while let Some(top) = stack.last_mut() {
        if let Some(child) = top.pending.pop() {
            match open_subdir(cur.as_fd(), &child) {
                Ok(fd) => {
                    cur = fd;
                    stack.push(clear_files(cur.as_fd(), child)?);
                }
                Err(Errno::NOENT) => {}
                Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                    match rfs::unlinkat(cur.as_fd(), &child[..], AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
            continue;
        }
        let done = stack.pop().expect("a level");
        let parent = match stack.last() {
            Some(p) => {
                let up = rfs::openat(
                    cur.as_fd(),
                    "..",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let st = rfs::fstat(&up)?;
                if (st.st_dev, st.st_ino) != p.id {
                    // Moved while we were below it: stop rather than guess.
                    return Err(Errno::STALE);
                }
                cur = up;
                cur.as_fd()
            }
            None => dir,
        };
        match rfs::unlinkat(parent, &done.name[..], AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`remove_all`] by path; a missing path is not an error.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(io::Error::other(format!(
            "{}: not a removable path",
            path.display()
        )));
    };
    let pfd = match rfs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    remove_all(pfd.as_fd(), name.as_bytes()).map_err(io::Error::from)
}

fn children(dir: BorrowedFd) -> rustix::io::Result<Vec<Vec<u8>>> {
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
    Ok(out)
}

/// What the tar reader has consumed, shared between the reader (which
/// enforces the limits) and the loop over entries (which says when the
/// crate is reading headers and extension records).
struct Gauge {
    /// Bytes read from the tar stream (headers and data).
    total: Cell<u64>,
    entries: Cell<u64>,
    /// The content sizes entries declare (a sparse file's holes are never
    /// read, so never metered).
    declared: Cell<u64>,
    /// Where the current run of metadata started, while the crate reads it.
    metadata_from: Cell<Option<u64>>,
    limits: Limits,
}

/// The decompressed layer, counted against [`Gauge`].
struct Metered<'g, R> {
    inner: R,
    gauge: &'g Gauge,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let g = self.gauge;
        let n = self.inner.read(buf)?;
        let total = g.total.get() + n as u64;
        g.total.set(total);
        if total > g.limits.max_bytes {
            return Err(io::Error::other(format!(
                "the image's layers hold more than {} uncompressed bytes (the limit)",
                g.limits.max_bytes
            )));
        }
        if let Some(from) = g.metadata_from.get() {
            if total - from > g.limits.max_metadata {
                return Err(io::Error::other(format!(
                    "more than {} bytes of tar headers and PAX/GNU extension records \
                     for one entry (the limit)",
                    g.limits.max_metadata
                )));
            }
        }
        Ok(n)
    }
}

/// How whiteout entries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutMode {
    /// Apply them: remove what lower layers put there (one flat rootfs).
    #[default]
    Apply,
    /// Keep them as overlayfs markers in a directory that holds this layer
    /// alone (an overlay snapshot): a 0/0 character device per removed
    /// name, `trusted.overlay.opaque=y` on an opaque directory.
    ///
    /// Both modes give the same tree (mounted over the same lower layers):
    /// a whiteout hides only lower layers' content, whatever its order
    /// against this layer's own entries (the OCI rule), so a directory this
    /// layer makes where it also whites out the name becomes opaque; a
    /// whiteout under a path this layer made a non-directory is moot; and
    /// an opaque marker at the layer's root is ignored, as overlayfs
    /// ignores one on a layer's root directory.
    Overlay,
}

/// What the layers applied so far have used of the [`Limits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Uncompressed bytes read.
    pub bytes: u64,
    pub entries: u64,
    /// Content bytes the entries declared.
    pub declared: u64,
}

/// Applies layers to one root directory.
pub struct Extractor {
    root: OwnedFd,
    euid_root: bool,
    whiteouts: WhiteoutMode,
    limits: Limits,
    /// Layers are applied one at a time (they stack in order). An apply
    /// adds what it used when it ends, so a second one at the same time
    /// would check its limits against a stale total but lose no count.
    counts: Mutex<Counts>,
}

/// What one layer's apply remembers about its own entries, by path (an
/// entry repeated is one), its names' bytes bounded by
/// [`Limits::max_names`].
#[derive(Default)]
struct LayerIndex {
    /// Every path the layer made and its ancestors: an opaque whiteout
    /// later in the layer must keep them.
    touched: HashSet<Vec<u8>>,
    /// The layer's directories and their mtimes, set last (creating
    /// children changes them). In reverse order a descendant comes before
    /// its ancestors.
    dir_times: BTreeMap<Vec<u8>, u64>,
    name_bytes: u64,
    max_names: u64,
}

impl LayerIndex {
    fn new(max_names: u64) -> Self {
        LayerIndex {
            max_names,
            ..Default::default()
        }
    }

    fn charge(&mut self, name: &[u8]) -> Result<()> {
        self.name_bytes += name.len() as u64;
        if self.name_bytes > self.max_names {
            refuse!(
                "the layer's entries have more than {} bytes of distinct names (the limit)",
                self.max_names
            );
        }
        Ok(())
    }

    /// Remember `path` and its ancestors as made by this layer.
    fn touch(&mut self, path: &[u8]) -> Result<()> {
        let mut prefix = path;
        while !self.touched.contains(prefix) {
            self.charge(prefix)?;
            self.touched.insert(prefix.to_vec());
            match prefix.iter().rposition(|b| *b == b'/') {
                Some(i) => prefix = &prefix[..i],
                None => break,
            }
        }
        Ok(())
    }

    fn dir_time(&mut self, path: Vec<u8>, mtime: u64) -> Result<()> {
        if let Some(t) = self.dir_times.get_mut(&path) {
            *t = mtime;
            return Ok(());
        }
        self.charge(&path)?;
        self.dir_times.insert(path, mtime);
        Ok(())
    }
}

/// A u32 id from a tar header: an empty field (NULs or spaces, as some
/// writers leave it) is 0, as in Go's archive/tar; a field that is not a
/// number, or one out of range, is an error, never root.
fn id_value(what: &str, field: &[u8], v: std::result::Result<u64, io::Error>) -> Result<u32> {
    if field.iter().all(|b| *b == 0 || *b == b' ') {
        return Ok(0);
    }
    let v = v.map_err(|_| {
        bad(format!(
            "{what} field \"{}\" is not a number",
            show(field.split(|b| *b == 0).next().unwrap_or_default())
        ))
    })?;
    u32::try_from(v).map_err(|_| bad(format!("{what} {v} is out of range")))
}

impl Extractor {
    pub fn new(root: &Path) -> Result<Extractor> {
        Self::with_limits(root, Limits::default())
    }

    pub fn with_limits(root: &Path, limits: Limits) -> Result<Extractor> {
        let fd = rfs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::from(e).wrap(format!("open {}", root.display())))?;
        Ok(Extractor {
            root: fd,
            euid_root: rustix::process::geteuid().is_root(),
            whiteouts: WhiteoutMode::Apply,
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    pub fn with_whiteouts(mut self, mode: WhiteoutMode) -> Extractor {
        self.whiteouts = mode;
        self
    }

    fn lock_counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts are plain numbers: a panic elsewhere cannot leave
        // them half-written.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the layers applied so far have used.
    pub fn counts(&self) -> Counts {
        *self.lock_counts()
    }

    /// Go back to `counts` (saved by [`Extractor::counts`]), before a
    /// layer whose apply failed is applied again: counting it twice would
    /// be a false limit error.
    pub fn rewind(&self, counts: Counts) {
        *self.lock_counts() = counts;
    }

    /// Uncompressed bytes still allowed.
    fn bytes_left(&self) -> u64 {
        self.limits.max_bytes.saturating_sub(self.counts().bytes)
    }

    /// Count `n` uncompressed bytes read outside an apply.
    fn add_bytes(&self, n: u64) {
        let mut c = self.lock_counts();
        c.bytes = c.bytes.saturating_add(n);
    }

    /// Apply one (decompressed) layer tar stream. `layer` names it in errors.
    pub fn apply(&self, tar_stream: impl Read, layer: &str) -> Result<()> {
        let start = self.counts();
        let gauge = Gauge {
            total: Cell::new(start.bytes),
            entries: Cell::new(start.entries),
            declared: Cell::new(start.declared),
            metadata_from: Cell::new(None),
            limits: self.limits,
        };
        let mut index = LayerIndex::new(self.limits.max_names);
        let r = self.apply_metered(tar_stream, layer, &gauge, &mut index);
        let mut c = self.lock_counts();
        c.bytes += gauge.total.get() - start.bytes;
        c.entries += gauge.entries.get() - start.entries;
        c.declared += gauge.declared.get() - start.declared;
        r
    }

    fn apply_metered(
        &self,
        tar_stream: impl Read,
        layer: &str,
        gauge: &Gauge,
        index: &mut LayerIndex,
    ) -> Result<()> {
        let mut archive = tar::Archive::new(Metered {
            inner: tar_stream,
            gauge,
        });
        // Large writes: std's io::copy uses 8 KiB.
        let mut buf = vec![0u8; 256 << 10];
        let mut entries = archive
            .entries()
            .map_err(|e| tar_error(e).wrap(format!("layer {layer}")))?;
        // A bad header shows after the entry before it (whose size may
        // have lied): the error names that one.
        let mut last: Option<Vec<u8>> = None;
        let read_error = |e: io::Error, last: &Option<Vec<u8>>| {
            let after = last
                .as_ref()
                .map_or(String::new(), |n| format!(" after entry \"{}\"", show(n)));
            tar_error(e).wrap(format!("layer {layer}: read tar{after}"))
        };
        loop {
            // Between entries the crate reads headers and extension records
            // into memory: bound that run.
            gauge.metadata_from.set(Some(gauge.total.get()));
            let next = entries.next();
            gauge.metadata_from.set(None);
            let Some(entry) = next else { break };
            let mut entry = entry.map_err(|e| read_error(e, &last))?;
            let raw_name = entry.path_bytes().into_owned();
            let named = |e: Error| e.wrap(format!("layer {layer}: entry \"{}\"", show(&raw_name)));
            self.entry(&mut entry, &raw_name, gauge, index, &mut buf)
                .map_err(named)?;
            // Data the entry did not use is read now, counted as data.
            io::copy(&mut entry, &mut io::sink()).map_err(|e| named(tar_error(e).wrap("read")))?;
            last = Some(raw_name);
        }
        // Directory times last: creating children changed them.
        for (path, mtime) in index.dir_times.iter().rev() {
            let (parent, base) = split(path);
            if let Ok(pfd) = open_dir(self.root.as_fd(), parent) {
                let t = Timespec {
                    tv_sec: *mtime as i64,
                    tv_nsec: 0,
                };
                let _ = rfs::utimensat(
                    &pfd,
                    base,
                    &Timestamps {
                        last_access: t,
                        last_modification: t,
                    },
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
        }
        Ok(())
    }

    /// Refuse an entry over the limits before anything of it is written.
    fn check_limits<R: Read>(
        &self,
        entry: &tar::Entry<R>,
        raw_name: &[u8],
        depth: usize,
        gauge: &Gauge,
    ) -> Result<()> {
        let l = &self.limits;
        let n = gauge.entries.get() + 1;
        gauge.entries.set(n);
        if n > l.max_entries {
            refuse!(
                "the image's layers hold more than {} entries (the limit)",
                l.max_entries
            );
        }
        if raw_name.len() > l.max_path {
            refuse!(
                "name of {} bytes is longer than the limit of {}",
                raw_name.len(),
                l.max_path
            );
        }
        if depth > l.max_depth {
            refuse!(
                "name of {depth} components is deeper than the limit of {}",
                l.max_depth
            );
        }
        if let Some(link) = entry.link_name_bytes() {
            if link.len() > l.max_link {
                refuse!(
                    "link target of {} bytes is longer than the limit of {}",
                    link.len(),
                    l.max_link
                );
            }
        }
        // The tar crate makes a GNU sparse file's holes up as zeros that
        // are never read from the layer, so never metered: refused here,
        // before any of it is read (they were never unpacked either).
        if entry.header().entry_type() == tar::EntryType::GNUSparse {
            refuse!("GNU sparse files are not supported");
        }
        // Every entry's content counts, even one that is skipped.
        let left = l
            .max_bytes
            .saturating_sub(gauge.total.get().max(gauge.declared.get()));
        if entry.size() > left {
            refuse!(
                "{} bytes of content would take the image's layers over {} uncompressed \
                 bytes (the limit)",
                entry.size(),
                l.max_bytes
            );
        }
        gauge.declared.set(gauge.declared.get() + entry.size());
        Ok(())
    }

    fn entry<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        raw_name: &[u8],
        gauge: &Gauge,
        index: &mut LayerIndex,
        buf: &mut [u8],
    ) -> Result<()> {
        let comps = clean_path(raw_name).map_err(bad)?;
        self.check_limits(entry, raw_name, comps.len(), gauge)?;
        let hdr = entry.header().clone();
        let kind = hdr.entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        if comps.is_empty() {
            // The root itself ("./"): keep the target's own metadata.
            return Ok(());
        }
        let path = comps.join(&b'/');
        let (parent, base) = split(&path);
        let root = self.root.as_fd();

        if self.whiteouts == WhiteoutMode::Overlay && whiteout(base) != Whiteout::None {
            return self.overlay_marker(parent, base, &index.touched);
        }
        match whiteout(base) {
            // overlayfs ignores one at a layer's root: so does Apply.
            Whiteout::Opaque if parent.is_empty() => return Ok(()),
            Whiteout::Opaque => {
                return self
                    .prune(parent, &index.touched)
                    .map_err(|e| Error::from(e).wrap("opaque whiteout"));
            }
            Whiteout::Remove(name) => {
                if name.is_empty() || name == b"." || name == b".." {
                    return Err(bad("invalid whiteout name"));
                }
                let pfd = match open_dir(root, parent) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
                    Err(e) => return Err(Error::from(e).wrap("open parent directory")),
                };
                let target = join(parent, name);
                if index.touched.contains(&target) {
                    // This layer's own `name` stays; a directory loses
                    // what lower layers had in it.
                    if lstat(pfd.as_fd(), name)?.is_some_and(|s| is_dir(&s)) {
                        return self
                            .prune(&target, &index.touched)
                            .map_err(|e| Error::from(e).wrap("whiteout"));
                    }
                    return Ok(());
                }
                return remove_all(pfd.as_fd(), name).map_err(|e| Error::from(e).wrap("whiteout"));
            }
            Whiteout::None => {}
        }

        let pfd = self.make_parents(parent)?;
        let pfd = pfd.as_fd();
        // The entry and its ancestors now belong to this layer: an opaque
        // whiteout later in the layer must keep them.
        index.touch(&path)?;
        let mode = Mode::from_raw_mode(hdr.mode().map_err(tar_error)? & 0o7777);
        // The crate has applied PAX uid/gid records it could parse; one it
        // could not is an error here, not a silent fall back to the header.
        let mut uid = id_value("uid", &hdr.as_old().uid, hdr.uid())?;
        let mut gid = id_value("gid", &hdr.as_old().gid, hdr.gid())?;
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts {
                let ext = ext.map_err(|e| Error::from(e).wrap("PAX record"))?;
                let key = ext.key_bytes();
                if key != b"uid" && key != b"gid" {
                    continue;
                }
                let value = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "PAX {} \"{}\" is not a valid id",
                            show(key),
                            show(ext.value_bytes())
                        ))
                    })?;
                if key == b"uid" {
                    uid = value;
                } else {
                    gid = value;
                }
            }
        }
        let mtime = hdr.mtime().unwrap_or(0);
        let existing = lstat(pfd, base)?;
        if kind == tar::EntryType::Link {
            // A link to itself: nothing to do (and removing it first would lose it).
            let target = entry.link_name_bytes();
            if target.as_deref().map(clean_path) == Some(Ok(comps.clone())) {
                return Ok(());
            }
        }

        if kind == tar::EntryType::Directory {
            let mut over_whiteout = false;
            match existing {
                Some(st) if is_dir(&st) => {}
                Some(st) => {
                    over_whiteout =
                        self.whiteouts == WhiteoutMode::Overlay && is_whiteout_device(&st);
                    remove_all(pfd, base)?;
                    rfs::mkdirat(pfd, base, Mode::from_raw_mode(0o700))?;
                }
                None => rfs::mkdirat(pfd, base, Mode::from_raw_mode(0o700))?,
            }
            let fd = open_subdir(pfd, base)?;
            if over_whiteout {
                // Lower layers' `base` was whited out: a fresh directory.
                set_opaque(&fd)?;
            }
            self.own(&fd, uid, gid)?;
            rfs::fchmod(&fd, mode)?;
            self.xattrs(&fd, entry)?;
            index.dir_time(path, mtime)?;
            return Ok(());
        }

        // Everything else replaces what is there.
        if let Some(st) = existing {
            if is_dir(&st) {
                remove_all(pfd, base)?;
            } else {
                rfs::unlinkat(pfd, base, AtFlags::empty())?;
            }
        }
        let times = {
            let t = Timespec {
                tv_sec: mtime as i64,
                tv_nsec: 0,
            };
            Timestamps {
                last_access: t,
                last_modification: t,
            }
        };
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rfs::openat(
                    pfd,
                    base,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut file = File::from(fd);
                copy(entry, &mut file, buf)?;
                self.own(&file, uid, gid)?;
                rfs::fchmod(&file, mode)?;
                self.xattrs(&file, entry)?;
                rfs::futimens(&file, &times)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad("symlink without a target"))?;
                rfs::symlinkat(&target[..], pfd, base)?;
                if self.euid_root {
                    rfs::chownat(
                        pfd,
                        base,
                        Some(Uid::from_raw(uid)),
                        Some(Gid::from_raw(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                }
                rfs::utimensat(pfd, base, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad("hardlink without a target"))?;
                let shown = show(&target);
                let tcomps = clean_path(&target)
                    .map_err(|why| bad(format!("hardlink target \"{shown}\": {why}")))?;
                if tcomps.is_empty() {
                    return Err(bad(format!("hardlink target \"{shown}\": is the root")));
                }
                let tpath = tcomps.join(&b'/');
                let (tparent, tbase) = split(&tpath);
                let tfd = open_dir(root, tparent)
                    .map_err(|e| link_error(e, format!("hardlink target \"{shown}\"")))?;
                rfs::linkat(&tfd, tbase, pfd, base, AtFlags::empty())
                    .map_err(|e| link_error(e, format!("hardlink to \"{shown}\"")))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = if kind == tar::EntryType::Fifo {
                    (FileType::Fifo, 0)
                } else {
                    let major = hdr.device_major().map_err(tar_error)?.unwrap_or(0);
                    let minor = hdr.device_minor().map_err(tar_error)?.unwrap_or(0);
                    let ft = if kind == tar::EntryType::Char {
                        FileType::CharacterDevice
                    } else {
                        FileType::BlockDevice
                    };
                    (ft, rfs::makedev(major, minor))
                };
                rfs::mknodat(pfd, base, ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| Error::from(e).wrap("mknod"))?;
                let fd = rfs::openat(
                    pfd,
                    base,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                if self.euid_root {
                    rfs::chownat(
                        pfd,
                        base,
                        Some(Uid::from_raw(uid)),
                        Some(Gid::from_raw(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                }
                rfs::chmodat(pfd, base, mode, AtFlags::empty())?;
                drop(fd);
                rfs::utimensat(pfd, base, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            other => return Err(bad(format!("unsupported tar entry type {other:?}"))),
        }
        Ok(())
    }

    /// Open `parent` in the root, creating missing directories one at a time.
    /// A dangling symlink on the way is followed inside the root and its
    /// target created (`evil -> /etc` makes `<root>/etc`).
    fn make_parents(&self, parent: &[u8]) -> Result<OwnedFd> {
        self.make_dirs(parent, 0)
    }

    fn make_dirs(&self, path: &[u8], depth: u32) -> Result<OwnedFd> {
        let root = self.root.as_fd();
        if depth > 40 {
            refuse!("\"{}\": too many levels of symbolic links", show(path));
        }
        let overlay = self.whiteouts == WhiteoutMode::Overlay;
        match open_dir(root, path) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            // Perhaps a whiteout device on the way, replaced below.
            Err(Errno::NOTDIR) if overlay => {}
            Err(Errno::NOTDIR) => refuse!("parent \"{}\" is not a directory", show(path)),
            Err(e) => return Err(Error::from(e).wrap(format!("open parent \"{}\"", show(path)))),
        }
        let mut fd = open_dir(root, b"")?;
        let mut cur = Vec::new();
        for comp in path.split(|b| *b == b'/') {
            let next = join(&cur, comp);
            fd = match open_dir(root, &next) {
                Ok(f) => f,
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&fd, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => {
                            // A dangling symlink: create its target, inside the root.
                            let target = rfs::readlinkat(&fd, comp, Vec::new()).map_err(|e| {
                                Error::from(e).wrap(format!("read symlink \"{}\"", show(&next)))
                            })?;
                            let target = target.as_bytes();
                            let joined = if target.starts_with(b"/") {
                                target.to_vec()
                            } else {
                                [&cur[..], b"/", target].concat()
                            };
                            self.make_dirs(&clean_clamped(&joined), depth + 1)?;
                        }
                        Err(e) => {
                            return Err(Error::from(e)
                                .wrap(format!("create directory \"{}\"", show(&next))))
                        }
                    }
                    open_dir(root, &next)
                        .map_err(|e| Error::from(e).wrap(format!("open \"{}\"", show(&next))))?
                }
                Err(Errno::NOTDIR)
                    if overlay
                        && lstat(fd.as_fd(), comp)?.is_some_and(|s| is_whiteout_device(&s)) =>
                {
                    // This layer whited `next` out and now puts things in
                    // it: a fresh directory hiding the lower layers' one.
                    rfs::unlinkat(&fd, comp, AtFlags::empty())?;
                    rfs::mkdirat(&fd, comp, Mode::from_raw_mode(0o755))?;
                    set_opaque(open_subdir(fd.as_fd(), comp)?)?;
                    open_dir(root, &next)
                        .map_err(|e| Error::from(e).wrap(format!("open \"{}\"", show(&next))))?
                }
                Err(Errno::NOTDIR) => {
                    refuse!("parent \"{}\" is not a directory", show(&next))
                }
                Err(e) => return Err(Error::from(e).wrap(format!("open \"{}\"", show(&next)))),
            };
            cur = next;
        }
        Ok(fd)
    }

    /// Opaque whiteout: remove what lower layers put in `dir_path`, keeping
    /// what this layer already wrote. Walks with an explicit stack of paths
    /// (each at most as long as an entry's name), not by recursion.
    fn prune(&self, dir_path: &[u8], touched: &HashSet<Vec<u8>>) -> rustix::io::Result<()> {
        let root = self.root.as_fd();
        let mut stack = vec![dir_path.to_vec()];
        while let Some(path) = stack.pop() {
            let dir = match open_dir(root, &path) {
                Ok(fd) => fd,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => continue,
                Err(e) => return Err(e),
            };
            for child in children(dir.as_fd())? {
                let p = join(&path, &child);
                if !touched.contains(&p) {
                    remove_all(dir.as_fd(), &child)?;
                } else if lstat(dir.as_fd(), &child)?.is_some_and(|s| is_dir(&s)) {
                    stack.push(p);
                }
            }
        }
        Ok(())
    }

    fn own(&self, fd: impl AsFd, uid: u32, gid: u32) -> Result<()> {
        if self.euid_root {
            rfs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(|e| Error::from(e).wrap("chown"))?;
        }
        Ok(())
    }

    /// security.capability from PAX `SCHILY.xattr.*`, set after chown/chmod
    /// (chown clears it).
    fn xattrs<R: Read>(&self, fd: impl AsFd, entry: &mut tar::Entry<R>) -> Result<()> {
        let Ok(Some(exts)) = entry.pax_extensions() else {
            return Ok(());
        };
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            if key == "SCHILY.xattr.security.capability" {
                rfs::fsetxattr(
                    &fd,
                    "security.capability",
                    ext.value_bytes(),
                    XattrFlags::empty(),
                )
                .map_err(|e| Error::from(e).wrap("set security.capability"))?;
            }
        }
        Ok(())
    }
}

fn copy(from: &mut impl Read, to: &mut File, buf: &mut [u8]) -> Result<()> {
    use std::io::Write;
    loop {
        // Fill the buffer as far as the source allows before writing.
        let mut filled = 0;
        while filled < buf.len() {
            match from.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(tar_error(e).wrap("read")),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        to.write_all(&buf[..filled])
            .map_err(|e| Error::from(e).wrap("write"))?;
        if filled < buf.len() {
            return Ok(());
        }
    }
}

impl Extractor {
    /// [`WhiteoutMode::Overlay`]: write the marker overlayfs reads instead
    /// of removing anything.
    fn overlay_marker(&self, parent: &[u8], base: &[u8], touched: &HashSet<Vec<u8>>) -> Result<()> {
        if let Whiteout::Remove(name) = whiteout(base) {
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                return Err(bad("invalid whiteout name"));
            }
        }
        // Under something this layer made a non-directory (a whiteout
        // device, a file) there is nothing to hide: Apply finds no such
        // directory either.
        match open_dir(self.root.as_fd(), parent) {
            Err(Errno::NOTDIR) => return Ok(()),
            Ok(_) | Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::from(e).wrap("open parent directory")),
        }
        match whiteout(base) {
            // overlayfs ignores it on a layer's root.
            Whiteout::Opaque if parent.is_empty() => Ok(()),
            Whiteout::Opaque => {
                let pfd = self.make_parents(parent)?;
                let dir = rfs::openat(
                    &pfd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                set_opaque(&dir)
            }
            Whiteout::Remove(name) => {
                let pfd = self.make_parents(parent)?;
                if touched.contains(&join(parent, name)) {
                    // This layer's own `name` stays; a directory hides
                    // what lower layers had in it.
                    if lstat(pfd.as_fd(), name)?.is_some_and(|s| is_dir(&s)) {
                        set_opaque(open_subdir(pfd.as_fd(), name)?)?;
                    }
                    return Ok(());
                }
                remove_all(pfd.as_fd(), name).map_err(|e| Error::from(e).wrap("whiteout"))?;
                rfs::mknodat(
                    &pfd,
                    name,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rfs::makedev(0, 0),
                )
                .map_err(|e| Error::from(e).wrap("make whiteout device"))
            }
            Whiteout::None => Ok(()),
        }
    }
}

fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        b.to_vec()
    } else {
        [a, b"/", b].concat()
    }
}

/// A rootfs built in a temporary sibling directory and moved into place by
/// [`Rootfs::finish`]; dropped unfinished, the temporary tree is removed.
///
/// The tree is built inside a private (0700) staging directory: until it
/// is finished, its setuid files, file capabilities and device nodes are
/// out of other host users' reach.
pub struct Rootfs {
    staging: PathBuf,
    tmp: PathBuf,
    dest: PathBuf,
    extractor: Option<Extractor>,
}

impl Rootfs {
    /// `dest` must not exist or be an empty directory.
    pub fn create(dest: &Path) -> Result<Rootfs> {
        Self::with_limits(dest, Limits::default())
    }

    /// [`Rootfs::create`], bounded by `limits` instead of the defaults.
    /// A parent directory that must be made is made 0700.
    pub fn with_limits(dest: &Path, limits: Limits) -> Result<Rootfs> {
        check_empty_target(dest)?;
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_private_dirs(parent)?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rootfs".into());
        let prefix = format!(".{name}.partial-");
        remove_abandoned(parent, &prefix);
        let staging = parent.join(format!("{prefix}{}", std::process::id()));
        let _ = remove_tree(&staging);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| Error::from(e).wrap(format!("create {}", staging.display())))?;
        let tmp = staging.join("rootfs");
        let mut r = Rootfs {
            staging,
            tmp: tmp.clone(),
            dest: dest.to_path_buf(),
            extractor: None,
        };
        std::fs::create_dir(&tmp)
            .map_err(|e| Error::from(e).wrap(format!("create {}", tmp.display())))?;
        rfs::chmod(&tmp, Mode::from_raw_mode(0o755))?;
        r.extractor = Some(Extractor::with_limits(&tmp, limits)?);
        Ok(r)
    }

    /// Where the tree is being built (until [`Rootfs::finish`]).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    fn extractor(&self) -> &Extractor {
        self.extractor.as_ref().expect("extractor")
    }

    pub fn apply(&self, tar_stream: impl Read, layer: &str) -> Result<()> {
        self.extractor().apply(tar_stream, layer)
    }

    /// See [`Extractor::counts`].
    pub fn counts(&self) -> Counts {
        self.extractor().counts()
    }

    /// See [`Extractor::rewind`].
    pub fn rewind(&self, counts: Counts) {
        self.extractor().rewind(counts)
    }

    /// [`Rootfs::apply`], checking that the uncompressed layer is the one
    /// the image config names (its diff_id), as containerd does.
    pub fn apply_verified(
        &self,
        tar_stream: impl Read,
        layer: &str,
        diff_id: Option<&Digest>,
    ) -> Result<()> {
        let Some(want) = diff_id else {
            return self.apply(tar_stream, layer);
        };
        let mut hashed = crate::image::digest::HashingReader::new(tar_stream, want.algorithm());
        self.apply(&mut hashed, layer)?;
        // The tar ends before its stream may (end-of-archive padding); what
        // follows counts against the same limit, or a bomb appended after
        // the end of the archive would be hashed without end.
        let left = self.extractor().bytes_left();
        let trailing = std::io::copy(&mut (&mut hashed).take(left + 1), &mut std::io::sink())
            .map_err(|e| Error::from(e).wrap(format!("layer {layer}: read")))?;
        if trailing > left {
            refuse!(
                "layer {layer}: the image's layers hold more than {} uncompressed bytes \
                 (the limit)",
                self.extractor().limits.max_bytes
            );
        }
        self.extractor().add_bytes(trailing);
        let got = hashed.finish();
        if &got != want {
            refuse!(
                "layer {layer}: uncompressed content is {got}, not the config's diff_id {want}"
            );
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.extractor = None;
        if self.dest.exists() {
            std::fs::remove_dir(&self.dest)
                .map_err(|e| Error::from(e).wrap(format!("replace {}", self.dest.display())))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| {
            Error::from(e).wrap(format!("move rootfs into {}", self.dest.display()))
        })?;
        let _ = std::fs::remove_dir(&self.staging);
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.extractor = None;
            let _ = remove_tree(&self.staging);
        }
    }
}

/// Whether users other than root and us could reach `dest` once it is
/// made: no directory above it is closed to them (owned by us or root,
/// with no search permission for group or others). A parent that does
/// not exist yet counts as closed: [`Rootfs`] makes it 0700.
pub fn reachable_by_others(dest: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let abs = if dest.is_absolute() {
        dest.to_path_buf()
    } else {
        std::env::current_dir()?.join(dest)
    };
    let Some(parent) = abs.parent() else {
        return Ok(true);
    };
    let parent = match std::fs::canonicalize(parent) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::from(e).wrap(parent.display())),
    };
    let me = rustix::process::geteuid().as_raw();
    for dir in parent.ancestors() {
        let st = std::fs::metadata(dir).map_err(|e| Error::from(e).wrap(dir.display()))?;
        if st.mode() & 0o011 == 0 && (st.uid() == me || st.uid() == 0) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `create_dir_all`, with the directories it makes private (0700).
pub fn create_private_dirs(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::from(e).wrap(format!("create {}", dir.display())))
}

/// Remove the temporary trees of pulls that were killed before they could
/// clean up (`PREFIX<pid>` whose process is gone).
fn remove_abandoned(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !crate::sys::process::alive(pid) {
            let _ = remove_tree(&entry.path());
        }
    }
}

/// Refuse to unpack over something that is there already.
pub fn check_empty_target(dest: &Path) -> Result<()> {
    match std::fs::read_dir(dest) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(Error::new(format!(
                    "{}: exists and is not empty",
                    dest.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::from(e).wrap(dest.display())),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn diff_id_is_checked_on_the_uncompressed_stream() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "f", &b"abc"[..]).unwrap();
        let layer = b.into_inner().unwrap();
        let right = Digest::of(&layer);
        let wrong = Digest::of(b"something else");
        let base = std::env::temp_dir().join(format!("skiff-diffid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let ok = Rootfs::create(&base.join("a")).unwrap();
        ok.apply_verified(&layer[..], "l", Some(&right)).unwrap();
        let bad = Rootfs::create(&base.join("b")).unwrap();
        let e = bad
            .apply_verified(&layer[..], "l", Some(&wrong))
            .unwrap_err();
        assert!(e.message().contains("not the config's diff_id"), "{e}");
        drop((ok, bad));
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn abandoned_partial_trees_are_swept() {
        let parent = std::env::temp_dir().join(format!("skiff-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        std::fs::create_dir_all(&parent).unwrap();
        // A pid that is surely gone: a child we started and reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let live = std::os::unix::process::parent_id();
        for pid in [dead, live] {
            std::fs::create_dir_all(parent.join(format!(".rootfs.partial-{pid}/etc"))).unwrap();
        }
        let r = Rootfs::create(&parent.join("rootfs")).unwrap();
        assert!(
            !parent.join(format!(".rootfs.partial-{dead}")).exists(),
            "a dead pull's tree is removed"
        );
        assert!(
            parent.join(format!(".rootfs.partial-{live}")).exists(),
            "a running pull's tree stays"
        );
        drop(r);
        let _ = std::fs::remove_dir_all(&parent);
    }

    use super::*;

    #[test]
    fn cleans_paths() {
        assert_eq!(clean_path(b"./a//b/./c/").unwrap(), [b"a", b"b", b"c"]);
        assert_eq!(
            clean_path(b"/etc/passwd").unwrap(),
            [&b"etc"[..], b"passwd"]
        );
        assert_eq!(clean_path(b"a/../b").unwrap(), [b"b"]);
        assert!(clean_path(b"./").unwrap().is_empty());
        assert!(clean_path(b"../x").is_err());
        assert!(clean_path(b"a/../../x").is_err());
        assert!(clean_path(b"/..").is_err());
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(whiteout(b".wh..wh..opq"), Whiteout::Opaque);
        assert_eq!(whiteout(b".wh.foo"), Whiteout::Remove(b"foo"));
        assert_eq!(whiteout(b"foo.wh."), Whiteout::None);
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_mtime(1_000_000);
            h.set_uid(0);
            h.set_gid(0);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    b.append_link(&mut h, name, data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    // set_path refuses "..": write the raw name bytes.
                    let raw = &mut h.as_old_mut().name;
                    raw.fill(0);
                    raw[..name.len()].copy_from_slice(name.as_bytes());
                    h.set_cksum();
                    b.append(&h, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn applies_whiteouts_links_and_stays_inside() {
        use tar::EntryType::*;
        struct Cleanup(std::path::PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let base = std::env::temp_dir().join(format!("skiff-unpack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let _cleanup = Cleanup(base.clone());
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(base.join("outside"), "keep").unwrap();
        let x = Extractor::new(&root).unwrap();
        x.apply(
            &tar_of(&[
                ("usr/lib/", Directory, ""),
                ("lib", Symlink, "usr/lib"),
                ("lib/x.so", Regular, "so"),
                ("evil", Symlink, "/etc"),
                ("evil/passwd", Regular, "pw"),
                ("up", Symlink, "../../.."),
                ("up/outside", Regular, "bad"),
                ("a/b/old", Regular, "old"),
                ("a/keep", Regular, "k"),
                ("gone", Regular, "g"),
                ("hl", Link, "lib/x.so"),
                ("hl", Link, "./hl"),
            ])[..],
            "one",
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("usr/lib/x.so")).unwrap(),
            "so"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/passwd")).unwrap(),
            "pw"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("outside")).unwrap(),
            "bad"
        );
        assert_eq!(
            std::fs::read_to_string(base.join("outside")).unwrap(),
            "keep"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("hl")).unwrap(),
            "so",
            "a self-link keeps the file"
        );
        x.apply(
            &tar_of(&[
                ("a/new", Regular, "n"),
                ("a/deep/er/file", Regular, "d"),
                ("a/.wh..wh..opq", Regular, ""),
                ("a/.wh.new", Regular, ""),
                (".wh.gone", Regular, ""),
            ])[..],
            "two",
        )
        .unwrap();
        assert!(!root.join("a/b").exists());
        assert!(!root.join("a/keep").exists());
        assert!(root.join("a/new").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("a/deep/er/file")).unwrap(),
            "d"
        );
        assert!(!root.join("gone").exists());
        for bad in [("../x", Regular, "x"), ("a/../../x", Regular, "x")] {
            let e = x.apply(&tar_of(&[bad])[..], "three").unwrap_err();
            assert!(
                e.message().contains("climbs out of the root"),
                "{}",
                e.message()
            );
        }
        let e = x
            .apply(&tar_of(&[("h2", Link, "../../outside")])[..], "four")
            .unwrap_err();
        assert!(e.message().contains("climbs out"), "{}", e.message());
        std::fs::remove_dir_all(&base).unwrap();
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!("skiff-{tag}-{}", std::process::id()));
            let _ = remove_tree(&p);
            std::fs::create_dir_all(p.join("root")).unwrap();
            Tmp(p)
        }
        fn root(&self) -> PathBuf {
            self.0.join("root")
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = remove_tree(&self.0);
        }
    }

    /// One ustar header, its name and link name written raw.
    fn header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8]) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_size(size);
        let old = h.as_old_mut();
        old.name.fill(0);
        old.name[..name.len()].copy_from_slice(name);
        old.linkname.fill(0);
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        h
    }

    fn tar_with(entries: &[(tar::Header, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (h, data) in entries {
            b.append(h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn non_utf8_names_and_targets_are_kept_byte_for_byte() {
        use tar::EntryType::*;
        let t = Tmp::new("bytes");
        let x = Extractor::new(&t.root()).unwrap();
        let layer = tar_with(&[
            (header(b"a\xff", Regular, 1, b""), b"1"),
            (header(b"a\xfe", Regular, 1, b""), b"2"),
            (header(b"l\xff", Symlink, 0, b"t\xfe\xff"), b""),
            (header(b"d\xc3/f", Regular, 1, b""), b"3"),
        ]);
        x.apply(&layer[..], "l").unwrap();
        let root = t.root();
        let p = |b: &[u8]| root.join(std::ffi::OsStr::from_bytes(b));
        assert_eq!(std::fs::read(p(b"a\xff")).unwrap(), b"1");
        assert_eq!(std::fs::read(p(b"a\xfe")).unwrap(), b"2", "no collision");
        assert_eq!(
            std::fs::read_link(p(b"l\xff"))
                .unwrap()
                .as_os_str()
                .as_bytes(),
            b"t\xfe\xff"
        );
        assert_eq!(std::fs::read(p(b"d\xc3/f")).unwrap(), b"3");
        // A whiteout of a non-UTF-8 name removes that name only.
        x.apply(
            &tar_with(&[(header(b".wh.a\xff", Regular, 0, b""), b"")])[..],
            "w",
        )
        .unwrap();
        assert!(!p(b"a\xff").exists());
        assert!(p(b"a\xfe").exists());
    }

    /// Every refusal is InvalidArgument (the daemon tells its client the
    /// layer is bad, not that the host failed) and names the layer and
    /// the entry.
    #[test]
    fn refusals_are_invalid_argument_naming_layer_and_entry() {
        use tar::EntryType::*;
        let mut bad_sum = header(b"sum", Regular, 0, b"");
        bad_sum.as_old_mut().cksum = *b"0000000\0";
        let mut bad_mode = header(b"mode", Regular, 0, b"");
        bad_mode.as_old_mut().mode = *b"zzzzzzz\0";
        bad_mode.set_cksum();
        let mut bad_uid = header(b"uid", Regular, 0, b"");
        bad_uid.as_old_mut().uid = *b"zz12345\0";
        bad_uid.set_cksum();
        let sparse = sparse(b"sp", 4096);
        // The last entry says 4096 bytes and the stream ends after 512.
        let mut short = tar_with(&[(header(b"short", Regular, 4096, b""), &[7u8; 4096][..])]);
        short.truncate(1024);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "dotdot",
                tar_with(&[(header(b"../x", Regular, 0, b""), b"")]),
                "\"../x\"",
            ),
            (
                "hardlink-missing",
                tar_with(&[(header(b"hl", Link, 0, b"/etc/passwd"), b"")]),
                "\"hl\"",
            ),
            (
                "hardlink-out",
                tar_with(&[(header(b"hl", Link, 0, b"../../x"), b"")]),
                "\"hl\"",
            ),
            (
                "hardlink-via-symlink",
                tar_with(&[
                    (header(b"s", Symlink, 0, b"/"), b""),
                    (header(b"hl", Link, 0, b"s/etc/passwd"), b""),
                ]),
                "\"hl\"",
            ),
            (
                "parent-not-dir",
                tar_with(&[
                    (header(b"f", Regular, 0, b""), b""),
                    (header(b"f/x", Regular, 0, b""), b""),
                ]),
                "\"f/x\"",
            ),
            (
                "whiteout-name",
                tar_with(&[(header(b".wh...", Regular, 0, b""), b"")]),
                "\".wh...\"",
            ),
            ("sparse", tar_with(&[(sparse, b"")]), "\"sp\""),
            ("bad-mode", tar_with(&[(bad_mode, b"")]), "\"mode\""),
            ("bad-uid", tar_with(&[(bad_uid, b"")]), "\"uid\""),
            (
                "bad-checksum",
                tar_with(&[(header(b"first", Regular, 0, b""), b""), (bad_sum, b"")]),
                "after entry \"first\"",
            ),
            ("size-lie", short, "\"short\""),
        ];
        for (case, layer, names) in cases {
            let t = Tmp::new(&format!("refuse-{case}"));
            let x = Extractor::new(&t.root()).unwrap();
            let e = x.apply(&layer[..], "sha256:abc").unwrap_err();
            assert_eq!(e.kind(), Kind::InvalidArgument, "{case}: {e}");
            assert!(e.message().starts_with("layer sha256:abc: "), "{case}: {e}");
            assert!(e.message().contains(names), "{case}: {e}");
        }
    }

    #[test]
    fn bad_ids_are_errors_not_root() {
        use tar::EntryType::*;
        let t = Tmp::new("ids");
        let x = Extractor::new(&t.root()).unwrap();
        let mut garbage = header(b"f", Regular, 0, b"");
        garbage.as_old_mut().uid = *b"zz12345\0";
        garbage.set_cksum();
        let e = x.apply(&tar_with(&[(garbage, b"")])[..], "l").unwrap_err();
        assert!(e.message().contains("uid field \"zz12345\""), "{e}");
        let mut huge = header(b"g", Regular, 0, b"");
        huge.set_gid(1 << 40);
        huge.set_cksum();
        let e = x.apply(&tar_with(&[(huge, b"")])[..], "l").unwrap_err();
        assert!(
            e.message().contains("gid 1099511627776 is out of range"),
            "{e}"
        );
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("uid", &b"-1"[..])]).unwrap();
        b.append(&header(b"p", Regular, 0, b""), &b""[..]).unwrap();
        let e = x.apply(&b.into_inner().unwrap()[..], "l").unwrap_err();
        assert!(
            e.message().contains("PAX uid \"-1\" is not a valid id"),
            "{e}"
        );
        // An empty field is 0, as other unpackers read it.
        let mut empty = header(b"e", Regular, 0, b"");
        empty.as_old_mut().uid = [0; 8];
        empty.set_cksum();
        x.apply(&tar_with(&[(empty, b"")])[..], "l").unwrap();
    }

    #[test]
    fn names_links_and_depth_are_bounded() {
        use tar::EntryType::*;
        let t = Tmp::new("names");
        let small = Limits {
            max_path: 20,
            max_link: 10,
            max_depth: 4,
            ..limits()
        };
        let x = Extractor::with_limits(&t.root(), small).unwrap();
        let long = vec![b'n'; 21];
        let e = x
            .apply(&tar_with(&[(header(&long, Regular, 0, b""), b"")])[..], "l")
            .unwrap_err();
        assert!(e.message().contains("name of 21 bytes"), "{e}");
        let e = x
            .apply(
                &tar_with(&[(header(b"s", Symlink, 0, b"0123456789a"), b"")])[..],
                "l",
            )
            .unwrap_err();
        assert!(e.message().contains("link target of 11 bytes"), "{e}");
        let e = x
            .apply(
                &tar_with(&[(header(b"a/b/c/d/e", Regular, 0, b""), b"")])[..],
                "l",
            )
            .unwrap_err();
        assert!(e.message().contains("name of 5 components"), "{e}");
        x.apply(
            &tar_with(&[(header(b"a/b/c/d", Regular, 0, b""), b"")])[..],
            "l",
        )
        .unwrap();
    }

    #[test]
    fn entries_are_counted_across_layers() {
        use tar::EntryType::*;
        let t = Tmp::new("count");
        let x = Extractor::with_limits(
            &t.root(),
            Limits {
                max_entries: 3,
                ..limits()
            },
        )
        .unwrap();
        let two = tar_with(&[
            (header(b"a", Regular, 0, b""), b""),
            (header(b"b", Regular, 0, b""), b""),
        ]);
        x.apply(&two[..], "one").unwrap();
        let e = x.apply(&two[..], "two").unwrap_err();
        assert!(e.message().contains("more than 3 entries"), "{e}");
    }

    /// A GNU sparse entry named `name`: one hole of `hole` bytes, no data.
    fn sparse(name: &[u8], hole: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_size(0);
        h.set_mode(0o644);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(hole);
        gnu.sparse[0].set_length(0);
        gnu.set_real_size(hole);
        h.set_cksum();
        h
    }

    /// The tar crate makes a sparse file's holes up as zeros never read
    /// from the layer: entries skipped early ("./", whiteouts) drained
    /// them past the byte limit. Sparse entries are refused, naming the
    /// entry, before anything of them is read.
    #[test]
    fn sparse_entries_cannot_get_around_the_byte_limit() {
        let t = Tmp::new("sparse");
        let x = Extractor::with_limits(
            &t.root(),
            Limits {
                max_bytes: 1 << 20,
                ..limits()
            },
        )
        .unwrap();
        for name in [&b"./"[..], b".wh.x", b"f"] {
            let holes: Vec<_> = (0..20)
                .map(|_| (sparse(name, 512 << 10), &b""[..]))
                .collect();
            let e = x.apply(&tar_with(&holes)[..], "l").unwrap_err();
            assert!(
                e.message().contains("GNU sparse files are not supported")
                    && e.message().contains(&format!("entry \"{}\"", show(name))),
                "{e}"
            );
        }
    }

    /// Content an entry declares counts against the byte limit even when
    /// it is never read: across entries, not only one at a time.
    #[test]
    fn declared_sizes_add_up_against_the_byte_limit() {
        use tar::EntryType::*;
        let t = Tmp::new("declared");
        let x = Extractor::with_limits(
            &t.root(),
            Limits {
                max_bytes: 1 << 20,
                ..limits()
            },
        )
        .unwrap();
        let data = vec![7u8; 300 << 10];
        let files: Vec<_> = (0..3)
            .map(|i| {
                (
                    header(format!("f{i}").as_bytes(), Regular, data.len() as u64, b""),
                    &data[..],
                )
            })
            .collect();
        x.apply(&tar_with(&files)[..], "one").unwrap();
        assert_eq!(x.counts().declared, 900 << 10);
        let e = x.apply(&tar_with(&files[..1])[..], "two").unwrap_err();
        assert!(e.message().contains("(the limit)"), "{e}");
    }

    /// What a layer's apply keeps per entry is keyed by path: one long
    /// directory repeated many times is stored once (it was stored once
    /// per entry), and distinct names past the budget are an error.
    #[test]
    fn names_kept_in_memory_are_deduplicated_and_bounded() {
        use tar::EntryType::*;
        let t = Tmp::new("index");
        let small = Limits {
            max_names: 64 << 10,
            ..limits()
        };
        let x = Extractor::with_limits(&t.root(), small).unwrap();
        // 16 components of 200 bytes: a 3.2 kB name, 300 times (960 kB).
        let long = vec![vec![b'd'; 200]; 16].join(&b'/');
        // Names past the header's 100 bytes: GNU long-name records.
        let dirs = |names: &[Vec<u8>]| {
            let mut b = tar::Builder::new(Vec::new());
            for name in names {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, std::ffi::OsStr::from_bytes(name), &b""[..])
                    .unwrap();
            }
            b.into_inner().unwrap()
        };
        let layer = dirs(&vec![long.clone(); 300]);
        let gauge = Gauge {
            total: Cell::new(0),
            entries: Cell::new(0),
            declared: Cell::new(0),
            metadata_from: Cell::new(None),
            limits: small,
        };
        let mut index = LayerIndex::new(small.max_names);
        x.apply_metered(&layer[..], "l", &gauge, &mut index)
            .unwrap();
        assert_eq!(index.dir_times.len(), 1);
        assert_eq!(index.touched.len(), 16, "the path and its ancestors");
        assert!(index.name_bytes < 2 * 16 * long.len() as u64);
        // Distinct names: refused once past the budget.
        let many: Vec<_> = (0..100)
            .map(|i| [&long[..], format!("/{i}").as_bytes()].concat())
            .collect();
        let e = x.apply(&dirs(&many)[..], "many").unwrap_err();
        assert!(e.message().contains("bytes of distinct names"), "{e}");
    }

    /// An endless source of one byte, counting what was taken from it.
    struct Endless<'a>(u8, &'a Cell<u64>);
    impl Read for Endless<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(self.0);
            self.1.set(self.1.get() + buf.len() as u64);
            Ok(buf.len())
        }
    }

    #[test]
    fn a_huge_pax_header_fails_after_reading_a_bounded_amount() {
        let t = Tmp::new("pax");
        let x = Extractor::new(&t.root()).unwrap();
        let mut h = header(b"pax", tar::EntryType::XHeader, 1 << 30, b"");
        h.set_cksum();
        let taken = Cell::new(0);
        let stream = io::Cursor::new(h.as_bytes().to_vec()).chain(Endless(b'a', &taken));
        let e = x.apply(stream, "l").unwrap_err();
        assert!(e.message().contains("PAX/GNU extension records"), "{e}");
        assert!(taken.get() < 4 << 20, "read {} bytes", taken.get());
        // The same for a GNU long name.
        let mut h = header(b"././@LongLink", tar::EntryType::GNULongName, 1 << 30, b"");
        h.set_cksum();
        let taken = Cell::new(0);
        let stream = io::Cursor::new(h.as_bytes().to_vec()).chain(Endless(b'a', &taken));
        let e = x.apply(stream, "l").unwrap_err();
        assert!(e.message().contains("PAX/GNU extension records"), "{e}");
        assert!(taken.get() < 4 << 20, "read {} bytes", taken.get());
    }

    #[test]
    fn a_gzip_bomb_fails_fast() {
        use std::io::Write;
        let t = Tmp::new("bomb");
        // 1 TiB of zeros claimed by the header, a few KiB compressed:
        // refused on the header, before any of it is written.
        let x = Extractor::new(&t.root()).unwrap();
        let h = header(b"big", tar::EntryType::Regular, 1 << 40, b"");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(h.as_bytes()).unwrap();
        gz.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 64 << 10);
        let started = std::time::Instant::now();
        let reader = decompressor(&bomb[..], Compression::Gzip).unwrap();
        let e = x.apply(reader, "l").unwrap_err();
        assert!(
            e.message().contains("uncompressed bytes (the limit)"),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(!t.root().join("big").exists(), "nothing written");
        // Many entries that are each small, with a small limit: the total
        // is what counts.
        let y = Extractor::with_limits(
            &t.root(),
            Limits {
                max_bytes: 1 << 20,
                ..limits()
            },
        )
        .unwrap();
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..8 {
            let name = format!("f{i}");
            let h = header(name.as_bytes(), tar::EntryType::Regular, 256 << 10, b"");
            b.append(&h, &vec![0u8; 256 << 10][..]).unwrap();
        }
        let layer = b.into_inner().unwrap();
        let e = y.apply(&layer[..], "l").unwrap_err();
        assert!(
            e.message().contains("over 1048576 uncompressed bytes"),
            "{e}"
        );
    }

    #[test]
    fn trailing_data_after_the_archive_counts_too() {
        let t = Tmp::new("trailing");
        let r = Rootfs::with_limits(
            &t.0.join("rootfs"),
            Limits {
                max_bytes: 1 << 20,
                ..limits()
            },
        )
        .unwrap();
        let mut layer = tar_with(&[(header(b"f", tar::EntryType::Regular, 1, b""), b"x")]);
        let want = Digest::of(&layer);
        let taken = Cell::new(0);
        let stream = io::Cursor::new(std::mem::take(&mut layer)).chain(Endless(1, &taken));
        let e = r.apply_verified(stream, "l", Some(&want)).unwrap_err();
        assert!(
            e.message().contains("uncompressed bytes (the limit)"),
            "{e}"
        );
        assert!(taken.get() < 4 << 20);
    }

    /// Run by [`deep_trees_are_removed_without_a_descriptor_per_level`]
    /// under a small RLIMIT_NOFILE: remove the tree it names.
    #[test]
    #[ignore = "run by deep_trees_are_removed_without_a_descriptor_per_level"]
    fn remove_named_tree() {
        if let Some(p) = std::env::var_os("SKIFF_REMOVE_TREE") {
            remove_tree(Path::new(&p)).unwrap();
        }
    }

    #[test]
    fn deep_trees_are_removed_without_a_descriptor_per_level() {
        let t = Tmp::new("deep");
        // Deeper than PATH_MAX allows in one path, and far deeper than the
        // descriptors the removal may hold (below).
        let mut fd = rfs::open(t.root(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..3000 {
            rfs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
            let f = rfs::openat(
                &fd,
                "f",
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .unwrap();
            drop(f);
            fd = rfs::openat(&fd, "d", OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        }
        drop(fd);
        // In a process of this test binary that may open 64 files.
        let out = std::process::Command::new("prlimit")
            .arg("--nofile=64")
            .arg("--")
            .arg(std::env::current_exe().unwrap())
            .args([
                "image::unpack::hostile_tests::remove_named_tree",
                "--exact",
                "--ignored",
            ])
            .env("SKIFF_REMOVE_TREE", t.root())
            .output()
            .expect("run prlimit (util-linux)");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!t.root().exists());
    }

    #[test]
    fn an_opaque_whiteout_over_a_deep_tree_prunes_it() {
        use tar::EntryType::*;
        let t = Tmp::new("prune");
        let x = Extractor::new(&t.root()).unwrap();
        let deep = "d/".repeat(300);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(Regular);
        h.set_mode(0o644);
        h.set_size(0);
        // A GNU long name: deeper than a ustar header holds.
        b.append_data(&mut h, format!("top/{deep}f"), &b""[..])
            .unwrap();
        b.append(&header(b"top/keep/k", Regular, 0, b""), &b""[..])
            .unwrap();
        x.apply(&b.into_inner().unwrap()[..], "one").unwrap();
        assert!(t.root().join(format!("top/{deep}f")).exists());
        x.apply(
            &tar_with(&[
                (header(b"top/keep/new", Regular, 0, b""), b""),
                (header(b"top/.wh..wh..opq", Regular, 0, b""), b""),
            ])[..],
            "two",
        )
        .unwrap();
        assert!(!t.root().join("top/d").exists());
        assert!(!t.root().join("top/keep/k").exists());
        assert!(t.root().join("top/keep/new").exists());
    }

    #[test]
    fn a_rootfs_is_built_where_other_users_cannot_reach_it() {
        let t = Tmp::new("private");
        let r = Rootfs::create(&t.0.join("new/rootfs")).unwrap();
        let above = r.path().parent().unwrap();
        assert_eq!(std::fs::metadata(above).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(t.0.join("new")).unwrap().mode() & 0o777,
            0o700,
            "a parent made for the rootfs is private"
        );
        r.finish().unwrap();
        assert!(t.0.join("new/rootfs").is_dir());
        let left: Vec<_> = std::fs::read_dir(t.0.join("new")).unwrap().collect();
        assert_eq!(left.len(), 1, "only the rootfs is left");
    }
}
