//! `skiff.services.pull.v1.Pull/Pull`: the daemon resolves, fetches and
//! (optionally) unpacks an image itself and records it, streaming
//! progress to the client. A lease holds the fetched blobs and the
//! unpacked snapshots until the image record references them.

use super::api::{encode, status, Ctx, Handler, Sink};
use super::services::{image_to_proto, DecodeReq};
use super::store::{self, Stores};
use crate::image::digest::Digest;
use crate::image::oci::{self, Descriptor};
use crate::image::pull::{self as ipull, Observer, PullOptions};
use crate::proto::services::pull::{state, PullProgress, PullRequest, METHOD};
use crate::registry::{self, Reference};
use crate::ttrpc::{unknown_method, Code, Status};
use crate::Context;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The pull service: the stores, and the registry settings of the
/// daemon's configuration.
pub struct Pull {
    pub stores: Arc<Stores>,
    pub registry: Registry,
}

/// The daemon's registry settings.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// containerd's `certs.d` layout; a request's `hosts_dir` replaces it.
    pub hosts_dir: Option<std::path::PathBuf>,
    /// Docker's config.json, read at each pull when it exists.
    pub auth_file: Option<std::path::PathBuf>,
    /// Whether peers other than root may call (the socket belongs to a
    /// configured uid or group). The daemon reads a request's `hosts_dir`
    /// as root, where containerd's ctr reads it with the caller's rights:
    /// such peers may then only name the configured hosts dir or a
    /// directory inside it, so they cannot make the daemon read other
    /// files or use root's client certificates elsewhere.
    pub non_root_peers: bool,
}

impl Registry {
    /// The hosts dir a request names (absolute), if the caller may use it.
    fn request_hosts_dir(&self, dir: &str) -> Result<std::path::PathBuf, Status> {
        if !dir.starts_with('/') {
            return Err(Status::new(
                Code::InvalidArgument,
                format!("hosts_dir {dir:?}: not an absolute path"),
            ));
        }
        if !self.non_root_peers {
            return Ok(dir.into());
        }
        let refused = || {
            Status::new(
                Code::PermissionDenied,
                format!(
                    "hosts_dir {dir:?}: with a socket group or user configured, a pull may \
                     only name the daemon's hosts dir ({}) or a directory inside it",
                    self.hosts_dir
                        .as_ref()
                        .map_or("none configured".into(), |d| d.display().to_string())
                ),
            )
        };
        let configured = self.hosts_dir.as_ref().ok_or_else(refused)?;
        let (Ok(configured), Ok(wanted)) =
            (configured.canonicalize(), Path::new(dir).canonicalize())
        else {
            return Err(refused());
        };
        if wanted.starts_with(&configured) {
            Ok(wanted)
        } else {
            Err(refused())
        }
    }
}

/// Sends one progress message per change of a blob's state (not per
/// chunk: the client's display interpolates); `bytes` updates go out at
/// most every 8 MiB per layer.
struct Progress<'a> {
    out: &'a dyn Sink,
    sent: Mutex<Vec<(usize, u64, u64)>>,
    gone: std::sync::atomic::AtomicBool,
}

impl Progress<'_> {
    fn send(&self, p: PullProgress) {
        if self.out.send(&encode(&p)).is_err() {
            self.gone.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn msg(desc: &Descriptor, st: i32, offset: u64) -> PullProgress {
        PullProgress {
            name: desc.digest.to_string(),
            media_type: desc.media_type.clone(),
            state: st,
            offset: offset as i64,
            total: desc.size as i64,
            image: None,
        }
    }
}

impl Observer for Progress<'_> {
    fn start(&self, i: usize, desc: &Descriptor, offset: u64) {
        super::api::lock(&self.sent).push((i, offset, desc.size));
        self.send(Self::msg(desc, state::DOWNLOADING, offset));
    }

    fn bytes(&self, i: usize, n: u64) {
        let mut sent = super::api::lock(&self.sent);
        if let Some(e) = sent.iter_mut().find(|e| e.0 == i) {
            let before = e.1;
            e.1 += n;
            if e.1 / (8 << 20) != before / (8 << 20) {
                let (at, total) = (e.1, e.2);
                drop(sent);
                self.send(PullProgress {
                    name: format!("layer-{i}"),
                    state: state::DOWNLOADING,
                    offset: at as i64,
                    total: total as i64,
                    ..Default::default()
                });
            }
        }
    }

    fn done(&self, _: usize, desc: &Descriptor, present: bool) {
        let st = if present { state::EXISTS } else { state::DONE };
        self.send(Self::msg(desc, st, desc.size));
    }
}

