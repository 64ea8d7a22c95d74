//! containerd.services.diff.v1.Diff, which containerd's client-side
//! unpack (`ctr images pull`) and commit use:
//! - Apply: a layer from the namespace's content onto the mounts of an
//!   active snapshot (gzip, zstd or plain tar; overlay whiteouts for an
//!   overlay snapshot), through the same hostile-layer extraction and
//!   limits as every unpack (`metadata::unpack::apply_layer_into`);
//!   answers the uncompressed tar's descriptor (its diff_id).
//! - Diff: the changes of the `right` mounts over the `left` ones as a
//!   layer tar, written into the content store under `ref` and recorded
//!   with `containerd.io/uncompressed`; for an overlay snapshot its upper
//!   directory is the diff.
//!
//! Mounts are accepted only when they name an active snapshot of this
//! daemon in the caller's namespace: a client cannot make the daemon
//! write or read elsewhere on the host.

use super::api::{missing, status, Ctx, Handler};
use super::content::{hold, parse_digest};
use super::store::{SnapshotKind, Stores};
use crate::image::content as ic;
use crate::image::digest::{Algorithm, Digest};
use crate::image::oci::{self, Compression};
use crate::proto::services::diff as pd;
use crate::proto::types::{Descriptor, Mount};
use crate::ttrpc::{unary, unknown_method, Code, Status};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Diff(pub Arc<Stores>);

const LABEL_UNCOMPRESSED: &str = "containerd.io/uncompressed";
const DEFAULT_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn invalid(m: String) -> Status {
    Status::new(Code::InvalidArgument, m)
}

/// A snapshot's own tree behind a mount, and which snapshot it is.
struct Resolved {
    dir: PathBuf,
    key: String,
    kind: SnapshotKind,
    sn: Arc<crate::snapshot::Snapshotter>,
    /// Whether `dir` holds the snapshot's own changes only (overlayfs),
    /// not its whole tree (native).
    layer_only: bool,
}

fn option<'a>(m: &'a Mount, key: &str) -> Option<&'a str> {
    m.options
        .iter()
        .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
}

