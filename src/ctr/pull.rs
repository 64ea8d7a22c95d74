//! `ctr images pull` done by the client, as containerd's own ctr does it,
//! for a server without skiff's Pull service (containerd itself): the
//! registry is read here with skiff's registry client, every blob goes
//! into the server's store through Content.Write (resumable ref, expected
//! digest and size, containerd's gc labels at commit), each layer is
//! unpacked through snapshots Prepare → Diff.Apply → snapshots Commit
//! (named by its chain id), and only then is the image recorded.
//!
//! Everything the pull makes is done under a lease named in each call's
//! metadata, as containerd's client does: an interrupted pull (or ctr
//! killed) leaves only leased objects, which the server's garbage
//! collector takes once the lease is deleted or expires. The image record
//! comes last (containerd's `Client.Pull` order; ctr 1.6 records it before
//! unpacking), so a pull that fails anywhere leaves no image behind.

use super::client::Conn;
use crate::error::{Context, Error, Kind, Result};
use crate::image::digest::{self, Digest};
use crate::image::oci::{self, Descriptor, Platform};
use crate::image::pull::{self as ipull, Resolved};
use crate::proto::services::pull::{state, PullProgress};
use crate::proto::services::{content, diff, images, leases, snapshots, FieldMask};
use crate::proto::types::{self as pt, Empty};
use crate::registry::{self, Reference};
use crate::ttrpc::{Code, Status};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What a pull needs besides the connection.
pub struct Options<'a> {
    pub reference: &'a str,
    pub registry: registry::client::Options,
    pub platform: Platform,
    /// The snapshotter to unpack into, resolved (never empty).
    pub snapshotter: &'a str,
    /// Concurrent layer downloads.
    pub parallel: usize,
    /// Told of every change of a blob's state, from any thread (the same
    /// messages skiff's Pull service streams).
    pub report: &'a (dyn Fn(&PullProgress) + Sync),
}

/// The recorded image.
pub struct Pulled {
    pub image: images::Image,
}

/// containerd's labels (content and snapshots).
const LABEL_UNCOMPRESSED: &str = "containerd.io/uncompressed";
const LABEL_GC_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";
const LABEL_DISTRIBUTION_SOURCE: &str = "containerd.io/distribution.source.";
/// containerd's `snapshots.UnpackKeyFormat`: `extract-UNIQUE CHAINID`.
const UNPACK_KEY_PREFIX: &str = "extract-";

/// Pull `opts.reference` into the server `conn` talks to.
pub fn pull(conn: &Conn, opts: &Options) -> Result<Pulled> {
    let reference = Reference::parse(opts.reference).map_err(|e| {
        Error::of(
            Kind::InvalidArgument,
            format!("reference {:?}: {}", opts.reference, e.message()),
        )
    })?;
    let client = registry::Client::new(&opts.registry, &reference)
        .with_context(|| format!("registry for {reference}"))?;
    let lease = Lease::take(conn)?;
    let leased = conn.with_lease(&lease.id);
    match pull_leased(&leased, &client, &reference, opts) {
        Ok(p) => Ok(p),
        Err(e) => {
            // What the failed pull wrote is held by nothing else: let the
            // server collect it now rather than at its next collection.
            lease.delete(true);
            Err(e)
        }
    }
}

