//! containerd.services.content.v1.Content: blobs shared on disk, seen per
//! namespace through the metadata's records (a blob written in one
//! namespace is NotFound in another until written or pulled there; a
//! Delete removes the namespace's record, and the blob goes once no
//! namespace uses it). Write is in [`super::content_write`].

use super::api::{encode, missing, status, timestamp, Ctx, Handler, Sink};
use super::services::{parse_filters, DecodeReq};
use super::store::Stores;
use crate::image::content::{self as ic, IngestStatus};
use crate::image::digest::Digest;
use crate::metadata::{ContentRecord, Resource};
use crate::proto::services::content as pct;
use crate::proto::types::{Empty, Timestamp};
use crate::ttrpc::{unary, unknown_method, Code, Status};
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

pub struct Content(pub Arc<Stores>);

/// A digest from a request, or InvalidArgument naming it.
pub(super) fn parse_digest(what: &str, s: &str) -> Result<Digest, Status> {
    Digest::parse(s).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("{what} {s:?}: {}", e.message()),
        )
    })
}

/// Add `id` of `kind` to the call's lease, when it names one (containerd
/// adds what a call makes under a lease to it).
pub(super) fn hold(stores: &Stores, ctx: &Ctx, kind: &str, id: &str) -> Result<(), Status> {
    let Some(lease) = &ctx.lease else {
        return Ok(());
    };
    let db = stores.db().map_err(status)?;
    db.add_lease_resource(
        &ctx.namespace,
        lease,
        Resource {
            id: id.to_string(),
            kind: kind.to_string(),
        },
    )
    .map_err(status)
}

fn nanos_timestamp(nanos: u64, fallback_secs: i64) -> Option<Timestamp> {
    if nanos == 0 {
        return Some(Timestamp {
            seconds: fallback_secs,
            nanos: 0,
        });
    }
    timestamp(nanos)
}

pub(super) fn ingest_status(s: IngestStatus) -> pct::Status {
    pct::Status {
        started_at: timestamp(s.started),
        updated_at: timestamp(s.updated),
        r#ref: s.r#ref,
        offset: s.offset as i64,
        total: s.total as i64,
        expected: s.expected.map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// The fields containerd filters content on (size not yet, as there).
impl crate::filter::Fields for pct::Info {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("digest", []) => Some(self.digest.clone()),
            ("labels", key) => crate::filter::label(&self.labels, key),
            _ => None,
        }
    }
}

/// An ingest as containerd filters it: by its ref alone.
struct StatusFields<'a>(&'a IngestStatus);

impl crate::filter::Fields for StatusFields<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match path {
            [f] if f == "ref" => Some(self.0.r#ref.clone()),
            _ => None,
        }
    }
}

impl Content {
    /// The namespace's blob `digest`: its record and its size and mtime on
    /// disk; NotFound unless both are there.
    fn blob(&self, ns: &str, digest: &str) -> Result<(ContentRecord, u64, i64), Status> {
        let d = parse_digest("digest", digest)?;
        let not_found = || Status::new(Code::NotFound, format!("content {d}: not found"));
        let db = self.0.db().map_err(status)?;
        let rec = db.content(ns, &d).map_err(status)?.ok_or_else(not_found)?;
        let path = self.0.content().map_err(status)?.blob_path(&d);
        let md = std::fs::metadata(&path).map_err(|_| not_found())?;
        use std::os::unix::fs::MetadataExt;
        Ok((rec, md.len(), md.mtime()))
    }

    fn info(rec: ContentRecord, size: u64, mtime: i64) -> pct::Info {
        pct::Info {
            digest: rec.digest.to_string(),
            size: size as i64,
            created_at: nanos_timestamp(rec.created, mtime),
            updated_at: nanos_timestamp(rec.updated, mtime),
            labels: rec.labels,
        }
    }

    fn delete(&self, ns: &str, digest: &str) -> Result<(), Status> {
        let d = parse_digest("digest", digest)?;
        let db = self.0.db().map_err(status)?;
        db.delete_content(ns, &d).map_err(status)?;
        // The blob goes when nothing in any namespace uses it any more.
        if !db.content_in_any_namespace(&d).map_err(status)? {
            self.0.collect_garbage().map_err(status)?;
        }
        Ok(())
    }
}