impl Diff {
    /// The snapshot of namespace `ns` whose own tree `m` mounts: an
    /// overlay's upper dir, else its top lower dir (a view), or a bind's
    /// source.
    fn resolve(&self, ns: &str, what: &str, m: &Mount) -> Result<Resolved, Status> {
        let dir = match m.r#type.as_str() {
            "overlay" => option(m, "upperdir")
                .or_else(|| option(m, "lowerdir").and_then(|l| l.split(':').next()))
                .ok_or_else(|| invalid(format!("{what}: an overlay mount without dirs")))?,
            "bind" | "rbind" => m.source.as_str(),
            t => {
                return Err(invalid(format!(
                    "{what}: mount type {t:?} is not supported (overlay, bind)"
                )))
            }
        };
        let dir = PathBuf::from(dir);
        let prefix = Stores::snapshot_key(ns, "");
        for sn in self.0.all_snapshotters().map_err(status)? {
            if let Some(info) = sn.by_fs_dir(&dir) {
                let Some(key) = info.name.strip_prefix(&prefix) else {
                    break;
                };
                return Ok(Resolved {
                    dir,
                    key: key.to_string(),
                    kind: info.kind,
                    // An overlay snapshot's tree holds its own changes only.
                    layer_only: sn.driver().name() == "overlayfs",
                    sn,
                });
            }
        }
        Err(invalid(format!(
            "{what}: {} is not a snapshot of namespace {ns} in this daemon",
            dir.display()
        )))
    }

    fn only<'a>(what: &str, mounts: &'a [Mount]) -> Result<&'a Mount, Status> {
        match mounts {
            [m] => Ok(m),
            [] => Err(missing(what)),
            _ => Err(invalid(format!(
                "{what}: {} mounts; one is supported",
                mounts.len()
            ))),
        }
    }

    fn apply(&self, ctx: &Ctx, r: pd::ApplyRequest) -> Result<pd::ApplyResponse, Status> {
        let ns = ctx.namespace.as_str();
        let desc = r.diff.ok_or_else(|| missing("diff"))?;
        let digest = parse_digest("apply: layer digest", &desc.digest)?;
        let what = format!("apply {digest}");
        if oci::layer_compression(&desc.media_type).is_none() {
            return Err(Status::new(
                Code::Unimplemented,
                format!("{what}: unsupported media type {:?}", desc.media_type),
            ));
        }
        let db = self.0.db().map_err(status)?;
        let store = self.0.content().map_err(status)?;
        if db.content(ns, &digest).map_err(status)?.is_none() || !store.blob_path(&digest).is_file()
        {
            return Err(Status::new(
                Code::NotFound,
                format!("{what}: content {digest}: not found"),
            ));
        }
        let target = self.resolve(
            ns,
            &format!("{what}: mounts"),
            Self::only("mounts", &r.mounts)?,
        )?;
        if target.kind != SnapshotKind::Active || r.mounts[0].options.iter().any(|o| o == "ro") {
            return Err(Status::new(
                Code::FailedPrecondition,
                format!(
                    "{what}: snapshot {} is {}, not active",
                    target.key,
                    target.kind.name()
                ),
            ));
        }
        let (dir, mode) = target
            .sn
            .apply_target(&Stores::snapshot_key(ns, &target.key))
            .map_err(status)?;
        let layer = oci::Descriptor {
            media_type: desc.media_type.clone(),
            digest: digest.clone(),
            size: desc.size.max(0) as u64,
            platform: None,
            annotations: Vec::new(),
        };
        let (diff_id, size) =
            crate::metadata::unpack::apply_layer_into(store, &dir, mode, &layer, Algorithm::Sha256)
                // The extractor tags what it refuses (InvalidArgument); a
                // host failure (ENOSPC, EIO) keeps its own kind.
                .map_err(|e| status(e.wrap(format!("snapshot {}", target.key))))?;
        Ok(pd::ApplyResponse {
            applied: Some(Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: diff_id.to_string(),
                size: size as i64,
                annotations: Default::default(),
            }),
        })
    }

    fn diff(&self, ctx: &Ctx, r: pd::DiffRequest) -> Result<pd::DiffResponse, Status> {
        let ns = ctx.namespace.as_str();
        let media_type = if r.media_type.is_empty() {
            DEFAULT_MEDIA_TYPE.to_string()
        } else {
            r.media_type.clone()
        };
        let compression = oci::layer_compression(&media_type).ok_or_else(|| {
            Status::new(
                Code::Unimplemented,
                format!("diff: unsupported media type {media_type:?}"),
            )
        })?;
        // Writing zstd would link zstd's whole compressor (~0.6 MB, the
        // binary's size budget) for a layer format containerd's Diff does
        // not default to: gzip and plain tar are written, zstd is read only.
        if matches!(compression, Compression::Zstd) {
            return Err(Status::new(
                Code::Unimplemented,
                format!("diff: writing {media_type:?} is not supported; use gzip or plain tar"),
            ));
        }
        let r#ref = if r.r#ref.is_empty() {
            format!("diff-{}", crate::record::now_nanos())
        } else {
            r.r#ref.clone()
        };
        let what = format!("diff {ref:?}");
        let right = self.resolve(
            ns,
            &format!("{what}: right"),
            Self::only("right", &r.right)?,
        )?;
        // An overlay snapshot's own tree is the diff against its parent,
        // so the left must be that parent; a native one is compared with
        // the left's tree.
        let left = match r.left.as_slice() {
            [] => None,
            [m] => Some(self.resolve(ns, &format!("{what}: left"), m)?),
            _ => {
                return Err(invalid(format!(
                    "{what}: left: {} mounts; one is supported",
                    r.left.len()
                )))
            }
        };
        if right.layer_only {
            let parent = right
                .sn
                .stat(&Stores::snapshot_key(ns, &right.key))
                .map_err(status)?
                .parent;
            let parent = parent
                .strip_prefix(&Stores::snapshot_key(ns, ""))
                .unwrap_or("");
            let left_key = match &left {
                Some(l) if l.sn.driver().name() != right.sn.driver().name() => {
                    return Err(invalid(format!(
                        "{what}: left and right are in different snapshotters"
                    )))
                }
                Some(l) => l.key.as_str(),
                None => "",
            };
            if left_key != parent {
                return Err(invalid(format!(
                    "{what}: left {left_key:?} is not the parent ({parent:?}) of right {:?}: \
                     an overlay snapshot diffs against its parent only",
                    right.key
                )));
            }
        }
        let store = self.0.content().map_err(status)?;
        store.delegate_collection().map_err(status)?;
        hold(&self.0, ctx, "ingests", &r#ref)?;
        let mut ingest = ic::open_ref_ingest(store, ns, &r#ref, 0, None)
            .map_err(status)?
            .ok_or_else(|| {
                Status::new(
                    Code::Unavailable,
                    format!("ref {ref} locked: another writer has it open"),
                )
            })?;
        let written = (|| -> crate::Result<(Digest, u64)> {
            ingest.restart()?;
            let sink = IngestWriter(&mut ingest);
            let tar_out = Uncompressed::new(compress(sink, &compression)?);
            let tar_out = if right.layer_only {
                crate::snapshot::diff::write_upper(&right.dir, tar_out)?
            } else {
                let lower: Option<&Path> = left.as_ref().map(|l| l.dir.as_path());
                crate::snapshot::diff::write_changes(lower, &right.dir, tar_out)?
            };
            let (enc, diff_id, size) = tar_out.finish();
            enc.finish()?;
            Ok((diff_id, size))
        })();
        let (diff_id, _) = match written {
            Ok(v) => v,
            Err(e) => {
                // An ingest a client had under this ref is the client's.
                if ingest.created {
                    ingest.remove();
                }
                return Err(status(e.wrap(what)));
            }
        };
        let _pin = store.pin().map_err(status)?;
        let (digest, size, _) = ingest.commit(0, None).map_err(status)?;
        let mut labels = r.labels;
        labels.insert(LABEL_UNCOMPRESSED.into(), diff_id.to_string());
        hold(&self.0, ctx, "content", &digest.to_string())?;
        let db = self.0.db().map_err(status)?;
        db.add_content(ns, &digest, size, labels).map_err(status)?;
        Ok(pd::DiffResponse {
            diff: Some(Descriptor {
                media_type,
                digest: digest.to_string(),
                size: size as i64,
                annotations: Default::default(),
            }),
        })
    }
}