fn pull_leased(
    conn: &Conn,
    client: &registry::Client,
    reference: &Reference,
    opts: &Options,
) -> Result<Pulled> {
    let name = reference.to_string();
    let report = |name: &str, media_type: &str, st: i32, offset: u64, total: u64| {
        (opts.report)(&PullProgress {
            name: name.to_string(),
            media_type: media_type.to_string(),
            state: st,
            offset: offset as i64,
            total: total as i64,
            image: None,
        })
    };
    report(&name, "", state::RESOLVING, 0, 0);
    let resolved = ipull::resolve(client, reference, &opts.platform)
        .with_context(|| format!("failed to resolve reference {name:?}"))?;
    let source = distribution_source(reference);

    // The documents first, each committed with the gc labels naming its
    // children (containerd's SetChildrenMappedLabels), then the layers.
    let target = match &resolved.index {
        Some(index) => {
            let desc = Descriptor {
                media_type: document_type(&index.descriptor.media_type, oci::OCI_INDEX),
                ..index.descriptor.clone()
            };
            let mut labels = child_labels(&index.manifests);
            labels.extend(source.clone());
            put_document(conn, &desc, &index.bytes, labels, &report)?;
            desc
        }
        _ => resolved.descriptor.clone(),
    };
    let m = &resolved.manifest;
    for l in &m.layers {
        if oci::layer_compression(&l.media_type).is_none() {
            return Err(Error::new(format!(
                "layer {}: unsupported media type {:?}",
                l.digest, l.media_type
            )));
        }
    }
    let mut labels = child_labels(std::iter::once(&m.config).chain(&m.layers));
    labels.extend(source.clone());
    put_document(
        conn,
        &resolved.descriptor,
        &resolved.manifest_bytes,
        labels,
        &report,
    )?;
    let config_bytes = client
        .blob_bytes(&m.config)
        .with_context(|| format!("fetch config {}", m.config.digest))?;
    let config = oci::parse_config(&config_bytes, &format!("config {}", m.config.digest))?;
    ipull::check_platform(&config, &opts.platform, reference)?;
    let diff_ids = diff_ids(&resolved, &config)?;
    put_document(conn, &m.config, &config_bytes, source.clone(), &report)?;

    fetch_layers(conn, client, &m.layers, &source, opts)?;
    let top = unpack(conn, &m.layers, &diff_ids, opts.snapshotter)?;
    if let Some(chain) = top {
        set_labels(
            conn,
            &m.config.digest,
            [(format!("{LABEL_GC_SNAPSHOT}{}", opts.snapshotter), chain)].into(),
        )?;
    }
    let image = record_image(conn, &name, &target)?;
    Ok(Pulled { image })
}

/// A document's media type: the registry's content type when it names one.
fn document_type(ctype: &str, default: &str) -> String {
    let t = ctype.split(';').next().unwrap_or("").trim();
    if t.contains("manifest") || t.contains("index") {
        t.to_string()
    } else {
        default.to_string()
    }
}

/// The config's diff_ids, one per layer.
fn diff_ids(r: &Resolved, config: &oci::ImageConfig) -> Result<Vec<Digest>> {
    let m = &r.manifest;
    if config.diff_ids.len() != m.layers.len() {
        return Err(Error::new(format!(
            "config {}: {} diff_ids for {} layers (mismatched image rootfs and manifest layers)",
            m.config.digest,
            config.diff_ids.len(),
            m.layers.len()
        )));
    }
    config
        .diff_ids
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Digest::parse(d)
                .map_err(|e| e.wrap(format!("config {}: rootfs.diff_ids[{i}]", m.config.digest)))
        })
        .collect()
}

/// containerd's gc labels on a document for its children: `config` for
/// the config, `m.N` for manifests, `l.N` for layers, `N` for the rest,
/// numbered per kind in the document's order.
fn child_labels<'a>(
    children: impl IntoIterator<Item = &'a Descriptor>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for c in children {
        let mt = c.media_type.as_str();
        let key = if mt == oci::OCI_CONFIG || mt == oci::DOCKER_CONFIG {
            "containerd.io/gc.ref.content.config"
        } else if mt == oci::OCI_MANIFEST || mt == oci::DOCKER_MANIFEST {
            "containerd.io/gc.ref.content.m."
        } else if oci::layer_compression(mt).is_some() {
            "containerd.io/gc.ref.content.l."
        } else {
            "containerd.io/gc.ref.content."
        };
        let n = seen.entry(key).or_insert(0);
        let label = if *n > 0 || key.ends_with('.') {
            format!("{key}{n}")
        } else {
            key.to_string()
        };
        *n += 1;
        labels.insert(label, c.digest.to_string());
    }
    labels
}

