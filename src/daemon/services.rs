//! The services backed by the stores alone: version, namespaces, images,
//! containers, leases, content, snapshots, introspection.

use super::api::{encode, missing, status, timestamp, Ctx, Handler};
use super::store::{self, Stores};
use crate::filter::{AnyOf, Fields};
use crate::image::digest::Digest;
use crate::image::oci;
use crate::proto::services::{
    containers as pc, images as pi, introspection as pin, leases as pl, namespaces as pn,
    version as pv,
};
use crate::proto::types::{Any, Descriptor, Empty, Platform};
use crate::ttrpc::{unary, unknown_method, Code, Status};
use std::sync::Arc;

pub struct Version;

impl Handler for Version {
    fn call(&self, _: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        match method {
            "Version" => unary(payload, |_: Empty| {
                Ok(pv::VersionResponse {
                    version: format!("v{}", env!("CARGO_PKG_VERSION")),
                    revision: "skiff".into(),
                })
            }),
            _ => Err(unknown_method(method)),
        }
    }
}

pub struct Namespaces(pub Arc<Stores>);

impl Handler for Namespaces {
    fn call(&self, _: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let db = self.0.db().map_err(status)?;
        let conv = |n: crate::metadata::Namespace| pn::Namespace {
            name: n.name,
            labels: n.labels,
        };
        match method {
            "Get" => unary(payload, |r: pn::GetNamespaceRequest| {
                Ok(pn::GetNamespaceResponse {
                    namespace: Some(conv(db.namespace(&r.name).map_err(status)?)),
                })
            }),
            "List" => unary(payload, |_: pn::ListNamespacesRequest| {
                Ok(pn::ListNamespacesResponse {
                    namespaces: db
                        .namespaces()
                        .map_err(status)?
                        .into_iter()
                        .map(conv)
                        .collect(),
                })
            }),
            "Create" => unary(payload, |r: pn::CreateNamespaceRequest| {
                let n = r.namespace.ok_or_else(|| missing("namespace"))?;
                Ok(pn::CreateNamespaceResponse {
                    namespace: Some(conv(
                        db.create_namespace(&n.name, n.labels).map_err(status)?,
                    )),
                })
            }),
            "Update" => unary(payload, |r: pn::UpdateNamespaceRequest| {
                let n = r.namespace.ok_or_else(|| missing("namespace"))?;
                Ok(pn::UpdateNamespaceResponse {
                    namespace: Some(conv(
                        db.set_namespace_labels(&n.name, n.labels).map_err(status)?,
                    )),
                })
            }),
            "Delete" => unary(payload, |r: pn::DeleteNamespaceRequest| {
                let sns = self.0.all_snapshotters().map_err(status)?;
                let refs: Vec<&crate::snapshot::Snapshotter> =
                    sns.iter().map(|s| s.as_ref()).collect();
                db.delete_namespace(&r.name, |ns| crate::metadata::snapshots_in(&refs, ns))
                    .map_err(status)?;
                Ok(Empty {})
            }),
            _ => Err(unknown_method(method)),
        }
    }
}

pub fn descriptor_to_proto(d: &oci::Descriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: d.size as i64,
        annotations: d.annotations.iter().cloned().collect(),
    }
}

