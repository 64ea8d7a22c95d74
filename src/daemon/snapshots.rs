//! containerd.services.snapshots.v1.Snapshots over skiff's snapshotters.
//!
//! Snapshotters are shared by all namespaces; a namespace's key `k` is
//! `<ns>/k` in them ([`Stores::snapshot_key`]), so keys and parents are
//! resolved in the caller's namespace only. containerd's rules: Prepare
//! and View need a committed parent (NotFound when there is none,
//! InvalidArgument when it is not committed) and a new key
//! (AlreadyExists); Commit turns an active snapshot into a committed one
//! under a new name; Remove refuses a snapshot with children. What a call
//! makes under a lease (the `containerd-lease` metadata) is added to it;
//! an active snapshot nothing references goes at the next garbage
//! collection, as in containerd.

use super::api::{encode, missing, status, timestamp, Ctx, Handler, Sink};
use super::content::hold;
use super::services::{apply_labels, mount_to_proto, parse_filters, DecodeReq};
use super::store::{SnapshotKind, Stores};
use crate::proto::services::snapshots as ps;
use crate::proto::types::Empty;
use crate::record::Labels;
use crate::snapshot::{Info, Snapshotter};
use crate::ttrpc::{unary, unknown_method, Code, Status};
use std::sync::Arc;

pub struct Snapshots(pub Arc<Stores>);

/// A snapshot as namespace `ns` sees it (`ns` None: named so already).
fn snapshot_info(ns: Option<&str>, mut i: Info) -> ps::Info {
    if let Some(ns) = ns {
        let prefix = Stores::snapshot_key(ns, "");
        if let Some(n) = i.name.strip_prefix(&prefix) {
            i.name = n.to_string();
        }
        if let Some(p) = i.parent.strip_prefix(&prefix) {
            i.parent = p.to_string();
        }
    }
    ps::Info {
        name: i.name,
        parent: i.parent,
        kind: match i.kind {
            SnapshotKind::View => ps::kind::VIEW,
            SnapshotKind::Active => ps::kind::ACTIVE,
            SnapshotKind::Committed => ps::kind::COMMITTED,
        },
        created_at: timestamp(i.created),
        updated_at: timestamp(i.updated),
        labels: i.labels,
    }
}

/// The fields containerd filters snapshots on (names as the namespace
/// sees them).
impl crate::filter::Fields for Info {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("kind", []) => Some(self.kind.name().to_ascii_lowercase()),
            ("name", []) => Some(self.name.clone()),
            ("parent", []) => Some(self.parent.clone()),
            ("labels", key) => crate::filter::label(&self.labels, key),
            _ => None,
        }
    }
}

/// A snapshotter's error as namespace `ns` sees it: its keys without the
/// `ns/` prefix (the snapshotter's own checks, under its lock, decide).
fn sn_status(ns: &str, e: crate::Error) -> Status {
    let mut st = status(e);
    st.message = st.message.replace(&Stores::snapshot_key(ns, ""), "");
    st
}

fn not_found(key: &str) -> Status {
    Status::new(Code::NotFound, format!("snapshot {key}: not found"))
}

fn need_key(what: &str, key: &str) -> Result<(), Status> {
    if key.is_empty() {
        return Err(missing(what));
    }
    Ok(())
}

impl Snapshots {
    fn snapshotter(&self, name: &str) -> Result<Arc<Snapshotter>, Status> {
        let name = if name.is_empty() {
            self.0.default_snapshotter()
        } else {
            name
        };
        self.0.snapshotter(name).map_err(status)
    }

    fn stat(&self, sn: &Snapshotter, ns: &str, key: &str) -> Result<Info, Status> {
        sn.stat(&Stores::snapshot_key(ns, key))
            .map_err(|_| not_found(key))
    }

    /// Prepare (`view` false) or View a snapshot `key` on `parent`.
    fn create(
        &self,
        ctx: &Ctx,
        snapshotter: &str,
        key: &str,
        parent: &str,
        labels: Labels,
        view: bool,
    ) -> Result<Vec<crate::proto::types::Mount>, Status> {
        let ns = ctx.namespace.as_str();
        need_key("key", key)?;
        let sn = self.snapshotter(snapshotter)?;
        let parent_key = if parent.is_empty() {
            String::new()
        } else {
            let p = sn.stat(&Stores::snapshot_key(ns, parent)).map_err(|_| {
                Status::new(
                    Code::NotFound,
                    format!("parent snapshot {parent}: does not exist"),
                )
            })?;
            if p.kind != SnapshotKind::Committed {
                return Err(Status::new(
                    Code::InvalidArgument,
                    format!(
                        "parent snapshot {parent}: is {}, not committed",
                        p.kind.name()
                    ),
                ));
            }
            Stores::snapshot_key(ns, parent)
        };
        // Held before it exists: no collection takes it half made.
        hold(
            &self.0,
            ctx,
            &format!("snapshots/{}", sn.driver().name()),
            key,
        )?;
        let full = Stores::snapshot_key(ns, key);
        let mounts = if view {
            sn.view(&full, &parent_key, labels)
        } else {
            sn.prepare(&full, &parent_key, labels)
        }
        .map_err(|e| sn_status(ns, e))?;
        Ok(mounts.into_iter().map(mount_to_proto).collect())
    }