/// containerd's `containerd.io/distribution.source.HOST = REPOSITORY`,
/// which tells a later push or pull where the blob came from. HOST is the
/// registry's host name without its port, as Go's `url.Hostname` gives it.
fn distribution_source(r: &Reference) -> BTreeMap<String, String> {
    [(
        format!("{LABEL_DISTRIBUTION_SOURCE}{}", host_name(&r.domain)),
        r.repository.clone(),
    )]
    .into()
}

/// `host[:port]` or `[v6]:port` → the host.
fn host_name(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match domain.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => domain,
    }
}

/// ctr's ingest ref for a blob: its kind, then its digest.
fn write_ref(desc: &Descriptor) -> String {
    super::progress::key(&desc.media_type, &desc.digest.to_string())
}

/// Store a document already in memory (verified against its descriptor).
fn put_document(
    conn: &Conn,
    desc: &Descriptor,
    data: &[u8],
    labels: BTreeMap<String, String>,
    report: &dyn Fn(&str, &str, i32, u64, u64),
) -> Result<()> {
    digest::verify_bytes(data, &desc.digest, desc.size)
        .with_context(|| format!("{}", desc.digest))?;
    let digest = desc.digest.to_string();
    let mut w = match Writer::open(conn, desc, labels.clone())? {
        Some(w) => w,
        None => {
            set_labels(conn, &desc.digest, labels)?;
            report(
                &digest,
                &desc.media_type,
                state::EXISTS,
                desc.size,
                desc.size,
            );
            return Ok(());
        }
    };
    // A partial document is not worth resuming: write it whole.
    w.write_from(0, &mut &data[..], &|_| {})?;
    w.commit()?;
    report(&digest, &desc.media_type, state::DONE, desc.size, desc.size);
    Ok(())
}

/// One blob being written through Content.Write.
struct Writer<'a> {
    stream: crate::grpc::ClientStream,
    conn: &'a Conn,
    desc: &'a Descriptor,
    wref: String,
    labels: BTreeMap<String, String>,
    /// Where the server's ingest stands.
    offset: u64,
}