pub fn descriptor_from_proto(d: &Descriptor) -> Result<oci::Descriptor, Status> {
    let digest = Digest::parse(&d.digest).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("descriptor digest {:?}: {}", d.digest, e.message()),
        )
    })?;
    Ok(oci::Descriptor {
        media_type: d.media_type.clone(),
        digest,
        size: u64::try_from(d.size).map_err(|_| {
            Status::new(
                Code::InvalidArgument,
                format!("descriptor {}: negative size", d.digest),
            )
        })?,
        platform: None,
        annotations: d
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

pub fn image_to_proto(i: store::Image) -> pi::Image {
    pi::Image {
        target: Some(descriptor_to_proto(&i.target)),
        name: i.name,
        labels: i.labels,
        created_at: timestamp(i.created),
        updated_at: timestamp(i.updated),
    }
}

fn image_from_proto(i: pi::Image) -> Result<store::Image, Status> {
    let target = i.target.as_ref().ok_or_else(|| missing("image target"))?;
    Ok(store::Image {
        target: descriptor_from_proto(target)?,
        name: i.name,
        labels: i.labels,
        created: 0,
        updated: 0,
    })
}

pub struct Images(pub Arc<Stores>);

impl Handler for Images {
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let db = self.0.db().map_err(status)?;
        let ns = ctx.namespace.as_str();
        match method {
            "Get" => unary(payload, |r: pi::GetImageRequest| {
                Ok(pi::GetImageResponse {
                    image: Some(image_to_proto(db.image(ns, &r.name).map_err(status)?)),
                })
            }),
            "List" => unary(payload, |r: pi::ListImagesRequest| {
                let filters = parse_filters(&r.filters, 2)?;
                let images = db.images(ns).map_err(status)?;
                Ok(pi::ListImagesResponse {
                    images: images
                        .into_iter()
                        .filter(|i| filters.matches(i))
                        .map(image_to_proto)
                        .collect(),
                })
            }),
            "Create" => unary(payload, |r: pi::CreateImageRequest| {
                let i = image_from_proto(r.image.ok_or_else(|| missing("image"))?)?;
                Ok(pi::CreateImageResponse {
                    image: Some(image_to_proto(db.create_image(ns, i).map_err(status)?)),
                })
            }),
            "Update" => unary(payload, |r: pi::UpdateImageRequest| {
                let new = r.image.ok_or_else(|| missing("image"))?;
                let mut old = db.image(ns, &new.name).map_err(status)?;
                let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
                let all = paths.is_empty();
                if all || paths.iter().any(|p| p == "target") {
                    if let Some(t) = &new.target {
                        old.target = descriptor_from_proto(t)?;
                    }
                }
                apply_labels(&mut old.labels, new.labels, &paths);
                Ok(pi::UpdateImageResponse {
                    image: Some(image_to_proto(db.update_image(ns, old).map_err(status)?)),
                })
            }),
            "Delete" => unary(payload, |r: pi::DeleteImageRequest| {
                db.delete_image(ns, &r.name).map_err(status)?;
                if r.sync {
                    self.0.collect_garbage().map_err(status)?;
                } else {
                    self.0.collect_garbage_soon();
                }
                Ok(Empty {})
            }),
            _ => Err(unknown_method(method)),
        }
    }
}

/// Apply an update mask's `labels` / `labels.KEY` paths (no paths: replace all).
pub(super) fn apply_labels(
    old: &mut store::Labels,
    new: std::collections::BTreeMap<String, String>,
    paths: &[String],
) {
    if paths.is_empty() || paths.iter().any(|p| p == "labels") {
        *old = new;
        return;
    }
    for p in paths {
        if let Some(k) = p.strip_prefix("labels.") {
            match new.get(k) {
                Some(v) => {
                    old.insert(k.to_string(), v.clone());
                }
                None => {
                    old.remove(k);
                }
            }
        }
    }
}

/// A list call's filters, parsed once for the call: a bad one fails it
/// with InvalidArgument and the parse error, then ": invalid argument"
/// once per layer that tags it (`tags`). That is containerd's answer for
/// most lists; containerd 1.6's snapshots List and tasks Metrics return
/// the raw parse error instead (gRPC Unknown): skiff refuses those as
/// InvalidArgument too, on purpose.
pub(super) fn parse_filters(filters: &[String], tags: usize) -> Result<AnyOf, Status> {
    crate::filter::parse_all(filters).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("{}{}", e.message(), ": invalid argument".repeat(tags)),
        )
    })
}

/// A value that is there only when not empty (containerd's adaptors).
fn non_empty(s: &str) -> Option<String> {
    Some(s.to_string()).filter(|s| !s.is_empty())
}

/// The fields containerd filters images on.
impl Fields for store::Image {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("name", []) => non_empty(&self.name),
            ("target", [f]) if f == "digest" => Some(self.target.digest.to_string()),
            ("target", [f]) if f == "mediatype" => non_empty(&self.target.media_type),
            ("labels", key) => crate::filter::label(&self.labels, key),
            ("annotations", key) => {
                crate::filter::label(self.target.annotations.iter().map(|(k, v)| (k, v)), key)
            }
            _ => None,
        }
    }
}