impl Pull {
    fn pull(&self, ns: &str, r: PullRequest, out: &dyn Sink) -> Result<PullProgress, Status> {
        let reference = Reference::parse(&r.reference).map_err(|e| {
            Status::new(
                Code::InvalidArgument,
                format!("reference {:?}: {}", r.reference, e.message()),
            )
        })?;
        let platform = if r.platform.is_empty() {
            oci::Platform::host()
        } else {
            oci::Platform::parse(&r.platform).map_err(status)?
        };
        let credentials = if r.user.is_empty() {
            None
        } else {
            let (u, p) = r.user.split_once(':').unwrap_or((&r.user, ""));
            Some(registry::auth::Credentials {
                user: u.into(),
                password: p.into(),
                identity_token: None,
            })
        };
        let hosts_dir = if r.hosts_dir.is_empty() {
            self.registry.hosts_dir.clone()
        } else {
            Some(self.registry.request_hosts_dir(&r.hosts_dir)?)
        };
        let opts = registry::client::Options {
            plain_http: r.plain_http,
            tls_verify: true,
            credentials,
            auth_file: self.registry.auth_file.clone().filter(|p| p.exists()),
            hosts_dir,
            ..Default::default()
        };
        let client = registry::Client::new(&opts, &reference).map_err(status)?;
        let db = self.stores.db().map_err(status)?;
        // The lease keeps what this pull makes until the image record
        // references it (and expires if the daemon dies meanwhile).
        let lease_id = format!("pull-{}", crate::record::now_nanos());
        let mut labels = store::Labels::new();
        labels.insert(crate::metadata::LABEL_GC_EXPIRE.into(), expiry_in(3600));
        // A daemon that dies mid-pull leaves these for the next to clear.
        labels.insert(
            crate::metadata::gc::LABEL_DAEMON_REQUEST.into(),
            "pull".into(),
        );
        labels.insert(
            crate::metadata::gc::LABEL_PULL_REF.into(),
            reference.to_string(),
        );
        db.create_lease(ns, &lease_id, labels).map_err(status)?;
        let res = self.pull_leased(ns, &r, &reference, &platform, &client, &lease_id, out);
        let _ = db.delete_lease(ns, &lease_id);
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn pull_leased(
        &self,
        ns: &str,
        r: &PullRequest,
        reference: &Reference,
        platform: &oci::Platform,
        client: &registry::Client,
        lease: &str,
        out: &dyn Sink,
    ) -> Result<PullProgress, Status> {
        let content = self.stores.content().map_err(status)?;
        let db = self.stores.db().map_err(status)?;
        let progress = Progress {
            out,
            sent: Mutex::new(Vec::new()),
            gone: Default::default(),
        };
        progress.send(PullProgress {
            name: reference.to_string(),
            state: state::RESOLVING,
            ..Default::default()
        });
        // `all_platforms` of an index without the host's platform pulls
        // the others (containerd's does), with nothing of the host's to
        // unpack.
        let (host, foreign) = match ipull::fetch_top(client, reference).map_err(status)? {
            ipull::Top::Manifest(m) => (Some(*m), None),
            ipull::Top::Index(index)
                if r.all_platforms
                    && oci::select_platform(&index.manifests, platform).is_none() =>
            {
                (None, Some(index))
            }
            ipull::Top::Index(index) => (
                Some(ipull::resolve_in(client, reference, index, platform).map_err(status)?),
                None,
            ),
        };
        let name = reference.to_string();
        let pulled = match host {
            Some(resolved) => {
                Some(self.pull_host(ns, platform, client, lease, &progress, resolved)?)
            }
            None => None,
        };
        let index = pulled
            .as_ref()
            .and_then(|p| p.resolved.index.as_ref())
            .or(foreign.as_ref());
        let mut target = match (r.all_platforms, index, &pulled) {
            (true, Some(index), _) => {
                let host = pulled.as_ref().map(|p| &p.resolved.descriptor.digest);
                self.pull_other_platforms(ns, reference, client, lease, &progress, index, host)
                    .map_err(status)?
            }
            (_, _, Some(p)) => p.resolved.descriptor.clone(),
            _ => {
                return Err(Status::new(
                    Code::Internal,
                    format!("pull {name}: nothing pulled"),
                ))
            }
        };
        target.platform = None;
        target.annotations.clear();
        if r.unpack && pulled.is_some() {
            let sn_name = if r.snapshotter.is_empty() {
                self.stores.default_snapshotter()
            } else {
                r.snapshotter.as_str()
            };
            let sn = self.stores.snapshotter(sn_name).map_err(status)?;
            progress.send(PullProgress {
                name: name.clone(),
                state: state::UNPACKING,
                ..Default::default()
            });
            store::unpack_image(content, &sn, db, ns, &target, lease).map_err(status)?;
            progress.send(PullProgress {
                name: name.clone(),
                state: state::UNPACKED,
                ..Default::default()
            });
        }
        // The client went away (ctr pull interrupted): as with containerd's
        // client-side pull, no image is recorded; the lease's end frees
        // the blobs for collection.
        if progress.gone.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Status::new(
                Code::Canceled,
                format!("pull {name}: the client went away"),
            ));
        }
        let image = store::Image {
            name: name.clone(),
            target,
            labels: r.labels.clone(),
            created: 0,
            updated: 0,
        };
        let recorded = match db.create_image(ns, image.clone()) {
            Ok(i) => i,
            Err(e) if e.kind() == crate::Kind::AlreadyExists => {
                db.update_image(ns, image).map_err(status)?
            }
            Err(e) => return Err(status(e)),
        };
        Ok(PullProgress {
            name,
            state: state::DONE,
            image: Some(image_to_proto(recorded)),
            ..Default::default()
        })
    }
}

