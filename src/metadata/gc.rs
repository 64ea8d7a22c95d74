//! Garbage collection: mark what is reachable, sweep the rest.
//!
//! Roots, in every namespace: images (their target), containers (their
//! snapshot), leases that have not expired (`containerd.io/gc.expire`) with
//! the content and snapshots they hold, and content or snapshots labelled
//! `containerd.io/gc.root`; also the images in the content store's own
//! `index.json` (what skiff-fetch pulled into the shared store).
//! Edges: a document blob (index, manifest) keeps what it names (read from
//! the store, so images pulled without labels are safe); a blob's labels
//! `containerd.io/gc.ref.content*` keep content and
//! `containerd.io/gc.ref.snapshot.<snapshotter>` keep a snapshot (the
//! unpacker puts one on the image config); a snapshot keeps its parents.
//!
//! Swept: blobs no namespace reaches, snapshots (leaves first, since a
//! parent cannot go before its children), a namespace's records of blobs
//! nothing in that namespace reaches (as containerd; the blob stays while
//! another namespace reaches it), expired leases, snapshot
//! directories no record owns, blob temporaries of dead writers, and
//! resumable partial downloads in `ingest/` (by digest, or a content
//! Write's by namespace and ref) that no lease holds, no writer
//! has open, and nobody touched for [`INGEST_MAX_AGE`] (as containerd
//! expires them).
//!
//! # What may be swept
//! Only what existed when marking began: the blobs and the snapshots (by
//! directory id, which a Commit's rename keeps) are listed first, so a blob
//! written or a snapshot made or committed while the collection runs is
//! never taken by it.
//!
//! # Sharing the content store with skiff-fetch
//! This is the store's only collector once the daemon has used it (see
//! `image::store`): it marks the store's own `index.json` images, and it
//! holds the store's collection lock, so a skiff-fetch pull (which pins the
//! store until its image is tagged) never loses its blobs. Lock order: the
//! store's collection lock, then the metadata lock.
//!
//! # When it runs
//! A delete with `sync` collects at once; other deletes ask a
//! [`Scheduler`], which collects once on its own thread after a short
//! quiet time (a burst of deletes costs one collection), as containerd's
//! GC scheduler does. A scheduled collection waits for the collection
//! lock like any other, so skiff-fetch pulls in flight hold it off.
//!
//! # Requests a dead daemon left
//! The daemon holds a lease while one request makes things (a pull, a
//! container's create), marked [`LABEL_DAEMON_REQUEST`]; a pull's lease
//! also names what it pulls ([`LABEL_PULL_REF`]). A daemon killed
//! mid-request leaves the lease; the next one removes it before it
//! serves, so the next collection takes what the request had made.

use super::LABEL_GC_ROOT;
use super::{snapshot_key, Db, LABEL_GC_EXPIRE, LABEL_GC_REF_CONTENT, LABEL_GC_REF_SNAPSHOT};
use crate::error::{Context, Result};
use crate::image::content;
use crate::image::digest::Digest;
use crate::image::oci::Descriptor;
use crate::image::store::Store;
use crate::record;
use crate::snapshot::{Info, Snapshotter};
use crate::Kind;
use std::collections::HashSet;

/// How long a partial download no lease holds is kept for a resume.
pub const INGEST_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// On a lease the daemon holds for one request only (its value says
/// which): a lease so marked that a starting daemon finds was left by one
/// that died mid-request.
pub const LABEL_DAEMON_REQUEST: &str = "skiff.daemon/request";
/// On a pull's lease: the reference pulled (for the log; a daemon's
/// pull names nothing in the store's `index.json`).
pub const LABEL_PULL_REF: &str = "skiff.daemon/pull.ref";

/// Runs a collection soon after it is asked for: requests that come
/// within [`Scheduler::new`]'s quiet time are served by one run, and a
/// request during a run gets one more run after it. The job runs on a
/// thread started for the purpose (none while idle).
pub struct Scheduler {
    inner: std::sync::Arc<SchedulerInner>,
}

struct SchedulerInner {
    quiet: std::time::Duration,
    job: Box<dyn Fn() + Send + Sync>,
    /// (a thread is on it, asked again since it last started the job)
    state: std::sync::Mutex<(bool, bool)>,
}

impl Scheduler {
    pub fn new(quiet: std::time::Duration, job: impl Fn() + Send + Sync + 'static) -> Scheduler {
        Scheduler {
            inner: std::sync::Arc::new(SchedulerInner {
                quiet,
                job: Box::new(job),
                state: std::sync::Mutex::new((false, false)),
            }),
        }
    }

