//! Image archives as `ctr images export` writes and `ctr images import`
//! reads them: an OCI layout (oci-layout, index.json, blobs/sha256/...)
//! plus Docker's manifest.json.

use super::client::Conn;
use super::objects::{self, BlobReader};
use crate::error::{Error, Kind, Result};
use crate::image::oci::{parse_document, select_platform, Document, Platform};
use crate::proto::services::{content, images, leases};
use crate::ttrpc::{Code, Status};
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// What to export.
pub struct ExportOptions<'a> {
    pub images: &'a [String],
    /// The platform whose blobs go in (the host's by default).
    pub platform: Platform,
    pub all_platforms: bool,
    pub skip_manifest_json: bool,
}

/// A blob to put in the archive: its digest and the size its descriptor gives.
struct BlobRef {
    digest: String,
    size: u64,
}

/// Write the archive of `opts.images` to `out`. Only the blobs of the
/// chosen platform(s) go in, as ctr does; blobs are streamed from the
/// store into the tar.
pub fn export(conn: &Conn, opts: &ExportOptions, out: impl Write) -> Result<()> {
    let mut blobs: Vec<BlobRef> = Vec::new();
    let mut index_entries = Vec::new();
    let mut docker = Vec::new();
    let add = |blobs: &mut Vec<BlobRef>, digest: String, size: u64| {
        if !blobs.iter().any(|b| b.digest == digest) {
            blobs.push(BlobRef { digest, size });
        }
    };
    let document = |digest: &str| {
        objects::read_document(conn, digest)
            .map_err(|e| Error::new(format!("failed to get reader for {digest}: {e}")))
    };
    for name in opts.images {
        let image = objects::get_image(conn, name)?;
        let target = image.target.clone().unwrap_or_default();
        let data = document(&target.digest)?;
        add(&mut blobs, target.digest.clone(), target.size as u64);
        let manifests = match parse_document(&data, &target.media_type, &target.digest)? {
            Document::Manifest(m) => vec![m],
            Document::Index(list) => {
                let chosen: Vec<_> = if opts.all_platforms {
                    list.iter().collect()
                } else {
                    select_platform(&list, &opts.platform).into_iter().collect()
                };
                let mut ms = Vec::new();
                for d in chosen {
                    let data = document(&d.digest.to_string())?;
                    add(&mut blobs, d.digest.to_string(), d.size);
                    if let Ok(Document::Manifest(m)) =
                        parse_document(&data, &d.media_type, "manifest")
                    {
                        ms.push(m);
                    }
                }
                ms
            }
        };
        for m in &manifests {
            add(&mut blobs, m.config.digest.to_string(), m.config.size);
            for l in &m.layers {
                add(&mut blobs, l.digest.to_string(), l.size);
            }
        }
        if let Some(m) = manifests.first() {
            docker.push(format!(
                "{{\"Config\":\"blobs/sha256/{}\",\"RepoTags\":[{}],\"Layers\":[{}]}}",
                m.config.digest.hex(),
                crate::json::quote(name),
                m.layers
                    .iter()
                    .map(|l| format!("\"blobs/sha256/{}\"", l.digest.hex()))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        let tag = name
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(_, t)| t);
        let mut ann = format!("\"io.containerd.image.name\":{}", crate::json::quote(name));
        if let Some(t) = tag {
            ann.push_str(&format!(
                ",\"org.opencontainers.image.ref.name\":{}",
                crate::json::quote(t)
            ));
        }
        index_entries.push(format!(
            "{{\"mediaType\":{},\"digest\":{},\"size\":{},\"annotations\":{{{ann}}}}}",
            crate::json::quote(&target.media_type),
            crate::json::quote(&target.digest),
            target.size
        ));
    }
    let index = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{}]}}",
        index_entries.join(",")
    );
    let mut tar = tar::Builder::new(out);
    let header = |size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o444);
        h.set_entry_type(tar::EntryType::Regular);
        h
    };
    let put = |tar: &mut tar::Builder<_>, path: &str, data: &[u8]| {
        tar.append_data(&mut header(data.len() as u64), path, data)
            .map_err(|e| Error::from(e).wrap(path))
    };
    put(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for b in &blobs {
        let hex = b
            .digest
            .split_once(':')
            .map(|(_, h)| h)
            .unwrap_or(&b.digest);
        let path = format!("blobs/sha256/{hex}");
        let reader = BlobReader::open(conn, &b.digest)
            .map_err(|e| Error::new(format!("failed to get reader for {}: {e}", b.digest)))?;
        let mut exact = ExactSize::new(reader, b.size, &b.digest);
        tar.append_data(&mut header(b.size), &path, &mut exact)
            .map_err(|e| Error::from(e).wrap(&path))?;
    }
    put(&mut tar, "index.json", index.as_bytes())?;
    if !opts.skip_manifest_json {
        put(
            &mut tar,
            "manifest.json",
            format!("[{}]", docker.join(",")).as_bytes(),
        )?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| Error::from(e).wrap("finish the archive"))
}

