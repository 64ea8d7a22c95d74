//! The daemon's stores behind one small adapter: metadata (namespaced
//! records), the verified content store, and the snapshotters, opened on
//! first use. The rest of the daemon reaches `crate::metadata`,
//! `crate::snapshot` and `crate::image` only through here, so a rename
//! there is a change in this file.

use crate::error::{Context, Result};
use crate::image::store::Store;
use crate::metadata::Db;
use crate::snapshot::{Driver, Mount, Snapshotter};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};

pub use crate::metadata::unpack::{prepare_container, unpack_image, unpacked_chain};
pub use crate::metadata::{Any as MetaAny, Container, Image, Lease, Runtime};
pub use crate::record::Labels;
pub use crate::snapshot::SnapshotKind;

/// Layout under `--root`, after containerd's plugin directories.
const CONTENT_DIR: &str = "io.containerd.content.v1.content";
const METADATA_DIR: &str = "io.containerd.metadata.v1.skiff";

pub struct Stores {
    root: PathBuf,
    db: OnceLock<Db>,
    content: OnceLock<Store>,
    snapshotters: Mutex<Vec<Arc<Snapshotter>>>,
    /// Garbage collection takes it exclusively; see [`Stores::hold_off_gc`].
    gc_barrier: RwLock<()>,
    gc: OnceLock<crate::metadata::gc::Scheduler>,
    defaults: Defaults,
}

/// What a request that names no snapshotter or runtime gets (the config's
/// `snapshotter`, `runtime`).
/// The one place these defaults are decided.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Empty: [`default_snapshotter`] (what the kernel supports).
    pub snapshotter: String,
    pub runtime: String,
}

/// How long deletes must pause before a scheduled collection runs.
const GC_QUIET: std::time::Duration = std::time::Duration::from_millis(200);

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            snapshotter: String::new(),
            runtime: super::shim::SKIFF_RUNTIME.into(),
        }
    }
}

impl Defaults {
    /// The snapshotter of a request that names none.
    pub fn snapshotter(&self) -> &str {
        if self.snapshotter.is_empty() {
            default_snapshotter()
        } else {
            &self.snapshotter
        }
    }
}

impl Stores {
    pub fn new(root: &Path) -> Stores {
        Stores {
            root: root.to_path_buf(),
            db: OnceLock::new(),
            content: OnceLock::new(),
            snapshotters: Mutex::new(Vec::new()),
            gc_barrier: RwLock::new(()),
            gc: OnceLock::new(),
            defaults: Defaults::default(),
        }
    }

    pub fn with_defaults(mut self, defaults: Defaults) -> Stores {
        self.defaults = defaults;
        self
    }

    /// The snapshotter of a request that names none.
    pub fn default_snapshotter(&self) -> &str {
        self.defaults.snapshotter()
    }

    /// The runtime of a container that names none.
    pub fn default_runtime(&self) -> &str {
        &self.defaults.runtime
    }

    pub fn db(&self) -> Result<&Db> {
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let db = Db::open(&self.root.join(METADATA_DIR)).context("open metadata")?;
        Ok(self.db.get_or_init(|| db))
    }

    pub fn content(&self) -> Result<&Store> {
        if let Some(s) = self.content.get() {
            return Ok(s);
        }
        let s = Store::open(&self.root.join(CONTENT_DIR)).context("open content store")?;
        Ok(self.content.get_or_init(|| s))
    }

    /// The snapshotter named `name` ("overlayfs", "native"); opened once.
    pub fn snapshotter(&self, name: &str) -> Result<Arc<Snapshotter>> {
        let driver = Driver::parse(name)?;
        let mut open = self.snapshotters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.iter().find(|s| s.driver() == driver) {
            return Ok(s.clone());
        }
        let dir = self
            .root
            .join(format!("io.containerd.snapshotter.v1.{}", driver.name()));
        let s = Arc::new(
            Snapshotter::open(&dir, driver)
                .with_context(|| format!("open snapshotter {}", driver.name()))?,
        );
        open.push(s.clone());
        Ok(s)
    }