    /// Ask for a collection.
    pub fn request(&self) {
        let mut st = self.inner.lock();
        st.1 = true;
        if st.0 {
            return;
        }
        st.0 = true;
        drop(st);
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("gc".into())
            .stack_size(256 << 10)
            .spawn(move || {
                // A job that panics must not leave the scheduler busy for
                // good (no later request would start a thread).
                let _idle_if_panicking = IdleOnPanic(&inner);
                loop {
                    std::thread::sleep(inner.quiet);
                    inner.lock().1 = false;
                    (inner.job)();
                    let mut st = inner.lock();
                    if !st.1 {
                        st.0 = false;
                        return;
                    }
                }
            });
        if spawned.is_err() {
            // The next request tries again.
            self.inner.lock().0 = false;
        }
    }

    /// Whether a collection is asked for or running.
    pub fn busy(&self) -> bool {
        self.inner.lock().0
    }
}

/// Marks the scheduler idle when its thread unwinds.
struct IdleOnPanic<'a>(&'a SchedulerInner);

impl Drop for IdleOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().0 = false;
        }
    }
}

impl SchedulerInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub blobs: Vec<Digest>,
    /// (snapshotter, key)
    pub snapshots: Vec<(String, String)>,
    /// (namespace, lease id)
    pub expired_leases: Vec<(String, String)>,
    /// (namespace, digest): namespace records of blobs nothing there reaches.
    pub records: Vec<(String, Digest)>,
    /// Names of partial downloads removed from `ingest/`.
    pub ingests: Vec<String>,
    /// What could not be removed (the collection went on; the next one
    /// tries again).
    pub failures: Vec<String>,
}

enum Item {
    /// A blob reached in a namespace (its labels are looked up there).
    Content(Option<String>, Descriptor),
    Snapshot(String, String),
}

struct Marks<'a> {
    db: &'a Db,
    store: &'a Store,
    content: HashSet<Digest>,
    /// Blobs whose children and labels were followed, per namespace.
    walked: HashSet<(Option<String>, Digest)>,
    /// Snapshot keys followed, (snapshotter, key).
    snapshots: HashSet<(String, String)>,
    /// What is kept: (snapshotter, directory id).
    snapshot_ids: HashSet<(String, u64)>,
    todo: Vec<Item>,
}