/// A blob's reader that fails unless it yields exactly the size its
/// descriptor promised (a tar entry's size is written before its data).
struct ExactSize<R> {
    inner: R,
    left: u64,
    digest: String,
}

impl<R: Read> ExactSize<R> {
    fn new(inner: R, size: u64, digest: &str) -> Self {
        ExactSize {
            inner,
            left: size,
            digest: digest.to_string(),
        }
    }
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "{}: longer than its descriptor says",
                    self.digest
                ))),
            };
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "{}: shorter than its descriptor says",
                self.digest
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// How imported images are named (ctr's flags).
pub struct ImportOptions<'a> {
    /// `--base-name`: tags get this name; other names must start with it.
    pub base_name: Option<&'a str>,
    /// `--digests`: also name each image `PREFIX@DIGEST`.
    pub digests: bool,
    /// `--skip-digest-for-named`: no digest name for a named image.
    pub skip_digest_for_named: bool,
}

/// An image recorded by an import: its name and target digest.
pub struct Imported {
    pub name: String,
    pub digest: String,
}

/// A regular file of the archive as pass one saw it.
struct Member {
    digest: String,
    size: u64,
    gzip: bool,
}

/// What pass one found: the layout's documents and every file's digest.
#[derive(Default)]
struct Scan {
    oci_layout: bool,
    index: Option<String>,
    docker_manifest: Option<String>,
    /// Regular files by cleaned path (blobs/ included).
    members: BTreeMap<String, Member>,
    /// Symlinks (a `docker save` layer shared by two images) to the path
    /// they name.
    links: BTreeMap<String, String>,
}

/// The largest layout document (index.json, manifest.json) read.
const MAX_LAYOUT_JSON: u64 = 20 << 20;

/// Import the archive at `file`, an OCI layout (index.json, blobs/) or
/// the old `docker save` layout (manifest.json, `<id>.json`,
/// `<layer>/layer.tar`). Blobs go into the store through Content.Write
/// (verified there), held by a lease until the images reference them;
/// then each image is named as ctr names it.
pub fn import(conn: &Conn, file: &str, opts: &ImportOptions) -> Result<Vec<Imported>> {
    let scan = scan(file)?;
    let lease = ImportLease::take(conn)?;
    let targets = if scan.oci_layout || scan.index.is_some() {
        let index = scan.index.as_deref().ok_or_else(|| {
            Error::of(
                Kind::InvalidArgument,
                format!("{file}: missing index.json in OCI layout 1.0.0"),
            )
        })?;
        write_members(conn, file, &scan, &lease, |path| {
            path.strip_prefix("blobs/sha256/")
                .map(|h| format!("sha256:{h}"))
        })?;
        oci_targets(index)?
    } else if let Some(manifest) = &scan.docker_manifest {
        docker_targets(conn, file, &scan, manifest, &lease)?
    } else {
        return Err(Error::of(
            Kind::InvalidArgument,
            format!("{file}: unrecognized image format"),
        ));
    };
    let prefix = match opts.base_name {
        Some(b) => b.to_string(),
        None => format!("import-{}", &crate::time::now_rfc3339()[..10]),
    };
    let mut done = Vec::new();
    for (target, names) in targets {
        let name = image_name(&names, opts.base_name, &prefix);
        let mut wanted = Vec::new();
        if let Some(n) = &name {
            wanted.push(n.clone());
        }
        if opts.digests && !(opts.skip_digest_for_named && name.is_some()) {
            wanted.push(format!("{prefix}@{}", target.digest));
        }
        for n in wanted {
            put_image(conn, &n, target.clone())?;
            done.push(Imported {
                name: n,
                digest: target.digest.clone(),
            });
        }
    }
    lease.release();
    Ok(done)
}

