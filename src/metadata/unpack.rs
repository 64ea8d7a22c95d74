//! Unpack a stored image into committed snapshots, one per layer, named by
//! chain id (containerd's rule: the first layer's chain id is its diff_id,
//! then `sha256(parent_chain_id + " " + diff_id)`), so images sharing
//! layers share snapshots; then prepare a container's writable snapshot.
//!
//! A layer goes into a temporary active snapshot, is checked against its
//! diff_id, and is committed under its chain id; a failed layer leaves
//! nothing. A parallel unpack of the same layer loses the commit race
//! harmlessly (AlreadyExists: its copy is dropped). The image's config blob
//! gets `containerd.io/gc.ref.snapshot.<snapshotter>=<top chain id>` so
//! garbage collection keeps the chain while the image exists; a `lease`
//! protects the snapshots while the unpack runs.

use super::{snapshot_key, Db, Resource, LABEL_GC_REF_SNAPSHOT};
use crate::error::{Context, Error, Result};
use crate::image::content;
use crate::image::digest::{Digest, HashingReader};
use crate::image::oci::{self, Descriptor, Platform};
use crate::image::store::Store;
use crate::image::unpack::{decompressor, Extractor};
use crate::record::Labels;
use crate::snapshot::{Mount, SnapshotKind, Snapshotter};
use crate::{err_kind, Kind};

/// Label on a committed layer snapshot: the chain id it holds.
pub const LABEL_SNAPSHOT_REF: &str = "containerd.io/snapshot.ref";

/// The chain ids of a list of diff_ids.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::of(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// What an unpack produced.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The top layer's chain id: the parent of a container's snapshot
    /// (empty for an image without layers).
    pub chain_id: String,
    pub config: Descriptor,
    /// Layers unpacked now (the others were there already).
    pub applied: usize,
}

/// An image's layers with their diff_ids and chain ids.
struct Layers {
    manifest: oci::Manifest,
    diff_ids: Vec<Digest>,
    chains: Vec<Digest>,
}

fn layers_of(store: &Store, target: &Descriptor) -> Result<Layers> {
    let (_, manifest) = content::resolve_manifest(store, target, &Platform::host())?;
    let config_bytes = store.read(&manifest.config)?;
    let config = oci::parse_config(&config_bytes, &manifest.config.digest.to_string())?;
    if config.diff_ids.len() != manifest.layers.len() {
        return Err(err_kind!(
            InvalidArgument,
            "image config {} names {} diff_ids for {} layers",
            manifest.config.digest,
            config.diff_ids.len(),
            manifest.layers.len()
        ));
    }
    let diff_ids = config
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d).map_err(|e| e.with_kind(Kind::InvalidArgument)))
        .collect::<Result<Vec<_>>>()?;
    let chains = chain_ids(&diff_ids);
    Ok(Layers {
        manifest,
        diff_ids,
        chains,
    })
}

/// Is the image `target` unpacked in `snapshots` for namespace `ns`? Its
/// top chain id then names a committed snapshot (and, through parents,
/// all the others) and its config carries the label that keeps that chain
/// from garbage collection (a crash between the last commit and the label
/// leaves a chain the next collection takes: not unpacked). Returns that
/// chain id when it is.
pub fn unpacked_chain(
    store: &Store,
    snapshots: &Snapshotter,
    db: &Db,
    ns: &str,
    target: &Descriptor,
) -> Result<Option<String>> {
    let layers = layers_of(store, target).with_context(|| format!("image {}", target.digest))?;
    let Some(top) = layers.chains.last() else {
        return Ok(Some(String::new()));
    };
    let top = top.to_string();
    let label = format!("{LABEL_GC_REF_SNAPSHOT}{}", snapshots.driver().name());
    let labelled = db
        .content_labels(ns, &layers.manifest.config.digest)?
        .get(&label)
        .is_some_and(|v| *v == top);
    Ok(match snapshots.stat(&snapshot_key(ns, &top)) {
        Ok(info) if info.kind == SnapshotKind::Committed && labelled => Some(top),
        _ => None,
    })
}

/// Unpack the image `target` (a manifest or an index) from `store` into
/// `snapshots`, in namespace `ns`. The `lease` (which must exist) is made
/// to hold every snapshot touched, before it is made: without one a
/// collection running meanwhile could take a layer between its commit and
/// the label that keeps the chain.
pub fn unpack_image(
    store: &Store,
    snapshots: &Snapshotter,
    db: &Db,
    ns: &str,
    target: &Descriptor,
    lease: &str,
) -> Result<Unpacked> {
    let what = || format!("unpack image {}", target.digest);
    let Layers {
        manifest,
        diff_ids,
        chains,
    } = layers_of(store, target).with_context(what)?;
    let sn = snapshots.driver().name();
    store.delegate_collection().with_context(what)?;
    let unpacker = Unpacker {
        store,
        snapshots,
        db,
        ns,
        lease,
    };
    let mut parent = String::new();
    let mut applied = 0;
    for (i, layer) in manifest.layers.iter().enumerate() {
        let chain = chains[i].to_string();
        let key = snapshot_key(ns, &chain);
        unpacker.hold(&chain).with_context(what)?;
        match snapshots.stat(&key) {
            Ok(info) if info.kind == SnapshotKind::Committed => {}
            Ok(info) => {
                return Err(err_kind!(
                    FailedPrecondition,
                    "snapshot {key} exists but is {}",
                    info.kind.name()
                ))
                .with_context(what)
            }
            Err(e) if e.kind() == Kind::NotFound => {
                if unpacker
                    .apply_layer(&parent, layer, &diff_ids[i], &chain)
                    .with_context(what)?
                {
                    applied += 1;
                }
            }
            Err(e) => return Err(e.wrap(what())),
        }
        parent = key;
    }
    let top = chains.last().map(|c| c.to_string()).unwrap_or_default();
    if !top.is_empty() {
        db.add_content_label(
            ns,
            &manifest.config.digest,
            &format!("{LABEL_GC_REF_SNAPSHOT}{sn}"),
            &top,
        )
        .with_context(what)?;
    }
    Ok(Unpacked {
        chain_id: top,
        config: manifest.config,
        applied,
    })
}

