//! Snapshotters, in containerd's model: a committed snapshot is a read-only
//! layer with an optional parent; Prepare makes a writable (active) snapshot
//! on a parent, View a read-only one; Commit turns an active snapshot into
//! a committed one under a new name; Mounts says how to mount a snapshot.
//!
//! Two drivers share the bookkeeping here ([`meta`]) and differ in how a
//! snapshot's directory is made and mounted:
//! - `overlayfs` ([`overlay`]): each snapshot is `snapshots/<id>/fs` (its own
//!   changes only) plus `work` for active ones; the parent chain becomes
//!   overlay lower dirs. Layers are unpacked straight into `fs` with
//!   whiteouts kept as overlay markers.
//! - `native` ([`native`]): a snapshot's `fs` is a full copy of its parent's
//!   tree; mounts are binds. Works on any filesystem.
//!
//! Keys are opaque here; the daemon puts its namespace in them.

pub mod diff;
pub mod meta;
pub mod mount;
pub mod native;
pub mod overlay;

use crate::err_kind;
use crate::error::{Context, Error, Result};
use crate::image::unpack::WhiteoutMode;
use crate::record::{self, now_nanos, Labels};
use meta::{Record, Table};
pub use mount::Mount;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    View,
    Active,
    Committed,
}

impl SnapshotKind {
    /// containerd's names (`ctr snapshots ls` prints them).
    pub fn name(self) -> &'static str {
        match self {
            SnapshotKind::View => "View",
            SnapshotKind::Active => "Active",
            SnapshotKind::Committed => "Committed",
        }
    }

    pub fn parse(s: &str) -> Option<SnapshotKind> {
        [
            SnapshotKind::View,
            SnapshotKind::Active,
            SnapshotKind::Committed,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub kind: SnapshotKind,
    /// The key (active, view) or name (committed).
    pub name: String,
    /// The parent's name, "" for none.
    pub parent: String,
    pub labels: Labels,
    /// Nanoseconds since the epoch.
    pub created: u64,
    pub updated: u64,
}

/// Disk use of one snapshot's own directory (not its parents').
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub size: u64,
    pub inodes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Overlay,
    Native,
}

impl Driver {
    /// The snapshotter's name as containerd's clients pass it.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlayfs",
            Driver::Native => "native",
        }
    }

    pub fn parse(s: &str) -> Result<Driver> {
        match s {
            "overlayfs" => Ok(Driver::Overlay),
            "native" => Ok(Driver::Native),
            _ => Err(err_kind!(
                InvalidArgument,
                "snapshotter {s:?}: unknown (overlayfs, native)"
            )),
        }
    }
}

pub struct Snapshotter {
    root: PathBuf,
    driver: Driver,
    table: Mutex<Table>,
    /// Orphan directories open() could not remove (the next
    /// [`Snapshotter::remove_orphans`] tries again).
    open_failures: Vec<String>,
    /// An exclusive flock on `<root>/lock` for as long as this is open:
    /// one process owns a snapshotter (its orphan sweep would otherwise
    /// take another process's snapshots in the making).
    _owner: fs::File,
}

impl Snapshotter {
    /// Open (creating if needed) a snapshotter rooted at `root`, removing
    /// what a crash left half made (directories with no record).
    pub fn open(root: &Path, driver: Driver) -> Result<Snapshotter> {
        let text = root.to_string_lossy();
        if text.contains(',') || text.contains(':') {
            // Both separate overlay mount options.
            return Err(err_kind!(
                InvalidArgument,
                "snapshotter root {text}: must not contain ',' or ':'"
            ));
        }
        let snaps = root.join("snapshots");
        record::create_dir(&snaps)?;
        // Mount options name lower dirs by absolute path.
        let root = &fs::canonicalize(root)
            .with_context(|| format!("snapshotter root {}", root.display()))?;
        let snaps = root.join("snapshots");
        let owner = lock_owner(root)?;
        let ids = dir_ids(&snaps)?;
        let table = Table::load(&root.join("metadata"), &ids)?;
        let mut s = Snapshotter {
            root: root.to_path_buf(),
            driver,
            table: Mutex::new(table),
            open_failures: Vec::new(),
            _owner: owner,
        };
        s.restore_dirs()?;
        // One directory that cannot go must not keep the store closed.
        s.open_failures = s.remove_orphans()?.failed;
        Ok(s)
    }