/// The names an index entry carries: `io.containerd.image.name` and
/// `org.opencontainers.image.ref.name`.
#[derive(Default)]
struct Names {
    image: Option<String>,
    reference: Option<String>,
}

/// ctr's naming: the containerd image name as it is; else the OCI ref
/// name, a bare tag getting `prefix:`, a full name kept (with a base
/// name only if it starts with it).
fn image_name(n: &Names, base: Option<&str>, prefix: &str) -> Option<String> {
    if let Some(i) = n.image.as_deref().filter(|i| !i.is_empty()) {
        return Some(i.to_string());
    }
    let r = n.reference.as_deref().filter(|r| !r.is_empty())?;
    if r.contains(['/', ':', '@']) {
        return match base {
            Some(b) if !has_image_prefix(r, b) => None,
            _ => Some(r.to_string()),
        };
    }
    Some(format!("{prefix}:{r}"))
}

/// `s` is `prefix` or continues it with `/`, `:` or `@` (not `foo` for `fo`).
fn has_image_prefix(s: &str, prefix: &str) -> bool {
    match s.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', ':', '@']),
        None => false,
    }
}

/// Pass one: read the layout documents, hash every regular file.
fn scan(file: &str) -> Result<Scan> {
    let bad = |e: std::io::Error| Error::from(e).wrap(file);
    let f = std::fs::File::open(file).map_err(|e| Error::from(e).wrap(format!("open {file}")))?;
    let mut scan = Scan::default();
    let mut ar = tar::Archive::new(f);
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let path = clean(&e.path().map_err(bad)?.display().to_string());
        match e.header().entry_type() {
            tar::EntryType::Symlink => {
                if let Some(target) = e.link_name().ok().flatten() {
                    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    let joined = format!("{dir}/{}", target.display());
                    scan.links.insert(path, clean(&joined));
                }
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => continue,
        }
        let mut read_json = |what: &str| -> Result<String> {
            let mut text = String::new();
            (&mut e)
                .take(MAX_LAYOUT_JSON)
                .read_to_string(&mut text)
                .map_err(|err| Error::from(err).wrap(format!("{file}: {what}")))?;
            Ok(text)
        };
        match path.as_str() {
            "oci-layout" => scan.oci_layout = true,
            "index.json" => scan.index = Some(read_json("index.json")?),
            "manifest.json" => scan.docker_manifest = Some(read_json("manifest.json")?),
            _ => {
                let mut hashing = crate::image::digest::HashingReader::new(
                    &mut e,
                    crate::image::digest::Algorithm::Sha256,
                );
                let mut head = [0u8; 2];
                let mut got = 0;
                while got < 2 {
                    match hashing.read(&mut head[got..]).map_err(bad)? {
                        0 => break,
                        n => got += n,
                    }
                }
                let rest = std::io::copy(&mut hashing, &mut std::io::sink()).map_err(bad)?;
                scan.members.insert(
                    path,
                    Member {
                        digest: hashing.finish().to_string(),
                        size: got as u64 + rest,
                        gzip: head == [0x1f, 0x8b],
                    },
                );
            }
        }
    }
    Ok(scan)
}

/// A tar path without `./`, doubled or trailing slashes, or `.` parts.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Pass two: store the members `digest_of` names (checked against what
/// pass one hashed), each held by the lease before it is written.
fn write_members(
    conn: &Conn,
    file: &str,
    scan: &Scan,
    lease: &ImportLease,
    digest_of: impl Fn(&str) -> Option<String>,
) -> Result<()> {
    let bad = |e: std::io::Error| Error::from(e).wrap(file);
    let f = std::fs::File::open(file).map_err(|e| Error::from(e).wrap(format!("open {file}")))?;
    let mut ar = tar::Archive::new(f);
    let mut written = std::collections::BTreeSet::new();
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let path = clean(&e.path().map_err(bad)?.display().to_string());
        let (Some(digest), Some(m)) = (digest_of(&path), scan.members.get(&path)) else {
            continue;
        };
        if m.digest != digest {
            return Err(Error::of(
                Kind::InvalidArgument,
                format!("{file}: {path}: content is {}, not {digest}", m.digest),
            ));
        }
        if !written.insert(digest.clone()) {
            continue;
        }
        lease.hold(&digest)?;
        write_blob(
            conn,
            &digest,
            m.size as i64,
            &mut e,
            &format!("{file}: {path}"),
        )?;
    }
    Ok(())
}