/// Where and for whom layers are applied.
struct Unpacker<'a> {
    store: &'a Store,
    snapshots: &'a Snapshotter,
    db: &'a Db,
    ns: &'a str,
    lease: &'a str,
}

impl Unpacker<'_> {
    fn lease_resource(&self, id: &str) -> Resource {
        Resource {
            id: id.to_string(),
            kind: format!("snapshots/{}", self.snapshots.driver().name()),
        }
    }

    /// Let the lease hold the snapshot `id` (namespace-relative).
    fn hold(&self, id: &str) -> Result<()> {
        self.db
            .add_lease_resource(self.ns, self.lease, self.lease_resource(id))
    }

    fn release(&self, id: &str) {
        let _ = self
            .db
            .delete_lease_resource(self.ns, self.lease, &self.lease_resource(id));
    }

    /// Apply one layer as the committed snapshot `chain` on `parent` (a
    /// snapshotter key). Returns false when a parallel unpack committed it
    /// first.
    fn apply_layer(
        &self,
        parent: &str,
        layer: &Descriptor,
        diff_id: &Digest,
        chain: &str,
    ) -> Result<bool> {
        let snapshots = self.snapshots;
        let key = snapshot_key(self.ns, chain);
        let tmp_id = format!(
            "{chain}.extract-{}-{}",
            std::process::id(),
            crate::record::now_nanos()
        );
        let tmp = snapshot_key(self.ns, &tmp_id);
        // Held before it exists, so a collection cannot take it half made.
        self.hold(&tmp_id)?;
        if let Err(e) = snapshots.prepare(&tmp, parent, Labels::new()) {
            self.release(&tmp_id);
            return Err(e);
        }
        let res = (|| -> Result<()> {
            let (dir, mode) = snapshots.apply_target(&tmp)?;
            let (got, _) = apply_layer_into(self.store, &dir, mode, layer, diff_id.algorithm())?;
            if &got != diff_id {
                return Err(err_kind!(
                    InvalidArgument,
                    "layer {}: uncompressed content is {got}, not the config's diff_id {diff_id}",
                    layer.digest
                ));
            }
            let mut labels = Labels::new();
            labels.insert(LABEL_SNAPSHOT_REF.to_string(), chain.to_string());
            snapshots.commit(&key, &tmp, labels)
        })();
        let res = match res {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = snapshots.remove(&tmp);
                if e.kind() == Kind::AlreadyExists && snapshots.stat(&key).is_ok() {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        };
        self.release(&tmp_id);
        res
    }
}

/// Apply the stored layer `layer` (gzip, zstd or plain tar: by its bytes,
/// else by its media type) onto `dir` with `mode` whiteouts, under
/// [`Extractor`]'s hostile-layer rules and limits. Returns the digest
/// (in `algorithm`) and size of the uncompressed tar: its diff_id.
pub fn apply_layer_into(
    store: &Store,
    dir: &std::path::Path,
    mode: crate::image::unpack::WhiteoutMode,
    layer: &Descriptor,
    algorithm: crate::image::digest::Algorithm,
) -> Result<(Digest, u64)> {
    let file = std::fs::File::open(store.blob_path(&layer.digest))
        .with_context(|| format!("open layer {}", layer.digest))?;
    let declared = oci::layer_compression(&layer.media_type).unwrap_or(oci::Compression::None);
    let reader = decompressor(file, declared)
        .map_err(Error::from)
        .with_context(|| format!("layer {}", layer.digest))?;
    let mut counted = Counted(reader, 0);
    let mut hashed = HashingReader::new(&mut counted, algorithm);
    Extractor::new(dir)?
        .with_whiteouts(mode)
        .apply(&mut hashed, &layer.digest.to_string())?;
    // The tar may end before its stream does (padding).
    std::io::copy(&mut hashed, &mut std::io::sink())
        .with_context(|| format!("layer {}: read", layer.digest))?;
    let digest = hashed.finish();
    Ok((digest, counted.1))
}

/// A reader that counts its bytes.
struct Counted<R>(R, u64);

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// Prepare the writable snapshot `key` of a container on an unpacked image
/// (`chain_id` from [`unpack_image`]) in namespace `ns`.
pub fn prepare_container(
    snapshots: &Snapshotter,
    ns: &str,
    key: &str,
    chain_id: &str,
    labels: Labels,
) -> Result<Vec<Mount>> {
    let parent = if chain_id.is_empty() {
        String::new()
    } else {
        snapshot_key(ns, chain_id)
    };
    snapshots.prepare(&snapshot_key(ns, key), &parent, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_containerd() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }
}