impl<'a> Writer<'a> {
    /// Open the ingest of `desc` (resuming what an earlier pull left
    /// under the same ref); None when the store has the blob already.
    fn open(
        conn: &'a Conn,
        desc: &'a Descriptor,
        labels: BTreeMap<String, String>,
    ) -> Result<Option<Writer<'a>>> {
        let wref = write_ref(desc);
        let mut tries = 0;
        loop {
            let first = Self::request(&wref, desc, content::write_action::STAT, 0, Vec::new());
            let stream = conn.stream_both(content::SERVICE, "Write", &first)?;
            match stream.recv(conn.stream_timeout()?) {
                Ok(Some(m)) => {
                    let r = decode_write(&m)?;
                    return Ok(Some(Writer {
                        stream,
                        conn,
                        desc,
                        wref,
                        labels,
                        offset: r.offset.max(0) as u64,
                    }));
                }
                Ok(None) => {
                    return Err(Error::new(format!(
                        "write {}: the server closed the stream",
                        desc.digest
                    )))
                }
                Err(s) if s.code == Code::AlreadyExists => return Ok(None),
                // Another writer holds the ref (containerd: "ref ... locked"):
                // wait for it, as containerd's content.OpenWriter does.
                Err(s) if s.code == Code::Unavailable && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(s) => return Err(Error::from(s).wrap(format!("write {}", desc.digest))),
            }
        }
    }

    fn request(
        wref: &str,
        desc: &Descriptor,
        action: i32,
        offset: u64,
        data: Vec<u8>,
    ) -> content::WriteContentRequest {
        content::WriteContentRequest {
            action,
            r#ref: wref.to_string(),
            total: desc.size as i64,
            expected: desc.digest.to_string(),
            offset: offset as i64,
            data,
            labels: BTreeMap::new(),
        }
    }

    fn exchange(
        &self,
        req: &content::WriteContentRequest,
    ) -> Result<content::WriteContentResponse> {
        let named = |s: Status| Error::from(s).wrap(format!("write {}", self.desc.digest));
        self.stream
            .send(&prost::Message::encode_to_vec(req))
            .map_err(named)?;
        match self
            .stream
            .recv(self.conn.stream_timeout()?)
            .map_err(named)?
        {
            Some(m) => decode_write(&m),
            None => Err(Error::new(format!(
                "write {}: the server closed the stream",
                self.desc.digest
            ))),
        }
    }

    /// Write what `data` holds from blob offset `at` (0 restarts the
    /// ingest: the server truncates it) to its end; `progress` gets the
    /// bytes as they go.
    fn write_from(&mut self, at: u64, data: &mut dyn Read, progress: &dyn Fn(u64)) -> Result<()> {
        self.offset = at;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = read_full(data, &mut buf)
                .map_err(|e| Error::from(e).wrap(format!("fetch {}", self.desc.digest)))?;
            if n == 0 {
                return Ok(());
            }
            if self.offset + n as u64 > self.desc.size {
                return Err(Error::new(format!(
                    "blob {}: the registry sent more than its {} bytes",
                    self.desc.digest, self.desc.size
                )));
            }
            let req = Self::request(
                &self.wref,
                self.desc,
                content::write_action::WRITE,
                self.offset,
                buf[..n].to_vec(),
            );
            let r = self.exchange(&req)?;
            self.offset = r.offset.max(0) as u64;
            progress(n as u64);
        }
    }

    /// Commit: the server verifies size and digest, then applies the labels.
    fn commit(self) -> Result<()> {
        if self.offset < self.desc.size {
            return Err(Error::new(format!(
                "blob {}: transfer ended early at {} of {} bytes",
                self.desc.digest, self.offset, self.desc.size
            )));
        }
        let mut req = Self::request(
            &self.wref,
            self.desc,
            content::write_action::COMMIT,
            self.offset,
            Vec::new(),
        );
        req.labels = self.labels.clone();
        match self.exchange(&req) {
            Ok(_) => {}
            // Committed meanwhile by another pull.
            Err(e) if e.kind() == Kind::AlreadyExists => {
                set_labels(self.conn, &self.desc.digest, self.labels.clone())?;
            }
            Err(e) => return Err(e),
        }
        let _ = self.stream.close_send();
        Ok(())
    }
}

fn decode_write(m: &[u8]) -> Result<content::WriteContentResponse> {
    <content::WriteContentResponse as prost::Message>::decode(m)
        .map_err(|e| Error::new(format!("decode WriteContentResponse: {e}")))
}

/// Fill `buf` as far as the reader goes (the registry's chunks are small).
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Set (add or replace) labels of a stored blob.
fn set_labels(conn: &Conn, digest: &Digest, labels: BTreeMap<String, String>) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
    let _: content::UpdateResponse = conn
        .call(
            content::SERVICE,
            "Update",
            &content::UpdateRequest {
                info: Some(content::Info {
                    digest: digest.to_string(),
                    labels,
                    ..Default::default()
                }),
                update_mask: Some(FieldMask { paths }),
            },
        )
        .map_err(|s| Error::from(s).wrap(format!("label {digest}")))?;
    Ok(())
}

/// How many times a broken layer transfer is resumed.
const ATTEMPTS: usize = 3;

