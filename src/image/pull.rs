//! Pull an image: resolve the reference to one platform's manifest, fetch
//! config and layers into the store (in parallel, resumable, verified),
//! optionally unpacking layers in order as they arrive.

use crate::error::{Context, Error, Result};
use crate::image::digest::Digest;
use crate::image::oci::{self, Descriptor, Document, ImageConfig, Manifest, Platform, REF_NAME};
use crate::image::store::{Ingest, Store};
use crate::image::unpack::{self, Rootfs};
use crate::registry::{Client, Reference};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// Told about layer transfers, for a progress display.
pub trait Observer: Sync {
    /// Transfer of layer `i` starts at `offset` (> 0 when resumed).
    fn start(&self, _i: usize, _desc: &Descriptor, _offset: u64) {}
    fn bytes(&self, _i: usize, _n: u64) {}
    /// `present`: it was in the store already.
    fn done(&self, _i: usize, _desc: &Descriptor, _present: bool) {}
    /// Layer `i` was unpacked.
    fn unpacked(&self, _i: usize, _desc: &Descriptor) {}
}

pub struct Silent;
impl Observer for Silent {}

/// A resolved image: its manifest for one platform and its config.
pub struct Resolved {
    pub reference: Reference,
    /// The manifest's descriptor, platform filled in.
    pub descriptor: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    /// The index, when the reference named one.
    pub index: Option<Index>,
}

/// An image index as fetched: kept so that pulling its other platforms
/// (and storing it) needs no second fetch.
pub struct Index {
    /// Its digest, size and media type.
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
    /// Its manifests, one a platform.
    pub manifests: Vec<Descriptor>,
}

/// What a reference names, fetched: one manifest, or an index.
pub enum Top {
    Manifest(Box<Resolved>),
    Index(Index),
}

/// Fetch what `reference` names.
pub fn fetch_top(client: &Client, reference: &Reference) -> Result<Top> {
    let (data, ctype) = client
        .manifest(&reference.object())
        .context("fetch manifest")?;
    let top_digest = reference
        .digest
        .clone()
        .unwrap_or_else(|| Digest::of(&data));
    match oci::parse_document(&data, &ctype, &format!("manifest {top_digest}"))? {
        Document::Manifest(m) => Ok(Top::Manifest(Box::new(Resolved {
            reference: reference.clone(),
            descriptor: Descriptor {
                media_type: m.media_type.clone(),
                digest: top_digest,
                size: data.len() as u64,
                platform: None,
                annotations: vec![],
            },
            manifest_bytes: data,
            manifest: m,
            index: None,
        }))),
        Document::Index(list) => Ok(Top::Index(Index {
            descriptor: Descriptor {
                media_type: ctype,
                digest: top_digest,
                size: data.len() as u64,
                platform: None,
                annotations: vec![],
            },
            bytes: data,
            manifests: list,
        })),
    }
}

/// Resolve `reference` to the manifest for `platform`.
pub fn resolve(client: &Client, reference: &Reference, platform: &Platform) -> Result<Resolved> {
    match fetch_top(client, reference)? {
        Top::Manifest(resolved) => Ok(*resolved),
        Top::Index(index) => resolve_in(client, reference, index, platform),
    }
}

/// Resolve the manifest for `platform` from a fetched index (kept in
/// [`Resolved::index`]); NotFound when the index has none for it.
pub fn resolve_in(
    client: &Client,
    reference: &Reference,
    index: Index,
    platform: &Platform,
) -> Result<Resolved> {
    let chosen = oci::select_platform(&index.manifests, platform)
        .cloned()
        .ok_or_else(|| {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect();
            crate::err_kind!(
                NotFound,
                "no manifest for platform {platform} in index {} (it has: {})",
                index.descriptor.digest,
                have.join(", ")
            )
        })?;
    let mut resolved = resolve_entry(client, reference, &chosen)?;
    resolved.index = Some(index);
    Ok(resolved)
}

