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