/// Fetch the layers, up to `opts.parallel` at once; the first error stops
/// the others.
fn fetch_layers(
    conn: &Conn,
    client: &registry::Client,
    layers: &[Descriptor],
    source: &BTreeMap<String, String>,
    opts: &Options,
) -> Result<()> {
    let next = Mutex::new(0usize);
    let abort = AtomicBool::new(false);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.clamp(1, 8).min(layers.len()) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                if i >= layers.len() || abort.load(Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = fetch_layer(conn, client, &layers[i], source, opts, &abort) {
                    abort.store(true, Ordering::SeqCst);
                    first_err
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e.wrap(format!("layer {}", layers[i].digest)));
                    return;
                }
            });
        }
    });
    match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn fetch_layer(
    conn: &Conn,
    client: &registry::Client,
    desc: &Descriptor,
    source: &BTreeMap<String, String>,
    opts: &Options,
    abort: &AtomicBool,
) -> Result<()> {
    let digest = desc.digest.to_string();
    let report = |st: i32, offset: u64| {
        (opts.report)(&PullProgress {
            name: digest.clone(),
            media_type: desc.media_type.clone(),
            state: st,
            offset: offset as i64,
            total: desc.size as i64,
            image: None,
        })
    };
    let mut last = None;
    // After a commit that did not verify, what the ingest holds is suspect:
    // the next attempt fetches the whole blob again.
    let mut from_zero = false;
    for _ in 0..ATTEMPTS {
        let Some(mut w) = Writer::open(conn, desc, source.clone())? else {
            set_labels(conn, &desc.digest, source.clone())?;
            report(state::EXISTS, desc.size);
            return Ok(());
        };
        if from_zero {
            w.offset = 0;
        }
        if w.offset < desc.size {
            let stream = client
                .blob(&desc.digest, w.offset)
                .with_context(|| format!("fetch {digest}"));
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            // A server that ignored the Range sends the blob from its
            // start: the ingest restarts with it.
            let at = if stream.partial { w.offset } else { 0 };
            report(state::DOWNLOADING, at);
            let sent = Mutex::new(at);
            let progress = |n: u64| {
                let mut s = sent.lock().unwrap_or_else(|p| p.into_inner());
                let before = *s;
                *s += n;
                // The display interpolates: a report per 4 MiB is plenty.
                if *s / (4 << 20) != before / (4 << 20) {
                    report(state::DOWNLOADING, *s);
                }
            };
            let mut reader = Aborting {
                inner: &mut *stream.reader,
                abort,
            };
            if let Err(e) = w.write_from(at, &mut reader, &progress) {
                if abort.load(Ordering::SeqCst) {
                    return Err(Error::new("aborted"));
                }
                // A broken transfer resumes from where the ingest stands.
                last = Some(e);
                continue;
            }
        }
        match w.commit() {
            Ok(()) => {
                report(state::DONE, desc.size);
                return Ok(());
            }
            Err(e) => {
                from_zero = true;
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::new("download failed")))
}

/// A reader that stops when another layer failed.
struct Aborting<'a> {
    inner: &'a mut (dyn Read + Send),
    abort: &'a AtomicBool,
}

impl Read for Aborting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("aborted"));
        }
        self.inner.read(buf)
    }
}

/// Unpack the layers in order, each into the snapshot named by its chain
/// id (skipped when the snapshotter has it); the top chain id, None for
/// an image without layers.
fn unpack(
    conn: &Conn,
    layers: &[Descriptor],
    diff_ids: &[Digest],
    snapshotter: &str,
) -> Result<Option<String>> {
    let chains = crate::metadata::unpack::chain_ids(diff_ids);
    for (i, layer) in layers.iter().enumerate() {
        let chain = chains[i].to_string();
        let parent = if i == 0 {
            String::new()
        } else {
            chains[i - 1].to_string()
        };
        if snapshot_exists(conn, snapshotter, &chain)? {
            continue;
        }
        apply_layer(conn, snapshotter, layer, &diff_ids[i], &chain, &parent)
            .with_context(|| format!("unpack layer {}", layer.digest))?;
        // Set once the apply verified the uncompressed digest.
        set_labels(
            conn,
            &layer.digest,
            [(LABEL_UNCOMPRESSED.to_string(), diff_ids[i].to_string())].into(),
        )?;
    }
    Ok(chains.last().map(|c| c.to_string()))
}