/// The fields containerd filters containers on.
impl Fields for store::Container {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("id", []) => non_empty(&self.id),
            ("runtime", [f]) if f == "name" => non_empty(&self.runtime.name),
            ("image", []) => non_empty(&self.image),
            ("labels", key) => crate::filter::label(&self.labels, key),
            _ => None,
        }
    }
}

/// The fields containerd filters leases on.
impl Fields for store::Lease {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("id", []) => non_empty(&self.id),
            ("labels", key) => crate::filter::label(&self.labels, key),
            _ => None,
        }
    }
}

fn any_to_meta(a: Any) -> store::MetaAny {
    store::MetaAny {
        type_url: a.type_url,
        value: a.value,
    }
}

fn any_from_meta(a: store::MetaAny) -> Any {
    Any {
        type_url: a.type_url,
        value: a.value,
    }
}

pub fn container_to_proto(c: store::Container) -> pc::Container {
    pc::Container {
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime: Some(pc::Runtime {
            name: c.runtime.name,
            options: c.runtime.options.map(any_from_meta),
        }),
        spec: c.spec.map(any_from_meta),
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        created_at: timestamp(c.created),
        updated_at: timestamp(c.updated),
        extensions: c
            .extensions
            .into_iter()
            .map(|(k, v)| (k, any_from_meta(v)))
            .collect(),
        sandbox: String::new(),
    }
}

fn container_from_proto(c: pc::Container) -> store::Container {
    let runtime = c.runtime.unwrap_or_default();
    store::Container {
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime: store::Runtime {
            name: runtime.name,
            options: runtime.options.map(any_to_meta),
        },
        spec: c.spec.map(any_to_meta),
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        created: 0,
        updated: 0,
        extensions: c
            .extensions
            .into_iter()
            .map(|(k, v)| (k, any_to_meta(v)))
            .collect(),
    }
}

/// The runtime a container gets when it names none.
pub const DEFAULT_RUNTIME: &str = "io.containerd.skiff.v2";

/// The containers service; the second field is the daemon's state
/// directory, where a container's task keeps its bundle while it exists.
pub struct Containers(pub Arc<Stores>, pub std::path::PathBuf);

/// Where the task service keeps bundles under the state directory
/// (containerd's layout; the task service owns it).
const TASK_BUNDLES: &str = "io.containerd.runtime.v2.task";

/// A lease held while a request makes something nothing references yet;
/// deleted when dropped (and expiring, should the daemon die first).
struct TempLease<'a> {
    db: &'a crate::metadata::Db,
    ns: &'a str,
    id: String,
}

impl<'a> TempLease<'a> {
    fn new(db: &'a crate::metadata::Db, ns: &'a str, what: &str) -> Result<Self, Status> {
        let id = format!("{what}-{}", crate::record::now_nanos());
        let mut labels = store::Labels::new();
        let (now, _) = crate::time::now();
        labels.insert(
            crate::metadata::LABEL_GC_EXPIRE.into(),
            crate::time::rfc3339_nano(now + 3600, 0),
        );
        // A daemon that dies meanwhile leaves it for the next to clear.
        labels.insert(
            crate::metadata::gc::LABEL_DAEMON_REQUEST.into(),
            what.to_string(),
        );
        db.create_lease(ns, &id, labels).map_err(status)?;
        Ok(TempLease { db, ns, id })
    }
}

impl Drop for TempLease<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.db.delete_lease(self.ns, &self.id) {
            crate::log::warn!("delete lease {}: {e}", self.id);
        }
    }
}

impl Containers {
    /// containerd's ctr prepares the container's snapshot itself through
    /// Snapshots.Prepare before Create; skiff's ctr may leave that to the
    /// daemon: a container naming an image and a snapshot key that does
    /// not exist yet gets it prepared here, on the image's unpacked layers.
    /// Returns whether this call prepared it (then the caller owns it).
    /// The caller holds off garbage collection ([`Stores::hold_off_gc`]).
    fn ensure_snapshot(&self, ns: &str, c: &store::Container) -> Result<bool, Status> {
        let sn = self.0.snapshotter(&c.snapshotter).map_err(status)?;
        if sn.stat(&Stores::snapshot_key(ns, &c.snapshot_key)).is_ok() || c.image.is_empty() {
            return Ok(false);
        }
        let db = self.0.db().map_err(status)?;
        let image = db.image(ns, &c.image).map_err(status)?;
        let content = self.0.content().map_err(status)?;
        let chain =
            match store::unpacked_chain(content, &sn, db, ns, &image.target).map_err(status)? {
                Some(c) => c,
                // The unpack records its layers in a lease until the
                // image's label holds them (the rare path: an image pulled
                // without unpacking).
                None => {
                    let lease = TempLease::new(db, ns, "create")?;
                    store::unpack_image(content, &sn, db, ns, &image.target, &lease.id)
                        .map_err(status)?
                        .chain_id
                }
            };
        store::prepare_container(&sn, ns, &c.snapshot_key, &chain, Default::default())
            .map_err(status)?;
        Ok(true)
    }