impl Handler for Content {
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let ns = ctx.namespace.as_str();
        match method {
            "Info" => unary(payload, |r: pct::InfoRequest| {
                let (rec, size, mtime) = self.blob(ns, &r.digest)?;
                Ok(pct::InfoResponse {
                    info: Some(Self::info(rec, size, mtime)),
                })
            }),
            "Update" => unary(payload, |r: pct::UpdateRequest| {
                let info = r.info.ok_or_else(|| missing("info"))?;
                let (_, size, mtime) = self.blob(ns, &info.digest)?;
                let d = parse_digest("digest", &info.digest)?;
                let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
                let db = self.0.db().map_err(status)?;
                let rec = db
                    .update_content_labels(ns, &d, info.labels, &paths)
                    .map_err(status)?;
                Ok(pct::UpdateResponse {
                    info: Some(Self::info(rec, size, mtime)),
                })
            }),
            "Delete" => unary(payload, |r: pct::DeleteContentRequest| {
                self.delete(ns, &r.digest)?;
                Ok(Empty {})
            }),
            "Status" => unary(payload, |r: pct::StatusRequest| {
                let store = self.0.content().map_err(status)?;
                let st = ic::ref_ingest_status(store, ns, &r.r#ref).ok_or_else(|| {
                    Status::new(Code::NotFound, format!("ingest {:?}: not found", r.r#ref))
                })?;
                Ok(pct::StatusResponse {
                    status: Some(ingest_status(st)),
                })
            }),
            "ListStatuses" => unary(payload, |r: pct::ListStatusesRequest| {
                let filters = parse_filters(&r.filters, 1)?;
                let store = self.0.content().map_err(status)?;
                Ok(pct::ListStatusesResponse {
                    statuses: ic::list_ref_ingests(store, ns)
                        .into_iter()
                        .filter(|s| filters.matches(&StatusFields(s)))
                        .map(ingest_status)
                        .collect(),
                })
            }),
            "Abort" => unary(payload, |r: pct::AbortRequest| {
                let store = self.0.content().map_err(status)?;
                if !ic::abort_ref_ingest(store, ns, &r.r#ref).map_err(status)? {
                    return Err(Status::new(
                        Code::Unavailable,
                        format!("ref {} locked: a writer has it open", r.r#ref),
                    ));
                }
                Ok(Empty {})
            }),
            _ => Err(unknown_method(method)),
        }
    }

    fn stream(
        &self,
        ctx: &Ctx,
        method: &str,
        payload: &[u8],
        out: &dyn Sink,
    ) -> Result<(), Status> {
        let ns = ctx.namespace.as_str();
        match method {
            "List" => {
                let r = pct::ListContentRequest::decode_req(payload)?;
                let filters = parse_filters(&r.filters, 1)?;
                let db = self.0.db().map_err(status)?;
                let store = self.0.content().map_err(status)?;
                let mut infos = Vec::new();
                for rec in db.contents(ns).map_err(status)? {
                    let Ok(md) = std::fs::metadata(store.blob_path(&rec.digest)) else {
                        continue; // recorded, not (or no longer) stored
                    };
                    use std::os::unix::fs::MetadataExt;
                    let info = Self::info(rec, md.len(), md.mtime());
                    if filters.matches(&info) {
                        infos.push(info);
                    }
                }
                infos.sort_by(|a, b| a.digest.cmp(&b.digest));
                for chunk in infos.chunks(100) {
                    out.send(&encode(&pct::ListContentResponse {
                        info: chunk.to_vec(),
                    }))?;
                }
                Ok(())
            }
            "Read" => {
                let r = pct::ReadContentRequest::decode_req(payload)?;
                let (rec, size, _) = self.blob(ns, &r.digest)?;
                let path = self.0.content().map_err(status)?.blob_path(&rec.digest);
                let mut f = std::fs::File::open(&path).map_err(|e| status(e.into()))?;
                if r.offset < 0 || r.offset as u64 > size {
                    return Err(Status::new(
                        Code::OutOfRange,
                        format!(
                            "read {}: offset {} past its {size} bytes",
                            rec.digest, r.offset
                        ),
                    ));
                }
                let start = r.offset as u64;
                let end = if r.size > 0 {
                    (start + r.size as u64).min(size)
                } else {
                    size
                };
                f.seek(SeekFrom::Start(start))
                    .map_err(|e| status(e.into()))?;
                let mut at = start;
                let mut buf = vec![0u8; 1 << 20];
                while at < end {
                    let want = ((end - at) as usize).min(buf.len());
                    let n = f.read(&mut buf[..want]).map_err(|e| status(e.into()))?;
                    if n == 0 {
                        break;
                    }
                    out.send(&encode(&pct::ReadContentResponse {
                        offset: at as i64,
                        data: buf[..n].to_vec(),
                    }))?;
                    at += n as u64;
                }
                Ok(())
            }
            "Write" => super::content_write::write(&self.0, ctx, payload, out),
            _ => Err(unknown_method(method)),
        }
    }
}