fn snapshot_exists(conn: &Conn, snapshotter: &str, key: &str) -> Result<bool> {
    let r: std::result::Result<snapshots::StatSnapshotResponse, Status> = conn.call(
        snapshots::SERVICE,
        "Stat",
        &snapshots::StatSnapshotRequest {
            snapshotter: snapshotter.to_string(),
            key: key.to_string(),
        },
    );
    match r {
        Ok(_) => Ok(true),
        Err(s) if s.code == Code::NotFound => Ok(false),
        Err(s) => Err(Error::from(s).wrap(format!("failed to stat snapshot {key}"))),
    }
}

/// A key no other unpack uses (containerd's `uniquePart`).
fn unpack_key(chain: &str) -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let (_, nanos) = crate::time::now();
    format!(
        "{UNPACK_KEY_PREFIX}{nanos}-{}{} {chain}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One layer: an active snapshot on `parent`, the diff applied into its
/// mounts (the server checks nothing: the uncompressed digest is compared
/// here), committed as `chain`. The active snapshot goes on any failure.
fn apply_layer(
    conn: &Conn,
    snapshotter: &str,
    layer: &Descriptor,
    diff_id: &Digest,
    chain: &str,
    parent: &str,
) -> Result<()> {
    let key = unpack_key(chain);
    let prepared: snapshots::PrepareSnapshotResponse = conn
        .call(
            snapshots::SERVICE,
            "Prepare",
            &snapshots::PrepareSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.clone(),
                parent: parent.to_string(),
                labels: BTreeMap::new(),
            },
        )
        .map_err(|s| {
            Error::from(s).wrap(format!("failed to prepare extraction snapshot {key:?}"))
        })?;
    let applied = (|| -> Result<()> {
        let r: diff::ApplyResponse = conn
            .call(
                diff::SERVICE,
                "Apply",
                &diff::ApplyRequest {
                    diff: Some(pt::Descriptor {
                        media_type: layer.media_type.clone(),
                        digest: layer.digest.to_string(),
                        size: layer.size as i64,
                        annotations: BTreeMap::new(),
                    }),
                    mounts: prepared.mounts,
                    payloads: BTreeMap::new(),
                },
            )
            .map_err(|s| Error::from(s).wrap(format!("failed to extract layer {diff_id}")))?;
        let got = r.applied.map(|d| d.digest).unwrap_or_default();
        if got != diff_id.to_string() {
            return Err(Error::new(format!(
                "wrong diff id calculated on extraction: {got:?}, the config says {diff_id}"
            )));
        }
        let committed: std::result::Result<Empty, Status> = conn.call(
            snapshots::SERVICE,
            "Commit",
            &snapshots::CommitSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                name: chain.to_string(),
                key: key.clone(),
                labels: BTreeMap::new(),
            },
        );
        match committed {
            Ok(_) => Ok(()),
            // Another unpack committed the same layer first.
            Err(s) if s.code == Code::AlreadyExists => {
                Err(Error::of(Kind::AlreadyExists, s.message))
            }
            Err(s) => Err(Error::from(s).wrap(format!("failed to commit snapshot {key}"))),
        }
    })();
    match applied {
        Ok(()) => Ok(()),
        Err(e) => {
            let _: std::result::Result<Empty, Status> = conn.call(
                snapshots::SERVICE,
                "Remove",
                &snapshots::RemoveSnapshotRequest {
                    snapshotter: snapshotter.to_string(),
                    key,
                },
            );
            if e.kind() == Kind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// Record (or repoint) the image `name` at `target`.
fn record_image(conn: &Conn, name: &str, target: &Descriptor) -> Result<images::Image> {
    let image = images::Image {
        name: name.to_string(),
        target: Some(pt::Descriptor {
            media_type: target.media_type.clone(),
            digest: target.digest.to_string(),
            size: target.size as i64,
            annotations: BTreeMap::new(),
        }),
        ..Default::default()
    };
    let created: std::result::Result<images::CreateImageResponse, Status> = conn.call(
        images::SERVICE,
        "Create",
        &images::CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        },
    );
    let recorded = match created {
        Ok(r) => r.image,
        Err(s) if s.code == Code::AlreadyExists => {
            let r: images::UpdateImageResponse = conn.call(
                images::SERVICE,
                "Update",
                &images::UpdateImageRequest {
                    image: Some(image.clone()),
                    update_mask: None,
                    source_date_epoch: None,
                },
            )?;
            r.image
        }
        Err(s) => return Err(Error::from(s).wrap(format!("create image {name}"))),
    };
    Ok(recorded.unwrap_or(image))
}

/// The pull's lease, as containerd's client takes one (`WithLease`: a
/// random id, expiring in a day should ctr die before deleting it).
struct Lease<'a> {
    conn: &'a Conn,
    id: String,
    deleted: bool,
}