    /// Validate, prepare the snapshot with garbage collection held off (so
    /// no collection can take it before the record references it),
    /// record; a snapshot this call prepared goes again when the record
    /// cannot be made.
    fn create(&self, ns: &str, mut c: store::Container) -> Result<store::Container, Status> {
        let db = self.0.db().map_err(status)?;
        if c.runtime.name.is_empty() {
            c.runtime.name = self.0.default_runtime().into();
        }
        crate::record::check_identifier("container id", &c.id).map_err(status)?;
        crate::record::check_labels(&format!("container {:?}", c.id), &c.labels).map_err(status)?;
        if db.container(ns, &c.id).is_ok() {
            return Err(Status::new(
                Code::AlreadyExists,
                format!("container {:?}: already exists", c.id),
            ));
        }
        if c.snapshot_key.is_empty() {
            return db.create_container(ns, c).map_err(status);
        }
        if c.snapshotter.is_empty() {
            c.snapshotter = self.0.default_snapshotter().to_string();
        }
        let _no_gc = self.0.hold_off_gc();
        let prepared = self.ensure_snapshot(ns, &c)?;
        super::faults::point("container-snapshot-prepared");
        let (sn_name, key) = (c.snapshotter.clone(), c.snapshot_key.clone());
        let created = db.create_container(ns, c).map_err(status);
        if created.is_err() && prepared {
            let removed = self
                .0
                .snapshotter(&sn_name)
                .and_then(|sn| sn.remove(&Stores::snapshot_key(ns, &key)));
            if let Err(e) = removed {
                crate::log::warn!("container create failed; remove snapshot {key}: {e}");
            }
        }
        created
    }

    /// A container keeps its record while its task exists (containerd's
    /// client refuses the same): the task's bundle names it.
    fn check_no_task(&self, ns: &str, id: &str) -> Result<(), Status> {
        crate::record::check_identifier("container id", id).map_err(status)?;
        crate::record::check_identifier("namespace", ns).map_err(status)?;
        if self.1.join(TASK_BUNDLES).join(ns).join(id).exists() {
            return Err(Status::new(
                Code::FailedPrecondition,
                format!("container {id:?}: has a task; delete the task first"),
            ));
        }
        Ok(())
    }
}

/// Apply an Update's field mask to `old`; the snapshotter, snapshot key
/// and runtime are immutable (as in containerd), unknown paths rejected.
fn update_container(
    old: &mut store::Container,
    new: store::Container,
    paths: &[String],
) -> Result<(), Status> {
    let invalid = |m: String| Err(Status::new(Code::InvalidArgument, m));
    let id = old.id.clone();
    for p in paths {
        let known = matches!(
            p.as_str(),
            "labels" | "image" | "spec" | "extensions" | "snapshot_key" | "snapshotkey"
        ) || p.starts_with("labels.")
            || p.starts_with("extensions.");
        if !known {
            return invalid(format!("container {id:?}: cannot update field {p:?}"));
        }
    }
    let all = paths.is_empty();
    let named = |f: &str| paths.iter().any(|p| p == f);
    let key_named = named("snapshot_key") || named("snapshotkey");
    if (all || key_named)
        && new.snapshot_key != old.snapshot_key
        && (key_named || !new.snapshot_key.is_empty())
    {
        return invalid(format!("container {id:?}: snapshot_key is immutable"));
    }
    if all {
        if !new.snapshotter.is_empty() && new.snapshotter != old.snapshotter {
            return invalid(format!("container {id:?}: snapshotter is immutable"));
        }
        if !new.runtime.name.is_empty() && new.runtime.name != old.runtime.name {
            return invalid(format!("container {id:?}: runtime is immutable"));
        }
    }
    if all || named("image") {
        old.image = new.image;
    }
    if all || named("spec") {
        old.spec = new.spec;
    }
    if all || named("extensions") {
        old.extensions = new.extensions;
    } else {
        for p in paths {
            if let Some(k) = p.strip_prefix("extensions.") {
                match new.extensions.get(k) {
                    Some(v) => {
                        old.extensions.insert(k.to_string(), v.clone());
                    }
                    None => {
                        old.extensions.remove(k);
                    }
                }
            }
        }
    }
    apply_labels(&mut old.labels, new.labels, paths);
    Ok(())
}