    /// Orphan directories open() found but could not remove.
    pub fn open_failures(&self) -> &[String] {
        &self.open_failures
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    /// A snapshot's own tree (`snapshots/<id>/fs`).
    fn fs_dir(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    pub fn stat(&self, key: &str) -> Result<Info> {
        self.lock()
            .get(key)
            .map(|r| r.info.clone())
            .ok_or_else(|| not_found(key))
    }

    /// All snapshots, sorted by name.
    pub fn list(&self) -> Vec<Info> {
        let mut v: Vec<Info> = self.lock().all().map(|r| r.info.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Replace a snapshot's labels.
    pub fn set_labels(&self, key: &str, labels: Labels) -> Result<Info> {
        record::check_labels(&format!("snapshot {key}"), &labels)?;
        let mut t = self.lock();
        let mut rec = t.get(key).cloned().ok_or_else(|| not_found(key))?;
        rec.info.labels = labels;
        rec.info.updated = now_nanos();
        let info = rec.info.clone();
        t.put(rec)
            .with_context(|| format!("update snapshot {key}"))?;
        Ok(info)
    }

    /// A writable snapshot on `parent` ("" for none); returns its mounts.
    pub fn prepare(&self, key: &str, parent: &str, labels: Labels) -> Result<Vec<Mount>> {
        self.create(SnapshotKind::Active, key, parent, labels)
            .with_context(|| format!("prepare snapshot {key}"))
    }

    /// A read-only snapshot of `parent`; returns its mounts.
    pub fn view(&self, key: &str, parent: &str, labels: Labels) -> Result<Vec<Mount>> {
        self.create(SnapshotKind::View, key, parent, labels)
            .with_context(|| format!("view snapshot {key}"))
    }

    fn create(
        &self,
        kind: SnapshotKind,
        key: &str,
        parent: &str,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        if key.is_empty() {
            return Err(err_kind!(InvalidArgument, "empty key"));
        }
        record::check_labels("labels", &labels)?;
        let (id, parent_id) = {
            let mut t = self.lock();
            if t.get(key).is_some() {
                return Err(err_kind!(AlreadyExists, "snapshot {key} already exists"));
            }
            let parent_id = if parent.is_empty() {
                None
            } else {
                let p = t.get(parent).ok_or_else(|| {
                    err_kind!(NotFound, "parent snapshot {parent} does not exist")
                })?;
                if p.info.kind != SnapshotKind::Committed {
                    return Err(err_kind!(
                        FailedPrecondition,
                        "parent snapshot {parent} is not committed"
                    ));
                }
                Some(p.id)
            };
            (t.reserve(parent), parent_id)
        };
        let built = self.build_dir(kind, id, parent_id);
        let now = now_nanos();
        let rec = Record {
            id,
            info: Info {
                kind,
                name: key.to_string(),
                parent: parent.to_string(),
                labels,
                created: now,
                updated: now,
            },
        };
        let res = built.and_then(|()| {
            let mut t = self.lock();
            // A parallel create of the same key may have won meanwhile.
            if t.get(key).is_some() {
                return Err(err_kind!(AlreadyExists, "snapshot {key} already exists"));
            }
            t.put(rec.clone())
        });
        if let Err(e) = res {
            let mut t = self.lock();
            // A record may be on disk even though writing it failed (its
            // directory's fsync did); it must not outlive the directory.
            t.forget(id);
            let _ = remove_tree(&self.dir(id));
            t.release(id);
            return Err(e);
        }
        let t = self.lock();
        self.mounts_of(&t, &rec)
    }

    /// Make `snapshots/<id>` complete, then it may get its record.
    fn build_dir(&self, kind: SnapshotKind, id: u64, parent: Option<u64>) -> Result<()> {
        let dir = self.dir(id);
        fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let fs_dir = self.fs_dir(id);
        match self.driver {
            Driver::Overlay => {
                mkdir_mode(&fs_dir, 0o755)?;
                if kind == SnapshotKind::Active && parent.is_some() {
                    mkdir_mode(&dir.join("work"), 0o711)?;
                }
            }
            Driver::Native => match parent {
                Some(p) => native::copy_tree(&self.fs_dir(p), &fs_dir)?,
                None => mkdir_mode(&fs_dir, 0o755)?,
            },
        }
        if self.driver == Driver::Overlay {
            // Not synced: what overlay makes here is empty, so a crash
            // that loses it loses nothing, and open() makes it again for a
            // record that names it ([`Snapshotter::restore_dirs`]). The two
            // fsyncs were a fifth of a container start's cost; a commit
            // syncs the filesystem (and so the directory) anyway.
            return Ok(());
        }
        // The directory (and what is in it) must be on disk before a
        // record names it.
        record::sync_dir(&dir)?;
        record::sync_dir(&self.root.join("snapshots"))
    }

    /// Give the overlay driver's uncommitted snapshots whose directory a
    /// crash lost (see [`Snapshotter::build_dir`]) an empty one again, as
    /// it was made: every record has its directory.
    fn restore_dirs(&self) -> Result<()> {
        if self.driver != Driver::Overlay {
            return Ok(());
        }
        let lost: Vec<(u64, SnapshotKind, Option<u64>)> = {
            let t = self.lock();
            t.all()
                .filter(|r| r.info.kind != SnapshotKind::Committed)
                .filter(|r| !self.fs_dir(r.id).is_dir())
                .map(|r| (r.id, r.info.kind, t.get(&r.info.parent).map(|p| p.id)))
                .collect()
        };
        for (id, kind, parent) in lost {
            remove_tree(&self.dir(id))?;
            self.build_dir(kind, id, parent)
                .with_context(|| format!("restore snapshot directory {id}"))?;
        }
        Ok(())
    }

    /// Flush a snapshot's files to disk: [`Snapshotter::commit`] does it,
    /// so a power cut cannot leave a committed layer with empty files that
    /// no re-pull repairs (containerd's known failure; it made syncfs an
    /// opt-in, `image_pull_with_sync_fs`; edge hosts lose power, so here it
    /// is the default). The filesystem is synced as a whole: a per-file
    /// fsync costs more on layers of many small files.
    fn sync_id(&self, id: u64) -> Result<()> {
        let dir = fs::File::open(self.dir(id))?;
        rustix::fs::syncfs(&dir)?;
        Ok(())
    }

    /// How to mount an active snapshot or a view.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let t = self.lock();
        let rec = t.get(key).ok_or_else(|| not_found(key))?;
        self.mounts_of(&t, rec)
            .with_context(|| format!("mounts of snapshot {key}"))
    }

    fn mounts_of(&self, t: &Table, rec: &Record) -> Result<Vec<Mount>> {
        let read_only = match rec.info.kind {
            SnapshotKind::Active => false,
            SnapshotKind::View => true,
            SnapshotKind::Committed => {
                return Err(err_kind!(
                    FailedPrecondition,
                    "snapshot {} is committed: only active snapshots and views have mounts",
                    rec.info.name
                ))
            }
        };
        match self.driver {
            Driver::Native => Ok(vec![Mount::bind(&self.fs_dir(rec.id), read_only)]),
            Driver::Overlay => {
                let lowers: Vec<PathBuf> = self
                    .chain(t, &rec.info.parent)?
                    .into_iter()
                    .map(|id| self.fs_dir(id))
                    .collect();
                Ok(vec![overlay::mount(&self.dir(rec.id), &lowers, read_only)])
            }
        }
    }

    /// Ids of `parent` and its ancestors, nearest first.
    fn chain(&self, t: &Table, parent: &str) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        let mut cur = parent.to_string();
        while !cur.is_empty() {
            let r = t
                .get(&cur)
                .ok_or_else(|| err_kind!(NotFound, "parent snapshot {cur} does not exist"))?;
            out.push(r.id);
            cur = r.info.parent.clone();
        }
        Ok(out)
    }

    /// Turn the active snapshot `key` into the committed snapshot `name`.
    pub fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()> {
        let what = || format!("commit snapshot {key} as {name}");
        if name.is_empty() {
            return Err(err_kind!(InvalidArgument, "empty name")).with_context(what);
        }
        record::check_labels("labels", &labels).with_context(what)?;
        // Synced before the record says committed, outside the table lock
        // (a syncfs can take long).
        let id = self.lock().get(key).ok_or_else(|| not_found(key))?.id;
        self.sync_id(id).with_context(what)?;
        let mut t = self.lock();
        if t.get(name).is_some() {
            return Err(err_kind!(AlreadyExists, "snapshot {name} already exists"))
                .with_context(what);
        }
        let mut rec = t.get(key).cloned().ok_or_else(|| not_found(key))?;
        if rec.id != id {
            return Err(err_kind!(
                FailedPrecondition,
                "snapshot {key} was replaced while it was synced"
            ))
            .with_context(what);
        }
        if rec.info.kind != SnapshotKind::Active {
            return Err(err_kind!(
                FailedPrecondition,
                "snapshot {key} is {}, not active",
                rec.info.kind.name()
            ))
            .with_context(what);
        }
        rec.info.kind = SnapshotKind::Committed;
        rec.info.name = name.to_string();
        rec.info.labels.extend(labels);
        rec.info.updated = now_nanos();
        // One record replace: the crash-safe step. The work dir is only
        // scratch for overlay and is left for the next mount to reuse.
        t.put(rec).with_context(what)
    }

    /// Remove a snapshot that has no children.
    pub fn remove(&self, key: &str) -> Result<()> {
        let what = || format!("remove snapshot {key}");
        let rec = {
            let mut t = self.lock();
            if t.get(key).is_none() {
                return Err(not_found(key)).with_context(what);
            }
            if t.has_children(key) {
                return Err(err_kind!(FailedPrecondition, "snapshot {key} has children"))
                    .with_context(what);
            }
            t.delete(key).with_context(what)?.expect("checked above")
        };
        // The record is gone: from here a crash leaves an orphan directory,
        // which open() and remove_orphans() clear.
        remove_tree(&self.dir(rec.id)).with_context(what)
    }

    /// Remove the snapshot with directory id `id` (as listed by
    /// [`Snapshotter::list_ids`]), whatever its name is now: garbage
    /// collection sweeps by id, so a Commit that renamed a snapshot while
    /// the collection ran changes nothing. Ok(None) when it is gone already.
    pub(crate) fn remove_id(&self, id: u64) -> Result<Option<String>> {
        let name = {
            let mut t = self.lock();
            let Some(name) = t.all().find(|r| r.id == id).map(|r| r.info.name.clone()) else {
                return Ok(None);
            };
            let what = || format!("remove snapshot {name}");
            if t.has_children(&name) {
                return Err(err_kind!(
                    FailedPrecondition,
                    "snapshot {name} has children"
                ))
                .with_context(what);
            }
            t.delete(&name).with_context(what)?;
            name
        };
        remove_tree(&self.dir(id)).with_context(|| format!("remove snapshot {name}"))?;
        Ok(Some(name))
    }

    /// Every snapshot with its directory id.
    pub(crate) fn list_ids(&self) -> Vec<(u64, Info)> {
        self.lock().all().map(|r| (r.id, r.info.clone())).collect()
    }

    /// The directory id of `key`.
    pub(crate) fn id_of(&self, key: &str) -> Option<u64> {
        self.lock().get(key).map(|r| r.id)
    }

    /// Remove directories no snapshot record owns (left by a crash). One
    /// that cannot be removed is reported and the others still go.
    pub fn remove_orphans(&self) -> Result<OrphanSweep> {
        let snaps = self.root.join("snapshots");
        let orphans = {
            let t = self.lock();
            t.orphans(&dir_ids(&snaps)?)
        };
        let mut sweep = OrphanSweep::default();
        for id in &orphans {
            match remove_tree(&self.dir(*id)) {
                Ok(()) => sweep.removed += 1,
                Err(e) => sweep
                    .failed
                    .push(format!("remove orphan snapshot directory {id}: {e}")),
            }
        }
        // Anything else in snapshots/ is not ours to keep either.
        if let Ok(entries) = fs::read_dir(&snaps) {
            for e in entries.flatten() {
                let name = e.file_name();
                if name.to_str().and_then(|n| n.parse::<u64>().ok()).is_none() {
                    let _ = remove_tree(&e.path());
                }
            }
        }
        Ok(sweep)
    }

    /// Disk use of a snapshot's own directory.
    pub fn usage(&self, key: &str) -> Result<Usage> {
        let id = self.lock().get(key).ok_or_else(|| not_found(key))?.id;
        let mut u = Usage::default();
        du(&self.fs_dir(id), &mut u).with_context(|| format!("usage of snapshot {key}"))?;
        Ok(u)
    }

    /// The snapshot whose own tree is `dir` (`<root>/snapshots/<id>/fs`,
    /// as its mounts name it), if any: how a diff service finds the
    /// snapshot behind the mounts a client passes back.
    pub fn by_fs_dir(&self, dir: &Path) -> Option<Info> {
        let rest = dir.strip_prefix(self.root.join("snapshots")).ok()?;
        let mut parts = rest.components();
        let id: u64 = parts.next()?.as_os_str().to_str()?.parse().ok()?;
        if parts.next()?.as_os_str() != "fs" || parts.next().is_some() {
            return None;
        }
        self.lock()
            .all()
            .find(|r| r.id == id)
            .map(|r| r.info.clone())
    }

    /// Where a layer is unpacked into the active snapshot `key`, and how its
    /// whiteouts are written there.
    pub fn apply_target(&self, key: &str) -> Result<(PathBuf, WhiteoutMode)> {
        let t = self.lock();
        let rec = t.get(key).ok_or_else(|| not_found(key))?;
        if rec.info.kind != SnapshotKind::Active {
            return Err(err_kind!(
                FailedPrecondition,
                "snapshot {key} is not active"
            ));
        }
        let mode = match self.driver {
            Driver::Overlay => WhiteoutMode::Overlay,
            Driver::Native => WhiteoutMode::Apply,
        };
        Ok((self.fs_dir(rec.id), mode))
    }
}

fn lock_owner(root: &Path) -> Result<fs::File> {
    use crate::sys::fs::{lock_file, LockMode};
    lock_file(&root.join("lock"), LockMode::Exclusive, false)?.ok_or_else(|| {
        err_kind!(
            FailedPrecondition,
            "snapshotter {}: in use by another process",
            root.display()
        )
    })
}

/// What [`Snapshotter::remove_orphans`] did.
#[derive(Debug, Default)]
pub struct OrphanSweep {
    pub removed: usize,
    /// One message per directory that could not be removed.
    pub failed: Vec<String>,
}

fn not_found(key: &str) -> Error {
    err_kind!(NotFound, "snapshot {key} does not exist")
}

fn mkdir_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .mode(mode)
        .create(p)
        .with_context(|| format!("create {}", p.display()))?;
    // The umask may have narrowed it.
    rustix::fs::chmod(p, rustix::fs::Mode::from_raw_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

/// Numeric directory names under `snapshots/`.
fn dir_ids(snaps: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in fs::read_dir(snaps).with_context(|| format!("list {}", snaps.display()))? {
        let e = e.with_context(|| format!("list {}", snaps.display()))?;
        if let Some(id) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Remove a tree that may hold anything a layer can make (read-only dirs,
/// devices); a missing tree is fine.
fn remove_tree(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::from(e).wrap(format!("remove {}", p.display()))),
    }
}

fn du(p: &Path, u: &mut Usage) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p)?;
    u.inodes += 1;
    u.size += m.blocks() * 512;
    if m.is_dir() {
        for e in fs::read_dir(p)? {
            du(&e?.path(), u)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