impl<'a> Lease<'a> {
    fn take(conn: &'a Conn) -> Result<Lease<'a>> {
        let (secs, nanos) = crate::time::now();
        let id = format!("ctr-pull-{secs}{nanos:09}-{}", std::process::id());
        let labels = [(
            crate::metadata::LABEL_GC_EXPIRE.to_string(),
            crate::time::rfc3339_nano(secs + 24 * 3600, 0),
        )]
        .into();
        let _: leases::CreateResponse = conn
            .call(
                leases::SERVICE,
                "Create",
                &leases::CreateRequest {
                    id: id.clone(),
                    labels,
                },
            )
            .map_err(|s| Error::from(s).wrap("create the pull's lease"))?;
        Ok(Lease {
            conn,
            id,
            deleted: false,
        })
    }

    /// `sync`: the server collects what only this lease held before it answers.
    fn delete(mut self, sync: bool) {
        self.deleted = true;
        let _: std::result::Result<Empty, Status> = self.conn.call(
            leases::SERVICE,
            "Delete",
            &leases::DeleteRequest {
                id: self.id.clone(),
                sync,
            },
        );
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.deleted {
            let _: std::result::Result<Empty, Status> = self.conn.call(
                leases::SERVICE,
                "Delete",
                &leases::DeleteRequest {
                    id: self.id.clone(),
                    sync: false,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(media_type: &str, hex: char) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: Digest::parse(&format!("sha256:{}", hex.to_string().repeat(64))).unwrap(),
            size: 1,
            platform: None,
            annotations: Vec::new(),
        }
    }

    #[test]
    fn child_labels_number_per_kind_as_containerd() {
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        let l = child_labels(&[d(oci::OCI_CONFIG, 'a'), d(gz, 'b'), d(gz, 'c')]);
        let keys: Vec<_> = l.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "containerd.io/gc.ref.content.config",
                "containerd.io/gc.ref.content.l.0",
                "containerd.io/gc.ref.content.l.1"
            ]
        );
        let m = child_labels(&[d(oci::OCI_MANIFEST, 'a'), d(oci::DOCKER_MANIFEST, 'b')]);
        assert_eq!(
            m.get("containerd.io/gc.ref.content.m.1")
                .map(String::as_str),
            Some(format!("sha256:{}", "b".repeat(64)).as_str())
        );
    }

    #[test]
    fn distribution_source_host_has_no_port() {
        assert_eq!(host_name("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(host_name("[::1]:5000"), "::1");
        assert_eq!(host_name("docker.io"), "docker.io");
    }

    #[test]
    fn unpack_keys_are_containerd_extract_keys_and_unique() {
        let a = unpack_key("sha256:x");
        let b = unpack_key("sha256:x");
        assert!(a.starts_with("extract-") && a.ends_with(" sha256:x"), "{a}");
        assert_ne!(a, b);
    }
}