impl Handler for Containers {
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let db = self.0.db().map_err(status)?;
        let ns = ctx.namespace.as_str();
        match method {
            "Get" => unary(payload, |r: pc::GetContainerRequest| {
                Ok(pc::GetContainerResponse {
                    container: Some(container_to_proto(db.container(ns, &r.id).map_err(status)?)),
                })
            }),
            "List" => unary(payload, |r: pc::ListContainersRequest| {
                let filters = parse_filters(&r.filters, 2)?;
                Ok(pc::ListContainersResponse {
                    containers: db
                        .containers(ns)
                        .map_err(status)?
                        .into_iter()
                        .filter(|c| filters.matches(c))
                        .map(container_to_proto)
                        .collect(),
                })
            }),
            "Create" => unary(payload, |r: pc::CreateContainerRequest| {
                let c = container_from_proto(r.container.ok_or_else(|| missing("container"))?);
                Ok(pc::CreateContainerResponse {
                    container: Some(container_to_proto(self.create(ns, c)?)),
                })
            }),
            "Update" => unary(payload, |r: pc::UpdateContainerRequest| {
                let new = r.container.ok_or_else(|| missing("container"))?;
                let mut old = db.container(ns, &new.id).map_err(status)?;
                let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
                update_container(&mut old, container_from_proto(new), &paths)?;
                Ok(pc::UpdateContainerResponse {
                    container: Some(container_to_proto(
                        db.update_container(ns, old).map_err(status)?,
                    )),
                })
            }),
            "Delete" => unary(payload, |r: pc::DeleteContainerRequest| {
                self.check_no_task(ns, &r.id)?;
                db.delete_container(ns, &r.id).map_err(status)?;
                self.0.collect_garbage_soon();
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
        out: &dyn super::api::Sink,
    ) -> Result<(), Status> {
        match method {
            // List, one container a message (no message size limit to hit).
            "ListStream" => {
                let r = pc::ListContainersRequest::decode_req(payload)?;
                let filters = parse_filters(&r.filters, 2)?;
                let db = self.0.db().map_err(status)?;
                for c in db.containers(&ctx.namespace).map_err(status)? {
                    if filters.matches(&c) {
                        out.send(&encode(&pc::ListContainerMessage {
                            container: Some(container_to_proto(c)),
                        }))?;
                    }
                }
                Ok(())
            }
            _ => Err(unknown_method(method)),
        }
    }
}

pub struct Leases(pub Arc<Stores>);

impl Handler for Leases {
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        let db = self.0.db().map_err(status)?;
        let ns = ctx.namespace.as_str();
        let conv = |l: store::Lease| pl::Lease {
            id: l.id,
            created_at: timestamp(l.created),
            labels: l.labels,
        };
        match method {
            "Create" => unary(payload, |r: pl::CreateRequest| {
                let id = if r.id.is_empty() {
                    format!("lease-{}", crate::record::now_nanos())
                } else {
                    r.id
                };
                Ok(pl::CreateResponse {
                    lease: Some(conv(db.create_lease(ns, &id, r.labels).map_err(status)?)),
                })
            }),
            "Delete" => unary(payload, |r: pl::DeleteRequest| {
                db.delete_lease(ns, &r.id).map_err(status)?;
                if r.sync {
                    self.0.collect_garbage().map_err(status)?;
                } else {
                    self.0.collect_garbage_soon();
                }
                Ok(Empty {})
            }),
            "AddResource" | "DeleteResource" => {
                let (id, res) = if method == "AddResource" {
                    let r: pl::AddResourceRequest = DecodeReq::decode_req(payload)?;
                    (r.id, r.resource)
                } else {
                    let r: pl::DeleteResourceRequest = DecodeReq::decode_req(payload)?;
                    (r.id, r.resource)
                };
                let res = res.ok_or_else(|| missing("resource"))?;
                let res = crate::metadata::Resource {
                    id: res.id,
                    kind: res.r#type,
                };
                if method == "AddResource" {
                    db.add_lease_resource(ns, &id, res).map_err(status)?;
                } else {
                    db.delete_lease_resource(ns, &id, &res).map_err(status)?;
                }
                Ok(encode(&Empty {}))
            }
            "ListResources" => unary(payload, |r: pl::ListResourcesRequest| {
                Ok(pl::ListResourcesResponse {
                    resources: db
                        .lease(ns, &r.id)
                        .map_err(status)?
                        .resources
                        .into_iter()
                        .map(|r| pl::Resource {
                            id: r.id,
                            r#type: r.kind,
                        })
                        .collect(),
                })
            }),
            "List" => unary(payload, |r: pl::ListRequest| {
                let filters = parse_filters(&r.filters, 2)?;
                Ok(pl::ListResponse {
                    leases: db
                        .leases(ns)
                        .map_err(status)?
                        .into_iter()
                        .filter(|l| filters.matches(l))
                        .map(conv)
                        .collect(),
                })
            }),
            _ => Err(unknown_method(method)),
        }
    }
}

/// Decoding a streaming method's request (unary methods use [`unary`]).
pub trait DecodeReq: Sized {
    fn decode_req(payload: &[u8]) -> Result<Self, Status>;
}

impl<M: prost::Message + Default> DecodeReq for M {
    fn decode_req(payload: &[u8]) -> Result<Self, Status> {
        M::decode(payload).map_err(|e| {
            let name = std::any::type_name::<M>().rsplit("::").next().unwrap_or("");
            Status::new(Code::InvalidArgument, format!("decode {name}: {e}"))
        })
    }
}

pub fn mount_to_proto(m: crate::snapshot::Mount) -> crate::proto::types::Mount {
    crate::proto::types::Mount {
        r#type: m.kind,
        source: m.source,
        target: String::new(),
        options: m.options,
    }
}

pub struct Introspection;

impl Handler for Introspection {
    fn call(&self, _: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        match method {
            "Plugins" => unary(payload, |_: pin::PluginsRequest| {
                let host = oci::Platform::host();
                let platform = Platform {
                    os: host.os.clone(),
                    architecture: host.architecture.clone(),
                    variant: host.variant.clone(),
                };
                let plugin = |t: &str, id: &str, platforms: bool| pin::Plugin {
                    r#type: t.into(),
                    id: id.into(),
                    platforms: if platforms {
                        vec![platform.clone()]
                    } else {
                        vec![]
                    },
                    ..Default::default()
                };
                Ok(pin::PluginsResponse {
                    plugins: vec![
                        plugin("io.containerd.content.v1", "content", false),
                        plugin("io.containerd.snapshotter.v1", "overlayfs", true),
                        plugin("io.containerd.snapshotter.v1", "native", true),
                        plugin("io.containerd.metadata.v1", "skiff", false),
                        plugin("io.containerd.runtime.v2", "task", true),
                        plugin("io.containerd.grpc.v1", "containers", false),
                        plugin("io.containerd.grpc.v1", "content", false),
                        plugin("io.containerd.grpc.v1", "diff", false),
                        plugin("io.containerd.differ.v1", "walking", true),
                        plugin("io.containerd.grpc.v1", "events", false),
                        plugin("io.containerd.grpc.v1", "images", false),
                        plugin("io.containerd.grpc.v1", "introspection", false),
                        plugin("io.containerd.grpc.v1", "leases", false),
                        plugin("io.containerd.grpc.v1", "namespaces", false),
                        plugin("io.containerd.grpc.v1", "snapshots", false),
                        plugin("io.containerd.grpc.v1", "tasks", false),
                        plugin("io.containerd.grpc.v1", "version", false),
                    ],
                })
            }),
            _ => Err(unknown_method(method)),
        }
    }
}