type Targets = Vec<(crate::proto::types::Descriptor, Names)>;

/// The images index.json names.
fn oci_targets(index: &str) -> Result<Targets> {
    let v = crate::json::parse(index, "index.json")?;
    let root = crate::json::Node::new(&v, "index.json");
    let mut out = Vec::new();
    for m in root.need("manifests").and_then(|m| m.items())? {
        let d = crate::image::oci::Descriptor::from_node(&m)?;
        let names = Names {
            image: d.annotation("io.containerd.image.name").map(str::to_string),
            reference: d
                .annotation("org.opencontainers.image.ref.name")
                .map(str::to_string),
        };
        let target = crate::proto::types::Descriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.to_string(),
            size: d.size as i64,
            ..Default::default()
        };
        out.push((target, names));
    }
    Ok(out)
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The old `docker save` layout: store each image's config and layers,
/// write the Docker schema 2 manifest containerd makes of them (same
/// bytes, so the same digest as ctr's import), one target per RepoTag.
fn docker_targets(
    conn: &Conn,
    file: &str,
    scan: &Scan,
    manifest: &str,
    lease: &ImportLease,
) -> Result<Targets> {
    let v = crate::json::parse(manifest, "manifest.json")?;
    let root = crate::json::Node::new(&v, "manifest.json");
    let member = |path: &str| {
        let path = clean(path);
        let path = scan.links.get(&path).cloned().unwrap_or(path);
        scan.members.get(&path).map(|m| (path, m))
    };
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    let mut manifests = Vec::new();
    for image in root.items()? {
        let config = image.need("Config")?.string()?;
        let (config_path, config_m) = member(&config).ok_or_else(|| {
            Error::of(
                Kind::InvalidArgument,
                format!("{file}: image config {config:?} not found"),
            )
        })?;
        wanted.insert(config_path, config_m.digest.clone());
        let mut layers = Vec::new();
        for l in image.need("Layers")?.items()? {
            let l = l.string()?;
            let (path, m) = member(&l).ok_or_else(|| {
                Error::of(
                    Kind::InvalidArgument,
                    format!("{file}: failed to resolve layers: layer {l:?} not found"),
                )
            })?;
            wanted.insert(path, m.digest.clone());
            let media_type = if m.gzip {
                DOCKER_LAYER_GZIP
            } else {
                DOCKER_LAYER
            };
            layers.push(go_descriptor(media_type, &m.digest, m.size));
        }
        let body = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{DOCKER_MANIFEST}\",\"config\":{},\"layers\":[{}]}}",
            go_descriptor(DOCKER_CONFIG, &config_m.digest, config_m.size),
            layers.join(",")
        );
        let tags = match image.get("RepoTags")? {
            Some(t) => t.strings()?,
            None => Vec::new(),
        };
        manifests.push((body, tags));
    }
    write_members(conn, file, scan, lease, |path| wanted.get(path).cloned())?;
    for (body, tags) in manifests {
        let digest = crate::image::digest::Digest::of(body.as_bytes()).to_string();
        lease.hold(&digest)?;
        write_blob(
            conn,
            &digest,
            body.len() as i64,
            &mut body.as_bytes(),
            "manifest",
        )?;
        let target = crate::proto::types::Descriptor {
            media_type: DOCKER_MANIFEST.to_string(),
            digest,
            size: body.len() as i64,
            ..Default::default()
        };
        if tags.is_empty() {
            out.push((target.clone(), Names::default()));
        }
        for tag in tags {
            let name = crate::registry::reference::Reference::parse(&tag)
                .map_err(|e| e.wrap(format!("normalize image ref {tag:?}")))?
                .to_string();
            out.push((
                target.clone(),
                Names {
                    image: Some(name),
                    reference: None,
                },
            ));
        }
    }
    Ok(out)
}

