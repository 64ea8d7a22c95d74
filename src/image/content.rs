//! What the daemon needs from the content store beyond skiff-fetch's use:
//! listing and deleting blobs and partial ingests (for `ctr content ls` and
//! garbage collection), and walking an image's documents (index →
//! manifests → config and layers).

use crate::error::{Context, Error, Result};
use crate::image::digest::Digest;
use crate::image::oci::{self, Descriptor, Document, Manifest, Platform};
use crate::image::store::Store;
use std::fs;
use std::os::unix::fs::MetadataExt;

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub modified: i64,
}

/// Every verified blob in the store.
pub fn list_blobs(store: &Store) -> Result<Vec<BlobInfo>> {
    let mut out = Vec::new();
    for alg in ["sha256", "sha512"] {
        let dir = store.root().join("blobs").join(alg);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::from(e).wrap(format!("list {}", dir.display()))),
        };
        for e in entries {
            let e = e.with_context(|| format!("list {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            // Anything not named by a digest is not a blob (a stray file).
            let Ok(digest) = Digest::parse(&format!("{alg}:{name}")) else {
                continue;
            };
            let m = e
                .metadata()
                .with_context(|| format!("stat blob {digest}"))?;
            if m.is_file() {
                out.push(BlobInfo {
                    digest,
                    size: m.len(),
                    modified: m.mtime(),
                });
            }
        }
    }
    out.sort_by_key(|a| a.digest.to_string());
    Ok(out)
}

/// Delete a blob; NotFound when it is not there.
pub fn delete_blob(store: &Store, digest: &Digest) -> Result<()> {
    let p = store.blob_path(digest);
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(crate::err_kind!(NotFound, "content {digest}: not found"))
        }
        Err(e) => Err(Error::from(e).wrap(format!("delete blob {digest}"))),
    }
}