    fn commit(&self, ctx: &Ctx, r: ps::CommitSnapshotRequest) -> Result<(), Status> {
        let ns = ctx.namespace.as_str();
        need_key("key", &r.key)?;
        need_key("name", &r.name)?;
        let sn = self.snapshotter(&r.snapshotter)?;
        let info = self.stat(&sn, ns, &r.key)?;
        if info.kind != SnapshotKind::Active {
            return Err(Status::new(
                Code::FailedPrecondition,
                format!("snapshot {}: is {}, not active", r.key, info.kind.name()),
            ));
        }
        hold(
            &self.0,
            ctx,
            &format!("snapshots/{}", sn.driver().name()),
            &r.name,
        )?;
        sn.commit(
            &Stores::snapshot_key(ns, &r.name),
            &Stores::snapshot_key(ns, &r.key),
            r.labels,
        )
        .map_err(|e| sn_status(ns, e))
    }

    fn remove(&self, ns: &str, r: ps::RemoveSnapshotRequest) -> Result<(), Status> {
        need_key("key", &r.key)?;
        let sn = self.snapshotter(&r.snapshotter)?;
        let full = Stores::snapshot_key(ns, &r.key);
        sn.remove(&full).map_err(|e| sn_status(ns, e))
    }

    /// containerd's Update: only labels (`labels`, `labels.KEY`; no paths
    /// replaces them all).
    fn update(&self, ns: &str, r: ps::UpdateSnapshotRequest) -> Result<ps::Info, Status> {
        let info = r.info.ok_or_else(|| missing("info"))?;
        need_key("info.name", &info.name)?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        if let Some(p) = paths
            .iter()
            .find(|p| *p != "labels" && !p.starts_with("labels."))
        {
            return Err(Status::new(
                Code::InvalidArgument,
                format!("snapshot {}: cannot update field {p:?}", info.name),
            ));
        }
        let sn = self.snapshotter(&r.snapshotter)?;
        let mut labels = self.stat(&sn, ns, &info.name)?.labels;
        apply_labels(&mut labels, info.labels, &paths);
        let updated = sn
            .set_labels(&Stores::snapshot_key(ns, &info.name), labels)
            .map_err(|e| sn_status(ns, e))?;
        Ok(snapshot_info(Some(ns), updated))
    }
}

impl Handler for Snapshots {
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let ns = ctx.namespace.as_str();
        match method {
            "Prepare" => unary(payload, |r: ps::PrepareSnapshotRequest| {
                Ok(ps::PrepareSnapshotResponse {
                    mounts: self.create(ctx, &r.snapshotter, &r.key, &r.parent, r.labels, false)?,
                })
            }),
            "View" => unary(payload, |r: ps::ViewSnapshotRequest| {
                Ok(ps::ViewSnapshotResponse {
                    mounts: self.create(ctx, &r.snapshotter, &r.key, &r.parent, r.labels, true)?,
                })
            }),
            "Commit" => unary(payload, |r: ps::CommitSnapshotRequest| {
                self.commit(ctx, r)?;
                Ok(Empty {})
            }),
            "Stat" => unary(payload, |r: ps::StatSnapshotRequest| {
                let sn = self.snapshotter(&r.snapshotter)?;
                Ok(ps::StatSnapshotResponse {
                    info: Some(snapshot_info(Some(ns), self.stat(&sn, ns, &r.key)?)),
                })
            }),
            "Update" => unary(payload, |r: ps::UpdateSnapshotRequest| {
                Ok(ps::UpdateSnapshotResponse {
                    info: Some(self.update(ns, r)?),
                })
            }),
            "Mounts" => unary(payload, |r: ps::MountsRequest| {
                let sn = self.snapshotter(&r.snapshotter)?;
                self.stat(&sn, ns, &r.key)?;
                let mounts = sn
                    .mounts(&Stores::snapshot_key(ns, &r.key))
                    .map_err(|e| sn_status(ns, e))?;
                Ok(ps::MountsResponse {
                    mounts: mounts.into_iter().map(mount_to_proto).collect(),
                })
            }),
            "Remove" => unary(payload, |r: ps::RemoveSnapshotRequest| {
                self.remove(ns, r)?;
                Ok(Empty {})
            }),
            "Usage" => unary(payload, |r: ps::UsageRequest| {
                let sn = self.snapshotter(&r.snapshotter)?;
                self.stat(&sn, ns, &r.key)?;
                let u = sn
                    .usage(&Stores::snapshot_key(ns, &r.key))
                    .map_err(|e| sn_status(ns, e))?;
                Ok(ps::UsageResponse {
                    size: u.size as i64,
                    inodes: u.inodes as i64,
                })
            }),
            "Cleanup" => unary(payload, |r: ps::CleanupRequest| {
                let sn = self.snapshotter(&r.snapshotter)?;
                let sweep = sn.remove_orphans().map_err(status)?;
                if let Some(f) = sweep.failed.first() {
                    return Err(Status::new(Code::Internal, f.clone()));
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
        match method {
            "List" => {
                let r = ps::ListSnapshotsRequest::decode_req(payload)?;
                let filters = parse_filters(&r.filters, 1)?;
                let sn = self.snapshotter(&r.snapshotter)?;
                let infos: Vec<ps::Info> = self
                    .0
                    .namespace_snapshots(&sn, &ctx.namespace)
                    .into_iter()
                    .filter(|i| filters.matches(i))
                    .map(|i| snapshot_info(None, i))
                    .collect();
                for chunk in infos.chunks(100) {
                    out.send(&encode(&ps::ListSnapshotsResponse {
                        info: chunk.to_vec(),
                    }))?;
                }
                Ok(())
            }
            _ => Err(unknown_method(method)),
        }
    }
}