impl Marks<'_> {
    fn digest(&mut self, ns: Option<&str>, d: Digest) {
        // A bare digest: size and type unknown; children are found when
        // the blob is a document the store holds.
        let size = std::fs::metadata(self.store.blob_path(&d))
            .map(|m| m.len())
            .unwrap_or(0);
        let media_type = sniff_media_type(self.store, &d, size);
        self.todo.push(Item::Content(
            ns.map(str::to_string),
            Descriptor {
                media_type,
                digest: d,
                size,
                platform: None,
                annotations: Vec::new(),
            },
        ));
    }

    fn run(&mut self, snapshotters: &[&Snapshotter]) -> Result<()> {
        while let Some(item) = self.todo.pop() {
            match item {
                Item::Content(ns, d) => {
                    self.content.insert(d.digest.clone());
                    if !self.walked.insert((ns.clone(), d.digest.clone())) {
                        continue;
                    }
                    if let Some(ns) = &ns {
                        self.labels_of(ns, &d.digest)?;
                    }
                    {
                        // A document that cannot be read or parsed keeps
                        // nothing more; the blob itself is kept.
                        if let Ok(kids) = content::children(self.store, &d) {
                            for k in kids {
                                self.todo.push(Item::Content(ns.clone(), k));
                            }
                        }
                    }
                }
                Item::Snapshot(sn, key) => {
                    if !self.snapshots.insert((sn.clone(), key.clone())) {
                        continue;
                    }
                    let Some(s) = snapshotters.iter().find(|s| s.driver().name() == sn) else {
                        continue;
                    };
                    if let Some(id) = s.id_of(&key) {
                        self.snapshot_ids.insert((sn.clone(), id));
                    }
                    if let Ok(info) = s.stat(&key) {
                        if !info.parent.is_empty() {
                            self.todo.push(Item::Snapshot(sn, info.parent));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Follow a blob's gc.ref labels in a namespace.
    fn labels_of(&mut self, ns: &str, d: &Digest) -> Result<()> {
        for (k, v) in self.db.content_labels(ns, d)? {
            if let Some(sn) = k.strip_prefix(LABEL_GC_REF_SNAPSHOT) {
                let key = (sn.to_string(), snapshot_key(ns, &v));
                if !self.snapshots.contains(&key) {
                    self.todo.push(Item::Snapshot(key.0, key.1));
                }
            } else if k.starts_with(LABEL_GC_REF_CONTENT) {
                if let Ok(r) = Digest::parse(&v) {
                    if !self.walked.contains(&(Some(ns.to_string()), r.clone())) {
                        self.digest(Some(ns), r);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The media type of a stored blob when it is a document we can walk.
fn sniff_media_type(store: &Store, d: &Digest, size: u64) -> String {
    if size == 0 || size > crate::image::oci::MAX_DOCUMENT || !looks_like_json(store, d) {
        return String::new();
    }
    let desc = Descriptor {
        media_type: String::new(),
        digest: d.clone(),
        size,
        platform: None,
        annotations: Vec::new(),
    };
    let Ok(data) = store.read(&desc) else {
        return String::new();
    };
    let Ok(text) = std::str::from_utf8(&data) else {
        return String::new();
    };
    let Ok(v) = crate::json::parse(text, "") else {
        return String::new();
    };
    let n = crate::json::Node::new(&v, "");
    match n.get("mediaType") {
        Ok(Some(m)) => m.string().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Does the blob start like a JSON object? (Saves reading and hashing a
/// whole layer to learn it is not a document.)
fn looks_like_json(store: &Store, d: &Digest) -> bool {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(store.blob_path(d))
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Collect garbage in the content store and the snapshotters.
///
/// Whatever is being made must already be reachable when a collection
/// runs: a pull holds a lease naming its blobs and snapshots before it
/// writes them, and a container's record exists before its snapshot is
/// prepared (or a lease holds the snapshot), as with containerd.
pub fn collect(db: &Db, store: &Store, snapshotters: &[&Snapshotter]) -> Result<Report> {
    collect_with(db, store, snapshotters, &|| {})
}

/// [`collect`], running `after_mark` between marking and sweeping (tests
/// race writers against a collection there).
pub(crate) fn collect_with(
    db: &Db,
    store: &Store,
    snapshotters: &[&Snapshotter],
    after_mark: &dyn Fn(),
) -> Result<Report> {
    store.delegate_collection()?;
    let _c = store.lock_collection()?;
    let _l = db.lock()?;
    let mut report = Report::default();
    // Only what exists now may be swept.
    let blobs = content::list_blobs(store)?;
    let snapshot_sets: Vec<Vec<(u64, Info)>> = snapshotters.iter().map(|s| s.list_ids()).collect();
    let mut m = Marks {
        db,
        store,
        content: HashSet::new(),
        walked: HashSet::new(),
        snapshots: HashSet::new(),
        snapshot_ids: HashSet::new(),
        todo: Vec::new(),
    };
    for d in store.images()? {
        m.todo.push(Item::Content(None, d));
    }
    let now = crate::time::now().0;
    let mut held_ingests = HashSet::new();
    for ns in db.namespaces()? {
        let ns = ns.name;
        for lease in db.leases(&ns)? {
            if lease
                .labels
                .get(LABEL_GC_EXPIRE)
                .and_then(|t| parse_rfc3339(t))
                .is_some_and(|t| t <= now)
            {
                record::remove(&db.lease_path(&ns, &lease.id))?;
                report.expired_leases.push((ns.clone(), lease.id));
                continue;
            }
            for r in lease.resources {
                if r.kind == "content" {
                    if let Ok(d) = Digest::parse(&r.id) {
                        m.digest(Some(&ns), d);
                    }
                } else if r.kind == "ingests" {
                    // Digest-named partials by their name, ref ingests by
                    // namespace and ref.
                    held_ingests.insert(content::ref_ingest_key(&ns, &r.id));
                    held_ingests.insert(r.id);
                } else if let Some(sn) = r.kind.strip_prefix("snapshots/") {
                    m.todo
                        .push(Item::Snapshot(sn.to_string(), snapshot_key(&ns, &r.id)));
                }
            }
        }
        for image in db.images(&ns)? {
            m.todo.push(Item::Content(Some(ns.clone()), image.target));
        }
        for c in db.containers(&ns)? {
            if !c.snapshot_key.is_empty() {
                m.todo.push(Item::Snapshot(
                    c.snapshotter.clone(),
                    snapshot_key(&ns, &c.snapshot_key),
                ));
            }
        }
        for (d, labels) in db.all_content_labels(&ns)? {
            if labels.contains_key(LABEL_GC_ROOT) {
                m.digest(Some(&ns), d);
            }
        }
    }
    for (s, set) in snapshotters.iter().zip(&snapshot_sets) {
        for (_, info) in set {
            if info.labels.contains_key(LABEL_GC_ROOT) {
                m.todo.push(Item::Snapshot(
                    s.driver().name().to_string(),
                    info.name.clone(),
                ));
            }
        }
    }
    m.run(snapshotters)?;
    after_mark();

    // Sweep snapshots, leaves first.
    for (s, set) in snapshotters.iter().zip(&snapshot_sets) {
        let sn = s.driver().name().to_string();
        let mut left: Vec<u64> = set
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !m.snapshot_ids.contains(&(sn.clone(), *id)))
            .collect();
        loop {
            let mut progress = false;
            let mut blocked = Vec::new();
            for id in left {
                match s.remove_id(id) {
                    Ok(Some(name)) => {
                        report.snapshots.push((sn.clone(), name));
                        progress = true;
                    }
                    Ok(None) => {}
                    Err(e) if e.kind() == Kind::FailedPrecondition => blocked.push(id),
                    Err(e) => report.failures.push(format!("{sn}: {e}")),
                }
            }
            left = blocked;
            if !progress || left.is_empty() {
                break;
            }
        }
        let orphans = s.remove_orphans().context("garbage collection")?;
        report
            .failures
            .extend(orphans.failed.into_iter().map(|f| format!("{sn}: {f}")));
    }

    content::remove_abandoned_puts(store);
    report.ingests = content::remove_stale_ingests(store, INGEST_MAX_AGE, &held_ingests);
    // Sweep blobs, and the labels of blobs that are gone.
    for b in blobs {
        if !m.content.contains(&b.digest) {
            match content::delete_blob(store, &b.digest) {
                Ok(()) => report.blobs.push(b.digest),
                Err(e) if e.kind() == Kind::NotFound => {}
                Err(e) => report.failures.push(e.to_string()),
            }
        }
    }
    // A namespace keeps its record of a blob only while something in the
    // namespace reaches the blob (containerd's rule); the blob itself went
    // above when no namespace (nor the store's index) reached it.
    for ns in db.namespaces()? {
        for (d, _) in db.all_content_labels(&ns.name)? {
            if !m.walked.contains(&(Some(ns.name.clone()), d.clone())) {
                record::remove(&db.content_path(&ns.name, &d))?;
                report.records.push((ns.name.clone(), d));
            }
        }
    }
    Ok(report)
}

/// Seconds since the epoch of an RFC 3339 time (`Z` or `±hh:mm`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") => {
            let oh = rest.get(1..3)?.parse::<i64>().ok()?;
            let om = rest.get(4..6)?.parse::<i64>().ok()?;
            let o = oh * 3600 + om * 60;
            if rest.starts_with('-') {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::{parse_rfc3339, Scheduler};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Duration;

    fn wait_idle(s: &Scheduler) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s.busy() {
            assert!(std::time::Instant::now() < deadline, "still busy");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn scheduler_serves_a_burst_with_one_run_and_a_late_request_with_another() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        // The job says when it starts and finishes when released.
        let (started_tx, started) = mpsc::channel::<()>();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let s = Scheduler::new(Duration::from_millis(20), move || {
            r.fetch_add(1, Ordering::SeqCst);
            let _ = started_tx.send(());
            let _ = release_rx.lock().unwrap().recv();
        });
        for _ in 0..20 {
            s.request();
        }
        assert!(s.busy());
        started.recv_timeout(Duration::from_secs(5)).unwrap();
        // Running now: one more request means one more run after it.
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        s.request();
        s.request();
        release.send(()).unwrap();
        started.recv_timeout(Duration::from_secs(5)).unwrap();
        release.send(()).unwrap();
        wait_idle(&s);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_job_leaves_the_scheduler_usable() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let s = Scheduler::new(Duration::from_millis(1), move || {
            if r.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the first collection fails");
            }
        });
        s.request();
        wait_idle(&s);
        s.request();
        wait_idle(&s);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn rfc3339_round_trips_with_time_module() {
        for secs in [0i64, 951_782_400, 1_700_000_000, 4_102_444_799] {
            let s = crate::time::rfc3339_nano(secs, 123_000_000);
            assert_eq!(parse_rfc3339(&s), Some(secs), "{s}");
        }
        assert_eq!(
            parse_rfc3339("1970-01-01T01:00:00+01:00"),
            Some(0),
            "offsets count"
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
    }
}