/// Resolve one manifest an index names (`chosen`, one of its entries):
/// fetched by digest and verified against the entry; `index` is None.
pub fn resolve_entry(
    client: &Client,
    reference: &Reference,
    chosen: &Descriptor,
) -> Result<Resolved> {
    let platform = chosen
        .platform
        .as_ref()
        .map_or_else(|| "its platform".to_string(), |p| p.to_string());
    let (mdata, mctype) = client
        .manifest(&chosen.digest.to_string())
        .with_context(|| format!("fetch manifest {} for {platform}", chosen.digest))?;
    crate::image::digest::verify_bytes(&mdata, &chosen.digest, chosen.size).context("manifest")?;
    let ctype = if chosen.media_type.is_empty() {
        mctype
    } else {
        chosen.media_type.clone()
    };
    match oci::parse_document(&mdata, &ctype, &format!("manifest {}", chosen.digest))? {
        Document::Manifest(m) => Ok(Resolved {
            reference: reference.clone(),
            descriptor: Descriptor {
                media_type: m.media_type.clone(),
                annotations: vec![],
                ..chosen.clone()
            },
            manifest_bytes: mdata,
            manifest: m,
            index: None,
        }),
        Document::Index(_) => Err(Error::new(format!(
            "manifest {}: nested index is not supported",
            chosen.digest
        ))),
    }
}

/// Check the config's platform against the request (containerd refuses a
/// single-platform image of another platform too).
pub fn check_platform(config: &ImageConfig, want: &Platform, reference: &Reference) -> Result<()> {
    if config.platform.os.is_empty() || config.platform.architecture.is_empty() {
        return Ok(());
    }
    if want.rank(&config.platform).is_none() {
        return Err(Error::new(format!(
            "{reference}: image is for {}, not the requested {want}",
            config.platform
        )));
    }
    Ok(())
}

pub struct PullOptions<'a> {
    pub platform: Platform,
    /// Concurrent layer downloads.
    pub parallel: usize,
    pub observer: &'a dyn Observer,
    /// Unpack into this rootfs as layers arrive.
    pub rootfs: Option<&'a Rootfs>,
    /// Name the image in the store's index.json (a GC root). The daemon
    /// does not: its lease and image record hold the blobs, and an entry
    /// of its own could only replace (then lose) one skiff-fetch made.
    pub tag: bool,
}

pub struct Pulled {
    pub resolved: Resolved,
    pub config: ImageConfig,
    pub config_bytes: Vec<u8>,
}

/// Pull `reference` into `store` and record it in the store's index.
pub fn pull(
    store: &Store,
    client: &Client,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<Pulled> {
    let resolved = resolve(client, reference, &opts.platform)?;
    pull_resolved(store, client, resolved, opts)
}

/// [`pull`] of an image already resolved (its manifest is not fetched again).
pub fn pull_resolved(
    store: &Store,
    client: &Client,
    mut resolved: Resolved,
    opts: &PullOptions,
) -> Result<Pulled> {
    // From the first blob written until the tag, no collection may run
    // (the blobs are reachable from nothing until then).
    let _pin = store.pin()?;
    let reference = &resolved.reference.clone();
    let m = &resolved.manifest;
    for l in &m.layers {
        if oci::layer_compression(&l.media_type).is_none() {
            return Err(Error::new(format!(
                "layer {}: unsupported media type {:?}",
                l.digest, l.media_type
            )));
        }
    }
    let config_bytes = if store.has(&m.config) {
        store.read(&m.config)?
    } else {
        let b = client
            .blob_bytes(&m.config)
            .with_context(|| format!("fetch config {}", m.config.digest))?;
        store.put(&m.config, &b)?;
        b
    };
    let config = oci::parse_config(&config_bytes, &format!("config {}", m.config.digest))?;
    check_platform(&config, &opts.platform, reference)?;
    if !config.diff_ids.is_empty() && config.diff_ids.len() != m.layers.len() {
        return Err(Error::new(format!(
            "config {}: {} diff_ids for {} layers",
            m.config.digest,
            config.diff_ids.len(),
            m.layers.len()
        )));
    }
    let diff_ids = config
        .diff_ids
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Digest::parse(d)
                .map_err(|e| e.wrap(format!("config {}: rootfs.diff_ids[{i}]", m.config.digest)))
        })
        .collect::<Result<Vec<_>>>()?;
    fetch_layers(store, client, &m.layers, &diff_ids, opts)?;
    store.put(&resolved.descriptor, &resolved.manifest_bytes)?;
    let mut desc = resolved.descriptor.clone();
    if !config.platform.os.is_empty() {
        desc.platform = Some(config.platform.clone());
    }
    desc.annotations = vec![(REF_NAME.to_string(), reference.to_string())];
    if opts.tag {
        store.tag(&desc)?;
    }
    resolved.descriptor.platform = desc.platform.clone();
    Ok(Pulled {
        resolved,
        config,
        config_bytes,
    })
}