/// Names of partial downloads (`ingest/`), with their sizes so far.
pub fn list_ingests(store: &Store) -> Result<Vec<(String, u64)>> {
    let dir = store.root().join("ingest");
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::from(e).wrap(format!("list {}", dir.display()))),
    };
    for e in entries.flatten() {
        if let Ok(m) = e.metadata() {
            out.push((e.file_name().to_string_lossy().into_owned(), m.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// Remove what a killed writer left in `ingest/`: [`Store::put`]'s
/// temporaries (`put-<pid>-<seq>-<hex>`) whose process is gone. Resumable
/// partial downloads (named by digest) are kept. Returns how many went.
pub fn remove_abandoned_puts(store: &Store) -> usize {
    let Ok(entries) = fs::read_dir(store.root().join("ingest")) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("put-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32
            && !crate::sys::process::alive(pid)
            && fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Remove resumable partial downloads (`ingest/<alg>-<hex>`) that no
/// writer has open, that `held` (lease "ingests" resources: the file name or
/// the digest) does not name, and that were last written more than
/// `max_age` ago. Returns the names removed.
pub fn remove_stale_ingests(
    store: &Store,
    max_age: std::time::Duration,
    held: &std::collections::HashSet<String>,
) -> Vec<String> {
    use crate::sys::fs::{lock_file, LockMode};
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(store.root().join("ingest")) else {
        return out;
    };
    let now = std::time::SystemTime::now();
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with("ref-") {
            if let Some(gone) = remove_stale_ref_ingest(&e.path(), now, max_age, held) {
                out.push(gone);
            }
            continue;
        }
        let Some((alg, hex)) = name.split_once('-') else {
            continue;
        };
        let Ok(digest) = Digest::parse(&format!("{alg}:{hex}")) else {
            continue; // not a resumable partial (a put temporary, a stray)
        };
        if held.contains(&name) || held.contains(&digest.to_string()) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > max_age);
        if !old {
            continue;
        }
        // A writer holds the partial's lock while it writes ([`Store::ingest`]).
        if let Ok(Some(_lock)) = lock_file(&e.path(), LockMode::Exclusive, false) {
            if fs::remove_file(e.path()).is_ok() {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

// ---- ingests named by a client's ref (containerd's content Write) ---------

/// The key a lease's `ingests` resource and garbage collection use for
/// the ref ingest `r` of namespace `ns`.
pub fn ref_ingest_key(ns: &str, r: &str) -> String {
    format!("{ns}/{r}")
}

/// Where the ref ingest of `ns`/`r` lives: `ingest/ref-<sha256>` with the
/// bytes so far in `data` (flock'ed by its writer) and `meta.json`.
fn ref_ingest_dir(store: &Store, ns: &str, r: &str) -> std::path::PathBuf {
    let key = ref_ingest_key(ns, r);
    store
        .root()
        .join("ingest")
        .join(format!("ref-{}", Digest::of(key.as_bytes()).hex()))
}

/// What is known of a ref ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestStatus {
    pub namespace: String,
    pub r#ref: String,
    /// Bytes written so far.
    pub offset: u64,
    /// The size the writer announced (0: not known).
    pub total: u64,
    pub expected: Option<Digest>,
    /// Nanoseconds since the epoch.
    pub started: u64,
    pub updated: u64,
}

fn write_ingest_meta(dir: &std::path::Path, st: &IngestStatus) -> Result<()> {
    let mut w = crate::json::Writer::compact();
    w.begin_object();
    w.key("namespace").str(&st.namespace);
    w.key("ref").str(&st.r#ref);
    w.key("total").num(st.total);
    w.key("expected").str(
        &st.expected
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default(),
    );
    w.key("started").num(st.started);
    w.end_object();
    crate::record::write(&dir.join("meta.json"), w.finish().as_bytes())
}

/// The status of the ingest in `dir`; None when it is not (or no longer)
/// a complete ingest.
fn read_ingest(dir: &std::path::Path) -> Option<IngestStatus> {
    let path = dir.join("meta.json");
    let text = crate::record::read(&path).ok()??;
    let v = crate::record::parse(&text, &path).ok()?;
    let n = crate::json::Node::new(&v, "");
    let data = fs::metadata(dir.join("data")).ok()?;
    let expected = n.need("expected").ok()?.string().ok()?;
    Some(IngestStatus {
        namespace: n.need("namespace").ok()?.string().ok()?,
        r#ref: n.need("ref").ok()?.string().ok()?,
        offset: data.len(),
        total: n.need("total").ok()?.u64().ok()?,
        expected: Digest::parse(&expected).ok(),
        started: n.need("started").ok()?.u64().ok()?,
        updated: (data.mtime() as u64) * 1_000_000_000 + data.mtime_nsec() as u64,
    })
}

/// The ingest `r` of namespace `ns`, if there is one.
pub fn ref_ingest_status(store: &Store, ns: &str, r: &str) -> Option<IngestStatus> {
    read_ingest(&ref_ingest_dir(store, ns, r)).filter(|s| s.namespace == ns && s.r#ref == r)
}

/// Every ref ingest of namespace `ns`, by ref.
pub fn list_ref_ingests(store: &Store, ns: &str) -> Vec<IngestStatus> {
    let mut out: Vec<IngestStatus> = fs::read_dir(store.root().join("ingest"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ref-"))
        .filter_map(|e| read_ingest(&e.path()))
        .filter(|s| s.namespace == ns)
        .collect();
    out.sort_by(|a, b| a.r#ref.cmp(&b.r#ref));
    out
}

/// Remove the ingest `r` of `ns`: NotFound when there is none, Ok(false)
/// when a writer holds it (it stays).
pub fn abort_ref_ingest(store: &Store, ns: &str, r: &str) -> Result<bool> {
    use crate::sys::fs::{lock_file, LockMode};
    let dir = ref_ingest_dir(store, ns, r);
    if ref_ingest_status(store, ns, r).is_none() {
        return Err(crate::err_kind!(NotFound, "ingest {r:?}: not found"));
    }
    let Some(_lock) = lock_file(&dir.join("data"), LockMode::Exclusive, false)? else {
        return Ok(false);
    };
    remove_dir(&dir).with_context(|| format!("abort ingest {r:?}"))?;
    Ok(true)
}

fn remove_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A blob being written under a client's ref, resumable across sessions
/// (and daemon restarts): the bytes go to `data`, hashed as they come.
/// One writer at a time: the open ingest holds an exclusive flock on its
/// data file.
pub struct RefIngest {
    dir: std::path::PathBuf,
    /// The store's `blobs/`.
    blobs: std::path::PathBuf,
    data: File,
    hash: ring::digest::Context,
    algorithm: crate::image::digest::Algorithm,
    status: IngestStatus,
    /// Whether this open made the ingest (it had no data before).
    pub created: bool,
}

use std::fs::File;

fn ring_algorithm(a: crate::image::digest::Algorithm) -> &'static ring::digest::Algorithm {
    match a {
        crate::image::digest::Algorithm::Sha256 => &ring::digest::SHA256,
        crate::image::digest::Algorithm::Sha512 => &ring::digest::SHA512,
    }
}

/// Start or resume the ingest `r` of namespace `ns`. `total` (0: not
/// known) and `expected` are recorded when given. Ok(None) when another
/// writer has it open.
pub fn open_ref_ingest(
    store: &Store,
    ns: &str,
    r: &str,
    total: u64,
    expected: Option<&Digest>,
) -> Result<Option<RefIngest>> {
    use rustix::fs::{flock, FlockOperation};
    use std::io::{Read, Seek, SeekFrom};
    let what = || format!("ingest {r:?}");
    let dir = ref_ingest_dir(store, ns, r);
    let created = match fs::create_dir(&dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::from(e).wrap(what())),
    };
    let mut data = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join("data"))
        .with_context(what)?;
    match flock(&data, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
        Err(e) => return Err(Error::from(e).wrap(what())),
    }
    let old = read_ingest(&dir).filter(|s| s.namespace == ns && s.r#ref == r);
    let now = crate::record::now_nanos();
    let mut status = old.clone().unwrap_or(IngestStatus {
        namespace: ns.to_string(),
        r#ref: r.to_string(),
        offset: 0,
        total: 0,
        expected: None,
        started: now,
        updated: now,
    });
    let created = created || old.is_none();
    if total > 0 {
        status.total = total;
    }
    if let Some(e) = expected {
        status.expected = Some(e.clone());
    }
    if old.as_ref() != Some(&status) {
        write_ingest_meta(&dir, &status).with_context(what)?;
    }
    let algorithm = status
        .expected
        .as_ref()
        .map(|d| d.algorithm())
        .unwrap_or(crate::image::digest::Algorithm::Sha256);
    let mut hash = ring::digest::Context::new(ring_algorithm(algorithm));
    // Hash what an earlier session wrote.
    let mut buf = vec![0u8; 256 << 10];
    let mut offset = 0u64;
    data.seek(SeekFrom::Start(0)).with_context(what)?;
    loop {
        let n = data.read(&mut buf).with_context(what)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        offset += n as u64;
    }
    status.offset = offset;
    Ok(Some(RefIngest {
        dir,
        blobs: store.root().join("blobs"),
        data,
        hash,
        algorithm,
        status,
        created,
    }))
}

impl RefIngest {
    pub fn offset(&self) -> u64 {
        self.status.offset
    }

    pub fn status(&self) -> &IngestStatus {
        &self.status
    }

    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        let d = self.hash.clone().finish();
        Digest::parse(&format!(
            "{}:{}",
            self.algorithm.name(),
            crate::image::digest::to_hex(d.as_ref())
        ))
        .expect("a digest we computed")
    }

    /// Append `bytes` at the current offset.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        self.data
            .write_all(bytes)
            .with_context(|| format!("write ingest {:?}", self.status.r#ref))?;
        self.hash.update(bytes);
        self.status.offset += bytes.len() as u64;
        self.status.updated = crate::record::now_nanos();
        Ok(())
    }

    /// Start over (a client writing at offset 0 again).
    pub fn restart(&mut self) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let what = || format!("truncate ingest {:?}", self.status.r#ref);
        self.data.set_len(0).with_context(what)?;
        self.data.seek(SeekFrom::Start(0)).with_context(what)?;
        self.hash = ring::digest::Context::new(ring_algorithm(self.algorithm));
        self.status.offset = 0;
        Ok(())
    }

    /// Remove the ingest.
    pub fn remove(self) {
        let _ = remove_dir(&self.dir);
    }

    /// Check the size (`size` 0: not checked) and digest (`expected`, when
    /// given) and move the blob into the store. A mismatch removes the
    /// ingest (those bytes can never become the blob) and is
    /// FailedPrecondition; a blob already stored is kept and the ingest
    /// dropped. Returns the digest, the size and whether the blob was new.
    /// The caller pins the store ([`Store::pin`]) until the blob is
    /// recorded, so no collection takes it in between.
    pub fn commit(self, size: u64, expected: Option<&Digest>) -> Result<(Digest, u64, bool)> {
        let r = self.status.r#ref.clone();
        let got = self.digest();
        let offset = self.status.offset;
        if size > 0 && size != offset {
            self.remove();
            return Err(crate::err_kind!(
                FailedPrecondition,
                "commit {r:?}: unexpected size {offset}, expected {size}"
            ));
        }
        if let Some(e) = expected {
            if *e != got {
                self.remove();
                return Err(crate::err_kind!(
                    FailedPrecondition,
                    "commit {r:?}: unexpected digest {got}, expected {e}"
                ));
            }
        }
        let what = || format!("commit {r:?} as {got}");
        self.data.sync_all().with_context(what)?;
        // The store's blob directories exist for both algorithms.
        let dest = self.blobs.join(got.algorithm().name()).join(got.hex());
        if fs::symlink_metadata(&dest).is_ok_and(|m| m.is_file()) {
            self.remove();
            return Ok((got, offset, false));
        }
        fs::rename(self.dir.join("data"), &dest).with_context(what)?;
        if let Some(parent) = dest.parent() {
            crate::record::sync_dir(parent).with_context(what)?;
        }
        self.remove();
        Ok((got, offset, true))
    }
}

/// Remove the ref ingest in `dir` when no lease holds it (`held` names
/// `ns/ref`), no writer has it open, and nobody wrote to it for `max_age`
/// (containerd expires an unleased ingest after a day). Returns its
/// `ns/ref` when removed.
fn remove_stale_ref_ingest(
    dir: &std::path::Path,
    now: std::time::SystemTime,
    max_age: std::time::Duration,
    held: &std::collections::HashSet<String>,
) -> Option<String> {
    use crate::sys::fs::{lock_file, LockMode};
    let st = read_ingest(dir);
    let key = st
        .as_ref()
        .map(|s| ref_ingest_key(&s.namespace, &s.r#ref))
        .unwrap_or_else(|| dir.display().to_string());
    if held.contains(&key) {
        return None;
    }
    // A half-made ingest (no data file or no meta) ages by its directory.
    let age = fs::metadata(dir.join("data"))
        .or_else(|_| fs::metadata(dir))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())?;
    if age <= max_age {
        return None;
    }
    let _lock = lock_file(&dir.join("data"), LockMode::Exclusive, false).ok()??;
    remove_dir(dir).ok()?;
    Some(key)
}

/// Is this descriptor a document (index, manifest) whose children matter?
fn is_document(d: &Descriptor) -> bool {
    matches!(
        d.media_type.as_str(),
        oci::OCI_INDEX | oci::OCI_MANIFEST | oci::DOCKER_LIST | oci::DOCKER_MANIFEST
    )
}

/// The blobs a document refers to directly: an index's manifests, a
/// manifest's config and layers. Other blobs (and documents not in the
/// store) have none.
pub fn children(store: &Store, d: &Descriptor) -> Result<Vec<Descriptor>> {
    if !is_document(d) || !store.has(d) {
        return Ok(Vec::new());
    }
    let data = store.read(d)?;
    Ok(
        match oci::parse_document(&data, &d.media_type, &d.digest.to_string())? {
            Document::Index(list) => list,
            Document::Manifest(m) => {
                let mut v = vec![m.config];
                v.extend(m.layers);
                v
            }
        },
    )
}

/// The manifest an image target names: the target itself, or the entry of
/// an index (nested indexes followed) for `platform`.
pub fn resolve_manifest(
    store: &Store,
    target: &Descriptor,
    platform: &Platform,
) -> Result<(Descriptor, Manifest)> {
    let mut desc = target.clone();
    for _ in 0..8 {
        let data = store
            .read(&desc)
            .with_context(|| format!("image document {}", desc.digest))?;
        match oci::parse_document(&data, &desc.media_type, &desc.digest.to_string())? {
            Document::Manifest(m) => return Ok((desc, m)),
            Document::Index(list) => {
                desc = oci::select_platform(&list, platform)
                    .cloned()
                    .ok_or_else(|| {
                        crate::err_kind!(
                            NotFound,
                            "image index {}: no manifest for platform {}/{}",
                            desc.digest,
                            platform.os,
                            platform.architecture
                        )
                    })?;
            }
        }
    }
    Err(crate::err_kind!(
        InvalidArgument,
        "image {}: indexes nested too deep",
        target.digest
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    struct Scratch(std::path::PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn put(store: &Store, data: &[u8], media_type: &str) -> Descriptor {
        let d = Descriptor {
            media_type: media_type.into(),
            digest: Digest::of(data),
            size: data.len() as u64,
            platform: None,
            annotations: Vec::new(),
        };
        store.put(&d, data).unwrap();
        d
    }

    fn desc_json(d: &Descriptor, platform: &str) -> String {
        format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{}{platform}}}"#,
            d.media_type, d.digest, d.size
        )
    }

    #[test]
    fn lists_deletes_and_walks_an_index() {
        let root = std::env::temp_dir().join(format!("skiff-content-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let _s = Scratch(root.clone());
        let store = Store::open(&root).unwrap();
        let layer = put(&store, b"layer", "application/vnd.oci.image.layer.v1.tar");
        let config = put(&store, b"{}", oci::OCI_CONFIG);
        let manifest = put(
            &store,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
                oci::OCI_MANIFEST,
                desc_json(&config, ""),
                desc_json(&layer, "")
            )
            .as_bytes(),
            oci::OCI_MANIFEST,
        );
        let host = Platform::host();
        let plat = format!(
            r#","platform":{{"architecture":"{}","os":"{}"}}"#,
            host.architecture, host.os
        );
        let other = r#","platform":{"architecture":"s390x","os":"linux"}"#;
        let index = put(
            &store,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{},{}]}}"#,
                oci::OCI_INDEX,
                desc_json(&config, other),
                desc_json(&manifest, &plat)
            )
            .as_bytes(),
            oci::OCI_INDEX,
        );

        let (found, m) = resolve_manifest(&store, &index, &host).unwrap();
        assert_eq!(found.digest, manifest.digest, "the host's entry is chosen");
        assert_eq!(m.layers[0].digest, layer.digest);
        let kids: Vec<Digest> = children(&store, &manifest)
            .unwrap()
            .into_iter()
            .map(|d| d.digest)
            .collect();
        assert_eq!(kids, [config.digest.clone(), layer.digest.clone()]);
        assert!(
            children(&store, &layer).unwrap().is_empty(),
            "a layer has none"
        );

        assert_eq!(list_blobs(&store).unwrap().len(), 4);
        delete_blob(&store, &layer.digest).unwrap();
        assert_eq!(
            delete_blob(&store, &layer.digest).unwrap_err().kind(),
            Kind::NotFound
        );
        assert!(list_blobs(&store)
            .unwrap()
            .iter()
            .all(|b| b.digest != layer.digest));
        fs::write(root.join("ingest/partial"), b"abc").unwrap();
        assert_eq!(list_ingests(&store).unwrap(), [("partial".to_string(), 3)]);
        // A put by a process that died (pid_max is below 2^22) goes; ours
        // and resumable partials stay.
        fs::write(root.join("ingest/put-4194305-abc"), b"x").unwrap();
        let mine = format!("put-{}-abc", std::process::id());
        fs::write(root.join("ingest").join(&mine), b"x").unwrap();
        assert_eq!(remove_abandoned_puts(&store), 1);
        assert!(root.join("ingest").join(&mine).exists());
        assert!(root.join("ingest/partial").exists());
    }
}