impl Pull {
    /// Fetch the host's manifest, config and layers (leased before they
    /// are written: a collection running mid-pull must see the blobs
    /// already committed as held) and record them.
    fn pull_host(
        &self,
        ns: &str,
        platform: &oci::Platform,
        client: &registry::Client,
        lease: &str,
        progress: &Progress,
        resolved: ipull::Resolved,
    ) -> Result<ipull::Pulled, Status> {
        let content = self.stores.content().map_err(status)?;
        let db = self.stores.db().map_err(status)?;
        lease_blobs(db, ns, lease, &resolved).map_err(status)?;
        let pulled = ipull::pull_resolved(
            content,
            client,
            resolved,
            &PullOptions {
                platform: platform.clone(),
                parallel: 3,
                observer: progress,
                rootfs: None,
                tag: false,
            },
        )
        .map_err(status)?;
        super::faults::point("pull-stored");
        label_children(db, ns, &pulled.resolved).map_err(status)?;
        record_blobs(db, ns, &pulled.resolved).map_err(status)?;
        Ok(pulled)
    }

    /// `--all-platforms`: fetch every platform the index names but the
    /// host's (`host`, pulled already, if the index has it), each leased
    /// before it is written, then store the index itself, its manifests
    /// kept by its gc.ref labels; the index is the image's target. The
    /// index is fetched once, so every platform comes from the same index.
    #[allow(clippy::too_many_arguments)]
    fn pull_other_platforms(
        &self,
        ns: &str,
        reference: &Reference,
        client: &registry::Client,
        lease: &str,
        progress: &Progress,
        index: &ipull::Index,
        host: Option<&Digest>,
    ) -> crate::Result<Descriptor> {
        let content = self.stores.content()?;
        let db = self.stores.db()?;
        for d in &index.manifests {
            if Some(&d.digest) == host {
                continue;
            }
            if is_attestation(d) {
                // Content, not a platform: stored and kept, never unpacked.
                let resolved = ipull::resolve_entry(client, reference, d)?;
                lease_blobs(db, ns, lease, &resolved)?;
                ipull::fetch_plain(content, client, &resolved)?;
                record_blobs(db, ns, &resolved)?;
                label_children(db, ns, &resolved)?;
                continue;
            }
            let Some(platform) = &d.platform else {
                continue;
            };
            // Normalized (arm64 is arm64/v8) as a requested platform is.
            let platform = oci::Platform::parse(&platform.to_string())?;
            let resolved = ipull::resolve_entry(client, reference, d)?;
            lease_blobs(db, ns, lease, &resolved)?;
            let other = ipull::pull_resolved(
                content,
                client,
                resolved,
                &PullOptions {
                    platform,
                    parallel: 3,
                    observer: progress,
                    rootfs: None,
                    tag: false,
                },
            )?;
            record_blobs(db, ns, &other.resolved)?;
            label_children(db, ns, &other.resolved)?;
        }
        let desc = &index.descriptor;
        let res = crate::metadata::Resource {
            id: desc.digest.to_string(),
            kind: "content".into(),
        };
        db.add_lease_resource(ns, lease, res)?;
        if !content.has(desc) {
            content.put(desc, &index.bytes)?;
        }
        db.add_content(ns, &desc.digest, desc.size, Default::default())?;
        for (i, d) in index.manifests.iter().enumerate() {
            db.add_content_label(
                ns,
                &desc.digest,
                &format!("containerd.io/gc.ref.content.m.{i}"),
                &d.digest.to_string(),
            )?;
        }
        Ok(desc.clone())
    }
}