/// A descriptor as Go's json writes containerd's (field order, no empties).
fn go_descriptor(media_type: &str, digest: &str, size: u64) -> String {
    format!("{{\"mediaType\":\"{media_type}\",\"digest\":\"{digest}\",\"size\":{size}}}")
}

/// The lease an import holds its blobs under, as ctr's client takes one:
/// the garbage collector leaves them alone until the images reference
/// them; it expires by itself (a day) if ctr dies before releasing it.
struct ImportLease<'a> {
    conn: &'a Conn,
    id: String,
}

impl<'a> ImportLease<'a> {
    fn take(conn: &'a Conn) -> Result<ImportLease<'a>> {
        let (secs, nanos) = crate::time::now();
        let id = format!("ctr-import-{secs}{nanos:09}-{}", std::process::id());
        let mut labels = BTreeMap::new();
        labels.insert(
            "containerd.io/gc.expire".to_string(),
            crate::time::rfc3339_nano(secs + 24 * 3600, 0),
        );
        let _: leases::CreateResponse = conn.call(
            leases::SERVICE,
            "Create",
            &leases::CreateRequest {
                id: id.clone(),
                labels,
            },
        )?;
        Ok(ImportLease { conn, id })
    }

    /// Hold the blob `digest` (before it is written, so no collection
    /// between its commit and its image can take it).
    fn hold(&self, digest: &str) -> Result<()> {
        let _: crate::proto::types::Empty = self.conn.call(
            leases::SERVICE,
            "AddResource",
            &leases::AddResourceRequest {
                id: self.id.clone(),
                resource: Some(leases::Resource {
                    id: digest.to_string(),
                    r#type: "content".to_string(),
                }),
            },
        )?;
        Ok(())
    }

    fn release(self) {}
}

impl Drop for ImportLease<'_> {
    fn drop(&mut self) {
        let _: std::result::Result<crate::proto::types::Empty, Status> = self.conn.call(
            leases::SERVICE,
            "Delete",
            &leases::DeleteRequest {
                id: self.id.clone(),
                sync: false,
            },
        );
    }
}

/// Write one blob through Content.Write, skipped when the store has it.
fn write_blob(
    conn: &Conn,
    digest: &str,
    total: i64,
    data: &mut impl Read,
    what: &str,
) -> Result<()> {
    use content::write_action as act;
    let req = |action, offset: i64, data: Vec<u8>| content::WriteContentRequest {
        action,
        r#ref: format!("import-{digest}"),
        total,
        expected: digest.to_string(),
        offset,
        data,
        labels: BTreeMap::new(),
    };
    let failed = |s: Status| Error::from(s).wrap(digest);
    let stream = conn.stream_both(content::SERVICE, "Write", &req(act::STAT, 0, Vec::new()))?;
    match stream.recv(None) {
        Err(s) if s.code == Code::AlreadyExists => return Ok(()),
        Err(s) => return Err(failed(s)),
        Ok(_) => {}
    }
    let mut offset = 0i64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = data.read(&mut buf).map_err(|e| Error::from(e).wrap(what))?;
        let last = offset + n as i64 >= total;
        let action = if last { act::COMMIT } else { act::WRITE };
        stream.send(&prost::Message::encode_to_vec(&req(
            action,
            offset,
            buf[..n].to_vec(),
        )))?;
        stream.recv(None).map_err(failed)?;
        offset += n as i64;
        if last {
            break;
        }
        if n == 0 {
            return Err(Error::new(format!("{what}: short blob")));
        }
    }
    let _ = stream.close_send();
    Ok(())
}

/// Record (or repoint) the image `name`.
fn put_image(conn: &Conn, name: &str, target: crate::proto::types::Descriptor) -> Result<()> {
    let image = images::Image {
        name: name.to_string(),
        target: Some(target),
        ..Default::default()
    };
    let r: std::result::Result<images::CreateImageResponse, Status> = conn.call(
        images::SERVICE,
        "Create",
        &images::CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        },
    );
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code == Code::AlreadyExists => {
            let _: images::UpdateImageResponse = conn.call(
                images::SERVICE,
                "Update",
                &images::UpdateImageRequest {
                    image: Some(image),
                    update_mask: None,
                    source_date_epoch: None,
                },
            )?;
            Ok(())
        }
        Err(s) => Err(s.into()),
    }
}