impl Handler for Diff {
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        match method {
            "Apply" => unary(payload, |r: pd::ApplyRequest| self.apply(ctx, r)),
            "Diff" => unary(payload, |r: pd::DiffRequest| self.diff(ctx, r)),
            _ => Err(unknown_method(method)),
        }
    }
}

/// Writes into a ref ingest.
struct IngestWriter<'a>(&'a mut ic::RefIngest);

impl Write for IngestWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A compressing writer that can be finished.
enum Encoder<W: Write> {
    None(W),
    Gzip(Box<flate2::write::GzEncoder<W>>),
}

fn compress<W: Write>(w: W, c: &Compression) -> crate::Result<Encoder<W>> {
    Ok(match c {
        Compression::None => Encoder::None(w),
        Compression::Gzip => Encoder::Gzip(Box::new(flate2::write::GzEncoder::new(
            w,
            flate2::Compression::default(),
        ))),
        Compression::Zstd => {
            return Err(crate::err_kind!(
                Unimplemented,
                "writing zstd layers is not supported"
            ))
        }
    })
}

impl<W: Write> Encoder<W> {
    fn finish(self) -> crate::Result<()> {
        match self {
            Encoder::None(_) => {}
            Encoder::Gzip(g) => {
                g.finish()?;
            }
        }
        Ok(())
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
        }
    }
}

/// Hashes and counts the uncompressed tar on its way to the encoder.
struct Uncompressed<W: Write> {
    inner: W,
    hash: ring::digest::Context,
    size: u64,
}

impl<W: Write> Uncompressed<W> {
    fn new(inner: W) -> Self {
        Uncompressed {
            inner,
            hash: ring::digest::Context::new(&ring::digest::SHA256),
            size: 0,
        }
    }

    fn finish(self) -> (W, Digest, u64) {
        let hex = crate::image::digest::to_hex(self.hash.finish().as_ref());
        let d = Digest::parse(&format!("sha256:{hex}")).expect("a digest we computed");
        (self.inner, d, self.size)
    }
}

impl<W: Write> Write for Uncompressed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
