//! Layer extraction that never touches anything outside the target.
//!
//! Every path of a layer entry is cleaned lexically (a `..` that would climb
//! above the root is an error), its parent is opened with openat2
//! `RESOLVE_IN_ROOT`, so symlinks are followed as if chrooted in the target,
//! and the entry itself is made with an `*at` call on that parent and a
//! single name that is never followed. OCI whiteouts apply to lower layers.

use crate::error::{Error, Result};
use crate::image::digest::Digest;
use crate::image::oci::Compression;
use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid,
    XattrFlags,
};
use rustix::io::Errno;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Clean a layer path: drop `/`, `.` and empty components; `..` pops one.
/// Returns the components, or an error when `..` would climb above the root.
pub fn clean_path(name: &str) -> std::result::Result<Vec<&str>, &'static str> {
    let mut out = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
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
fn clean_clamped(name: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// What a cleaned entry name means for whiteouts.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout<'a> {
    None,
    /// Remove `name` in the parent.
    Remove(&'a str),
    /// Remove everything the lower layers put in the parent.
    Opaque,
}

pub fn whiteout(base: &str) -> Whiteout<'_> {
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
fn open_dir(root: BorrowedFd, path: &str) -> rustix::io::Result<OwnedFd> {
    let p = if path.is_empty() { "." } else { path };
    rfs::openat2(
        root,
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        resolve(),
    )
}

fn lstat(dir: BorrowedFd, name: &str) -> rustix::io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_dir(st: &rfs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Remove `name` in `dir`, recursively, without following symlinks.
fn remove_all(dir: BorrowedFd, name: &str) -> rustix::io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in children(fd.as_fd())? {
        remove_all(fd.as_fd(), &child)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

fn children(dir: BorrowedFd) -> rustix::io::Result<Vec<String>> {
    let fd = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for e in rfs::Dir::read_from(&fd)? {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            out.push(n);
        }
    }
    Ok(out)
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
    Overlay,
}

/// Applies layers to one root directory.
pub struct Extractor {
    root: OwnedFd,
    euid_root: bool,
    whiteouts: WhiteoutMode,
}

struct DirTime {
    path: String,
    mtime: u64,
}

impl Extractor {
    pub fn new(root: &Path) -> Result<Extractor> {
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
        })
    }

    pub fn with_whiteouts(mut self, mode: WhiteoutMode) -> Extractor {
        self.whiteouts = mode;
        self
    }

    /// Apply one (decompressed) layer tar stream. `layer` names it in errors.
    pub fn apply(&self, tar_stream: impl Read, layer: &str) -> Result<()> {
        let mut archive = tar::Archive::new(tar_stream);
        let mut touched: HashSet<String> = HashSet::new();
        let mut dir_times: Vec<DirTime> = Vec::new();
        // Large writes: std's io::copy uses 8 KiB.
        let mut buf = vec![0u8; 256 << 10];
        let entries = archive
            .entries()
            .map_err(|e| Error::from(e).wrap(format!("layer {layer}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| Error::from(e).wrap(format!("layer {layer}: read tar")))?;
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            self.entry(
                &mut entry,
                &raw_name,
                &mut touched,
                &mut dir_times,
                &mut buf,
            )
            .map_err(|e| e.wrap(format!("layer {layer}: entry {raw_name:?}")))?;
        }
        // Directory times last: creating children changed them.
        for d in dir_times.iter().rev() {
            let (parent, base) = split(&d.path);
            if let Ok(pfd) = open_dir(self.root.as_fd(), parent) {
                let t = Timespec {
                    tv_sec: d.mtime as i64,
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

    fn entry<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        raw_name: &str,
        touched: &mut HashSet<String>,
        dir_times: &mut Vec<DirTime>,
        buf: &mut [u8],
    ) -> Result<()> {
        let comps = clean_path(raw_name).map_err(Error::new)?;
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
        let path = comps.join("/");
        let (parent, base) = split(&path);
        let root = self.root.as_fd();

        if self.whiteouts == WhiteoutMode::Overlay && whiteout(base) != Whiteout::None {
            return self.overlay_marker(parent, base, touched);
        }
        match whiteout(base) {
            Whiteout::Opaque => {
                let pfd = match open_dir(root, parent) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(Error::from(e).wrap("open parent directory")),
                };
                return self
                    .prune(pfd.as_fd(), parent, touched)
                    .map_err(|e| Error::from(e).wrap("opaque whiteout"));
            }
            Whiteout::Remove(name) => {
                if name.is_empty() || name == "." || name == ".." {
                    return Err(Error::new("invalid whiteout name"));
                }
                let pfd = match open_dir(root, parent) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
                    Err(e) => return Err(Error::from(e).wrap("open parent directory")),
                };
                let target = join(parent, name);
                if touched.contains(&target) {
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
        let mut prefix = path.as_str();
        while touched.insert(prefix.to_string()) {
            match prefix.rfind('/') {
                Some(i) => prefix = &prefix[..i],
                None => break,
            }
        }
        let mode = Mode::from_raw_mode(hdr.mode().map_err(Error::from)? & 0o7777);
        let mut uid = hdr.uid().unwrap_or(0) as u32;
        let mut gid = hdr.gid().unwrap_or(0) as u32;
        // PAX records carry ids too large for the header.
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                let value = ext.value().ok().and_then(|v| v.parse::<u32>().ok());
                match (ext.key(), value) {
                    (Ok("uid"), Some(v)) => uid = v,
                    (Ok("gid"), Some(v)) => gid = v,
                    _ => {}
                }
            }
        }
        let mtime = hdr.mtime().unwrap_or(0);
        let existing = lstat(pfd, base)?;
        if kind == tar::EntryType::Link {
            // A link to itself: nothing to do (and removing it first would lose it).
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned());
            if target.as_deref().map(clean_path) == Some(Ok(comps.clone())) {
                return Ok(());
            }
        }

        if kind == tar::EntryType::Directory {
            match existing {
                Some(st) if is_dir(&st) => {}
                Some(_) => {
                    remove_all(pfd, base)?;
                    rfs::mkdirat(pfd, base, Mode::from_raw_mode(0o700))?;
                }
                None => rfs::mkdirat(pfd, base, Mode::from_raw_mode(0o700))?,
            }
            let fd = rfs::openat(
                pfd,
                base,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            self.own(&fd, uid, gid)?;
            rfs::fchmod(&fd, mode)?;
            self.xattrs(&fd, entry)?;
            dir_times.push(DirTime { path, mtime });
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
                copy(entry, &mut file, buf).map_err(|e| Error::from(e).wrap("write"))?;
                self.own(&file, uid, gid)?;
                rfs::fchmod(&file, mode)?;
                self.xattrs(&file, entry)?;
                rfs::futimens(&file, &times)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::new("symlink without a target"))?;
                let target = String::from_utf8_lossy(&target).into_owned();
                rfs::symlinkat(target.as_str(), pfd, base)?;
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
                    .ok_or_else(|| Error::new("hardlink without a target"))?;
                let target = String::from_utf8_lossy(&target).into_owned();
                let tcomps = clean_path(&target)
                    .map_err(|why| Error::new(format!("hardlink target {target:?}: {why}")))?;
                if tcomps.is_empty() {
                    return Err(Error::new(format!(
                        "hardlink target {target:?}: is the root"
                    )));
                }
                let tpath = tcomps.join("/");
                let (tparent, tbase) = split(&tpath);
                let tfd = open_dir(root, tparent)
                    .map_err(|e| Error::from(e).wrap(format!("hardlink target {target:?}")))?;
                rfs::linkat(&tfd, tbase, pfd, base, AtFlags::empty())
                    .map_err(|e| Error::from(e).wrap(format!("hardlink to {target:?}")))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = if kind == tar::EntryType::Fifo {
                    (FileType::Fifo, 0)
                } else {
                    let major = hdr.device_major().map_err(Error::from)?.unwrap_or(0);
                    let minor = hdr.device_minor().map_err(Error::from)?.unwrap_or(0);
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
            other => return Err(Error::new(format!("unsupported tar entry type {other:?}"))),
        }
        Ok(())
    }

    /// Open `parent` in the root, creating missing directories one at a time.
    /// A dangling symlink on the way is followed inside the root and its
    /// target created (`evil -> /etc` makes `<root>/etc`).
    fn make_parents(&self, parent: &str) -> Result<OwnedFd> {
        self.make_dirs(parent, 0)
    }

    fn make_dirs(&self, path: &str, depth: u32) -> Result<OwnedFd> {
        let root = self.root.as_fd();
        if depth > 40 {
            return Err(Error::new(format!(
                "{path:?}: too many levels of symbolic links"
            )));
        }
        match open_dir(root, path) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(Errno::NOTDIR) => {
                return Err(Error::new(format!("parent {path:?} is not a directory")))
            }
            Err(e) => return Err(Error::from(e).wrap(format!("open parent {path:?}"))),
        }
        let mut fd = open_dir(root, "")?;
        let mut cur = String::new();
        for comp in path.split('/') {
            let next = join(&cur, comp);
            fd = match open_dir(root, &next) {
                Ok(f) => f,
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&fd, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => {
                            // A dangling symlink: create its target, inside the root.
                            let target = rfs::readlinkat(&fd, comp, Vec::new()).map_err(|e| {
                                Error::from(e).wrap(format!("read symlink {next:?}"))
                            })?;
                            let target = target.to_string_lossy().into_owned();
                            let joined = if target.starts_with('/') {
                                target
                            } else {
                                format!("{cur}/{target}")
                            };
                            self.make_dirs(&clean_clamped(&joined), depth + 1)?;
                        }
                        Err(e) => {
                            return Err(Error::from(e).wrap(format!("create directory {next:?}")))
                        }
                    }
                    open_dir(root, &next)
                        .map_err(|e| Error::from(e).wrap(format!("open {next:?}")))?
                }
                Err(Errno::NOTDIR) => {
                    return Err(Error::new(format!("parent {next:?} is not a directory")))
                }
                Err(e) => return Err(Error::from(e).wrap(format!("open {next:?}"))),
            };
            cur = next;
        }
        Ok(fd)
    }

    /// Opaque whiteout: remove what lower layers put in `dir`, keeping what
    /// this layer already wrote.
    fn prune(
        &self,
        dir: BorrowedFd,
        dir_path: &str,
        touched: &HashSet<String>,
    ) -> rustix::io::Result<()> {
        for child in children(dir)? {
            let p = join(dir_path, &child);
            if !touched.contains(&p) {
                remove_all(dir, &child)?;
            } else if lstat(dir, &child)?.is_some_and(|s| is_dir(&s)) {
                let sub = rfs::openat(
                    dir,
                    child.as_str(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.prune(sub.as_fd(), &p, touched)?;
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

impl Extractor {
    /// [`WhiteoutMode::Overlay`]: write the marker overlayfs reads instead
    /// of removing anything.
    fn overlay_marker(&self, parent: &str, base: &str, touched: &HashSet<String>) -> Result<()> {
        let pfd = self.make_parents(parent)?;
        match whiteout(base) {
            Whiteout::Opaque => {
                let p = if parent.is_empty() { "." } else { parent };
                let dir = rfs::openat2(
                    self.root.as_fd(),
                    p,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    resolve(),
                )?;
                rfs::fsetxattr(&dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                    .map_err(|e| Error::from(e).wrap("set trusted.overlay.opaque"))
            }
            Whiteout::Remove(name) => {
                if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                    return Err(Error::new("invalid whiteout name"));
                }
                if touched.contains(&join(parent, name)) {
                    return Ok(());
                }
                remove_all(pfd.as_fd(), name)?;
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

fn copy(from: &mut impl Read, to: &mut File, buf: &mut [u8]) -> io::Result<()> {
    use std::io::Write;
    loop {
        // Fill the buffer as far as the source allows before writing.
        let mut filled = 0;
        while filled < buf.len() {
            match from.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        to.write_all(&buf[..filled])?;
        if filled < buf.len() {
            return Ok(());
        }
    }
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// A rootfs built in a temporary sibling directory and moved into place by
/// [`Rootfs::finish`]; dropped unfinished, the temporary tree is removed.
pub struct Rootfs {
    tmp: PathBuf,
    dest: PathBuf,
    extractor: Option<Extractor>,
}

impl Rootfs {
    /// `dest` must not exist or be an empty directory.
    pub fn create(dest: &Path) -> Result<Rootfs> {
        check_empty_target(dest)?;
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::from(e).wrap(format!("create {}", parent.display())))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rootfs".into());
        let prefix = format!(".{name}.partial-");
        remove_abandoned(parent, &prefix);
        let tmp = parent.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp)
            .map_err(|e| Error::from(e).wrap(format!("create {}", tmp.display())))?;
        let mut r = Rootfs {
            tmp: tmp.clone(),
            dest: dest.to_path_buf(),
            extractor: None,
        };
        rfs::chmod(&tmp, Mode::from_raw_mode(0o755))?;
        r.extractor = Some(Extractor::new(&tmp)?);
        Ok(r)
    }

    /// Where the tree is being built (until [`Rootfs::finish`]).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn apply(&self, tar_stream: impl Read, layer: &str) -> Result<()> {
        self.extractor
            .as_ref()
            .expect("extractor")
            .apply(tar_stream, layer)
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
        // The tar ends before its stream may (end-of-archive padding).
        std::io::copy(&mut hashed, &mut std::io::sink())
            .map_err(|e| Error::from(e).wrap(format!("layer {layer}: read")))?;
        let got = hashed.finish();
        if &got != want {
            crate::bail!(
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
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.extractor = None;
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
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
            let _ = std::fs::remove_dir_all(entry.path());
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
        assert_eq!(clean_path("./a//b/./c/").unwrap(), ["a", "b", "c"]);
        assert_eq!(clean_path("/etc/passwd").unwrap(), ["etc", "passwd"]);
        assert_eq!(clean_path("a/../b").unwrap(), ["b"]);
        assert!(clean_path("./").unwrap().is_empty());
        assert!(clean_path("../x").is_err());
        assert!(clean_path("a/../../x").is_err());
        assert!(clean_path("/..").is_err());
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(whiteout(".wh..wh..opq"), Whiteout::Opaque);
        assert_eq!(whiteout(".wh.foo"), Whiteout::Remove("foo"));
        assert_eq!(whiteout("foo.wh."), Whiteout::None);
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