/// BuildKit's attestation manifests (provenance, SBOM) sit in an index
/// as platform unknown/unknown and hold no image: not a platform to pull
/// (their in-toto layers are no layer media type) but content to keep, as
/// containerd keeps every blob an index of all platforms names.
fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .iter()
        .any(|(k, v)| k == "vnd.docker.reference.type" && v == "attestation-manifest")
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// Holds the manifest, config and layers of `r` in the pull's lease.
fn lease_blobs(
    db: &crate::metadata::Db,
    ns: &str,
    lease: &str,
    r: &ipull::Resolved,
) -> crate::Result<()> {
    for d in std::iter::once(&r.descriptor)
        .chain(std::iter::once(&r.manifest.config))
        .chain(r.manifest.layers.iter())
    {
        let res = crate::metadata::Resource {
            id: d.digest.to_string(),
            kind: "content".into(),
        };
        db.add_lease_resource(ns, lease, res)
            .with_context(|| format!("lease {lease:?}: hold {}", d.digest))?;
    }
    Ok(())
}

/// The namespace's records of what the pull stored (a blob is seen in a
/// namespace through its record).
fn record_blobs(db: &crate::metadata::Db, ns: &str, r: &ipull::Resolved) -> crate::Result<()> {
    for d in std::iter::once(&r.descriptor)
        .chain(std::iter::once(&r.manifest.config))
        .chain(r.manifest.layers.iter())
    {
        db.add_content(ns, &d.digest, d.size, Default::default())?;
    }
    Ok(())
}

/// Content labels that make garbage collection follow the image from its
/// manifest to config and layers (containerd's `gc.ref.content.*`).
fn label_children(db: &crate::metadata::Db, ns: &str, r: &ipull::Resolved) -> crate::Result<()> {
    let m = &r.manifest;
    let top = &r.descriptor.digest;
    db.add_content_label(
        ns,
        top,
        "containerd.io/gc.ref.content.config",
        &m.config.digest.to_string(),
    )?;
    for (i, l) in m.layers.iter().enumerate() {
        db.add_content_label(
            ns,
            top,
            &format!("containerd.io/gc.ref.content.l.{i}"),
            &l.digest.to_string(),
        )?;
    }
    Ok(())
}

/// RFC 3339 UTC time `secs` from now.
fn expiry_in(secs: u64) -> String {
    let (now, _) = crate::time::now();
    crate::time::rfc3339_nano(now + secs as i64, 0)
}

impl Handler for Pull {
    fn call(&self, _: &Ctx, method: &str, _: &[u8]) -> Result<Vec<u8>, Status> {
        Err(unknown_method(method))
    }

    fn stream(
        &self,
        ctx: &Ctx,
        method: &str,
        payload: &[u8],
        out: &dyn Sink,
    ) -> Result<(), Status> {
        if method != METHOD {
            return Err(unknown_method(method));
        }
        let r = PullRequest::decode_req(payload)?;
        let last = self.pull(&ctx.namespace, r, out)?;
        out.send(&encode(&last))
    }
}