    /// Every snapshotter that exists on disk (for garbage collection and
    /// namespace deletion).
    pub fn all_snapshotters(&self) -> Result<Vec<Arc<Snapshotter>>> {
        let mut out = Vec::new();
        for name in ["overlayfs", "native"] {
            let dir = self
                .root
                .join(format!("io.containerd.snapshotter.v1.{name}"));
            if dir.exists() {
                out.push(self.snapshotter(name)?);
            }
        }
        Ok(out)
    }

    /// The namespaced key of a container's snapshot in its snapshotter.
    pub fn snapshot_key(ns: &str, key: &str) -> String {
        crate::metadata::snapshot_key(ns, key)
    }

    /// The mounts of a container's snapshot.
    pub fn mounts(&self, snapshotter: &str, ns: &str, key: &str) -> Result<Vec<Mount>> {
        self.snapshotter(snapshotter)?
            .mounts(&Self::snapshot_key(ns, key))
    }

    pub fn namespace_snapshots(&self, sn: &Snapshotter, ns: &str) -> Vec<crate::snapshot::Info> {
        crate::metadata::namespace_snapshots(sn, ns)
    }

    /// No garbage collection runs while the guard lives: a request that
    /// makes something before the record referencing it (a container's
    /// snapshot) holds it across both steps. In memory, not a lease record
    /// (five fsyncs in the request path): collection only runs in this
    /// process (the snapshotters' owner lock keeps others out), and what a
    /// crash between the steps leaves is unreferenced, i.e. garbage.
    /// Take it once per request (a waiting collection blocks new readers).
    pub fn hold_off_gc(&self) -> RwLockReadGuard<'_, ()> {
        self.gc_barrier.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a previous daemon left metadata here.
    pub fn exists(&self) -> bool {
        self.root.join(METADATA_DIR).exists()
    }

    /// End the requests a daemon that died left half-done: their leases
    /// go (the next collection takes what they made). A pull names
    /// nothing in the store's index.json (that is skiff-fetch's), so no
    /// entry there is touched. Call before serving.
    pub fn clear_interrupted(&self) -> Result<()> {
        use crate::metadata::gc::LABEL_DAEMON_REQUEST;
        let db = self.db()?;
        for ns in db.namespaces()? {
            for lease in db.leases(&ns.name)? {
                let Some(what) = lease.labels.get(LABEL_DAEMON_REQUEST) else {
                    continue;
                };
                crate::log::warn!(
                    "{}: lease {} of an interrupted {what}: removed",
                    ns.name,
                    lease.id
                );
                db.delete_lease(&ns.name, &lease.id)?;
            }
        }
        Ok(())
    }

    /// From now on [`Stores::collect_garbage_soon`] collects (on a thread
    /// of its own, see `metadata::gc::Scheduler`).
    pub fn schedule_collections(self: &Arc<Self>) {
        let stores = Arc::downgrade(self);
        let _ = self
            .gc
            .set(crate::metadata::gc::Scheduler::new(GC_QUIET, move || {
                if let Some(s) = stores.upgrade() {
                    if let Err(e) = s.collect_garbage() {
                        crate::log::warn!("garbage collection: {e}");
                    }
                }
            }));
    }

    /// Collect soon (after a delete that was not `sync`).
    pub fn collect_garbage_soon(&self) {
        if let Some(gc) = self.gc.get() {
            gc.request();
        }
    }

    /// Collect what nothing references any more.
    pub fn collect_garbage(&self) -> Result<()> {
        let _exclusive = self.gc_barrier.write().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let sns = self.all_snapshotters()?;
        let refs: Vec<&Snapshotter> = sns.iter().map(|s| s.as_ref()).collect();
        let r = crate::metadata::gc::collect(self.db()?, self.content()?, &refs)?;
        // Tests wait for this line before they look at the store.
        crate::log::debug!(
            "garbage collection done: {} blobs, {} snapshots, {} partial downloads removed ({:.2} ms)",
            r.blobs.len(),
            r.snapshots.len(),
            r.ingests.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    }
}

/// overlayfs when the kernel has it, else the copying snapshotter.
pub fn default_snapshotter() -> &'static str {
    let has_overlay = std::fs::read_to_string("/proc/filesystems")
        .map(|t| t.lines().any(|l| l.trim_end().ends_with("\toverlay")))
        .unwrap_or(false);
    if has_overlay {
        "overlayfs"
    } else {
        "native"
    }
}