/// Store a resolved manifest, its config and its blobs as plain content:
/// no media-type or platform check, nothing unpacked (as containerd
/// fetches what an index names beside the platforms it pulls, such as
/// BuildKit's attestation manifests and their in-toto blobs).
pub fn fetch_plain(store: &Store, client: &Client, resolved: &Resolved) -> Result<()> {
    let _pin = store.pin()?;
    let m = &resolved.manifest;
    let abort = AtomicBool::new(false);
    for (i, d) in std::iter::once(&m.config).chain(&m.layers).enumerate() {
        download(store, client, i, d, &Silent, &abort)
            .with_context(|| format!("blob {}", d.digest))?;
    }
    if !store.has(&resolved.descriptor) {
        store.put(&resolved.descriptor, &resolved.manifest_bytes)?;
    }
    Ok(())
}

/// Download the layers with up to `opts.parallel` transfers at once. With a
/// rootfs, the layers are unpacked in order: the next layer to unpack, when
/// no worker has started it yet, streams from the registry straight into
/// extraction while it is stored and verified; the others are unpacked from
/// the store as soon as they (and all before them) are in. The rootfs is a
/// temporary tree until the pull succeeds, so a layer that fails to verify
/// after it was extracted leaves nothing behind.
fn fetch_layers(
    store: &Store,
    client: &Client,
    layers: &[Descriptor],
    diff_ids: &[Digest],
    opts: &PullOptions,
) -> Result<()> {
    let claimed: Vec<AtomicBool> = layers.iter().map(|_| AtomicBool::new(false)).collect();
    let abort = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, Result<()>)>();
    let parallel = opts.parallel.clamp(1, 8);
    // With a rootfs the main thread streams one layer itself.
    let workers = if opts.rootfs.is_some() {
        parallel - 1
    } else {
        parallel
    };
    let workers = workers.min(layers.len());
    let claim = |i: usize| {
        claimed[i]
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    };
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (abort, claim) = (&abort, &claim);
            s.spawn(move || {
                for (i, layer) in layers.iter().enumerate() {
                    if abort.load(Ordering::SeqCst) {
                        break;
                    }
                    if !claim(i) {
                        continue;
                    }
                    let r = download(store, client, i, layer, opts.observer, abort)
                        .with_context(|| format!("layer {}", layer.digest));
                    let failed = r.is_err();
                    let _ = tx.send((i, r));
                    if failed {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut ready = vec![false; layers.len()];
        let mut first_err: Option<Error> = None;
        let fail = |e: Error, first_err: &mut Option<Error>| {
            abort.store(true, Ordering::SeqCst);
            first_err.get_or_insert(e);
        };
        // Take one worker report; false when no more can come.
        let receive = |ready: &mut Vec<bool>, first_err: &mut Option<Error>| -> bool {
            match rx.recv() {
                Ok((i, Ok(()))) => {
                    ready[i] = true;
                    true
                }
                Ok((_, Err(e))) => {
                    abort.store(true, Ordering::SeqCst);
                    first_err.get_or_insert(e);
                    true
                }
                Err(_) => false,
            }
        };
        for i in 0..layers.len() {
            if first_err.is_some() {
                break;
            }
            let Some(rootfs) = opts.rootfs else {
                // Nothing to unpack: just wait for the workers.
                while !ready[i] && first_err.is_none() {
                    if !receive(&mut ready, &mut first_err) {
                        break;
                    }
                }
                continue;
            };
            if claim(i) {
                let r = stream_layer(
                    store,
                    client,
                    i,
                    &layers[i],
                    diff_ids.get(i),
                    opts.observer,
                    &abort,
                    rootfs,
                );
                if let Err(e) = r {
                    fail(e, &mut first_err);
                    break;
                }
            } else {
                while !ready[i] && first_err.is_none() {
                    if !receive(&mut ready, &mut first_err) {
                        break;
                    }
                }
                if first_err.is_some() {
                    break;
                }
                if !ready[i] {
                    fail(Error::new("layer download stopped early"), &mut first_err);
                    break;
                }
                if let Err(e) = apply_layer(store, rootfs, &layers[i], diff_ids.get(i)) {
                    fail(e, &mut first_err);
                    break;
                }
            }
            opts.observer.unpacked(i, &layers[i]);
        }
        if first_err.is_none() && opts.rootfs.is_none() && ready.iter().any(|r| !r) {
            first_err = Some(Error::new("layer download stopped early"));
        }
        // Let the workers see an abort and finish; collect a late error.
        while receive(&mut ready, &mut first_err) {}
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

/// Hashes and stores what it reads from the registry, and hands it on.
struct Tee<'a> {
    inner: &'a mut (dyn Read + Send),
    ingest: &'a mut Ingest,
    obs: &'a dyn Observer,
    i: usize,
    abort: &'a AtomicBool,
    /// Reading from the registry failed (worth a resumed retry).
    transfer_failed: bool,
    /// Storing failed (too much data, disk): not worth a retry.
    store_error: Option<String>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("aborted"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.transfer_failed = true;
                return Err(std::io::Error::other(format!("transfer interrupted: {e}")));
            }
        };
        if let Err(e) = self.ingest.writer().write_all(&buf[..n]) {
            self.store_error = Some(e.to_string());
            return Err(e);
        }
        self.obs.bytes(self.i, n as u64);
        Ok(n)
    }
}

/// Download a layer and extract it while it arrives; verified at the end.
#[allow(clippy::too_many_arguments)]
fn stream_layer(
    store: &Store,
    client: &Client,
    i: usize,
    desc: &Descriptor,
    diff_id: Option<&Digest>,
    obs: &dyn Observer,
    abort: &AtomicBool,
    rootfs: &Rootfs,
) -> Result<()> {
    // Extraction errors name the layer already; name it on the others.
    let named = |e: Error| e.wrap(format!("layer {}", desc.digest));
    // A layer applied again after a failed transfer must not count twice
    // against the unpack limits.
    let before = rootfs.counts();
    let fallback = || -> Result<()> {
        download(store, client, i, desc, obs, abort).map_err(named)?;
        rootfs.rewind(before);
        apply_layer(store, rootfs, desc, diff_id)
    };
    if store.has(desc) {
        obs.done(i, desc, true);
        return apply_layer(store, rootfs, desc, diff_id);
    }
    let mut ingest = store.ingest(desc).map_err(named)?;
    if store.has(desc) || ingest.offset() > 0 {
        // Stored meanwhile, or an earlier pull left part of it: resume
        // the plain way.
        drop(ingest);
        return fallback();
    }
    let mut stream = client.blob(&desc.digest, 0).map_err(named)?;
    obs.start(i, desc, 0);
    let declared = oci::layer_compression(&desc.media_type).unwrap_or(oci::Compression::None);
    let mut tee = Tee {
        inner: &mut *stream.reader,
        ingest: &mut ingest,
        obs,
        i,
        abort,
        transfer_failed: false,
        store_error: None,
    };
    let applied = unpack::decompressor(&mut tee, declared)
        .map_err(Error::from)
        .and_then(|reader| rootfs.apply_verified(reader, &desc.digest.to_string(), diff_id));
    // The tar may end before the blob does (padding, compression trailer).
    let drained = if tee.transfer_failed || tee.store_error.is_some() {
        Ok(0)
    } else {
        std::io::copy(&mut tee, &mut std::io::sink())
    };
    if abort.load(Ordering::SeqCst) {
        return Err(named(Error::new("aborted")));
    }
    if let Some(e) = tee.store_error.take() {
        return Err(named(Error::new(e)));
    }
    if tee.transfer_failed || drained.is_err() || ingest.offset() < desc.size {
        // Keep what arrived; finish with Range, then apply the layer again
        // from the store (applying a layer twice gives the same tree).
        drop(ingest);
        return fallback();
    }
    // A corrupt blob shows as a digest mismatch rather than as whatever
    // the extraction made of it.
    ingest.commit().map_err(named)?;
    applied?;
    obs.done(i, desc, false);
    Ok(())
}

/// Unpack one stored layer into the rootfs.
pub fn apply_layer(
    store: &Store,
    rootfs: &Rootfs,
    layer: &Descriptor,
    diff_id: Option<&Digest>,
) -> Result<()> {
    let path = store.blob_path(&layer.digest);
    let file =
        std::fs::File::open(&path).with_context(|| format!("open layer {}", layer.digest))?;
    let declared = oci::layer_compression(&layer.media_type).unwrap_or(oci::Compression::None);
    let reader =
        unpack::decompressor(file, declared).with_context(|| format!("layer {}", layer.digest))?;
    rootfs.apply_verified(reader, &layer.digest.to_string(), diff_id)
}

const ATTEMPTS: usize = 3;

/// Fetch one blob into the store, resuming a partial download with Range,
/// retrying a broken transfer.
fn download(
    store: &Store,
    client: &Client,
    i: usize,
    desc: &Descriptor,
    obs: &dyn Observer,
    abort: &AtomicBool,
) -> Result<()> {
    if store.has(desc) {
        obs.done(i, desc, true);
        return Ok(());
    }
    let mut last: Option<Error> = None;
    for _ in 0..ATTEMPTS {
        let mut ingest = store.ingest(desc)?;
        if store.has(desc) {
            obs.done(i, desc, true);
            return Ok(());
        }
        let offset = ingest.offset();
        if offset == desc.size {
            match ingest.commit() {
                Ok(()) => {
                    obs.done(i, desc, false);
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            }
        }
        let mut stream = match client.blob(&desc.digest, offset) {
            Ok(s) => s,
            Err(e) => {
                // A partial the server will not resume from is useless.
                if offset > 0 && e.message().contains(" 416 ") {
                    drop(ingest);
                    store.discard_partial(&desc.digest);
                }
                // Connection resets and server errors: try again.
                last = Some(e);
                continue;
            }
        };
        let offset = if offset > 0 && !stream.partial {
            // The server ignored Range: start over.
            drop(ingest);
            store.discard_partial(&desc.digest);
            ingest = store.ingest(desc)?;
            0
        } else {
            offset
        };
        obs.start(i, desc, offset);
        let mut buf = vec![0u8; 256 << 10];
        let copied: Result<()> = loop {
            if abort.load(Ordering::SeqCst) {
                return Err(Error::new("aborted"));
            }
            let n = match stream.reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(Error::from(e).wrap("transfer interrupted")),
            };
            if let Err(e) = ingest.writer().write_all(&buf[..n]) {
                // Too much data, or the disk: not something a retry fixes.
                return Err(Error::from(e));
            }
            obs.bytes(i, n as u64);
        };
        let copied = copied.and_then(|()| {
            let got = ingest.offset();
            if got < desc.size {
                Err(Error::new(format!(
                    "transfer ended early at {got} of {} bytes",
                    desc.size
                )))
            } else {
                Ok(())
            }
        });
        if let Err(e) = copied {
            // Keep the partial file for the next attempt (or the next run).
            last = Some(e);
            continue;
        }
        match ingest.commit() {
            Ok(()) => {
                obs.done(i, desc, false);
                return Ok(());
            }
            Err(e) if offset > 0 => {
                // A resumed transfer that does not verify: retry from zero.
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::new("download failed")))
}
