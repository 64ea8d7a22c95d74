//! Image archives as `ctr images export` writes and `ctr images import`
//! reads them: an OCI layout (oci-layout, index.json, blobs/sha256/...)
//! plus Docker's manifest.json.

use super::client::Conn;
use super::objects::{self, BlobReader};
use crate::error::{Error, Kind, Result};
use crate::image::oci::{parse_document, select_platform, Document, Platform};
use crate::proto::services::{content, images};
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

/// How imported images are named.
pub struct ImportOptions<'a> {
    pub base_name: Option<&'a str>,
    pub digests: bool,
}

/// An image recorded by an import: its name and target digest.
pub struct Imported {
    pub name: String,
    pub digest: String,
}

/// Import the archive at `file`: every blob goes into the store through
/// Content.Write (verified there against its name), then each image of
/// index.json is recorded under its `io.containerd.image.name`, or
/// `--base-name:ref.name`.
pub fn import(conn: &Conn, file: &str, opts: &ImportOptions) -> Result<Vec<Imported>> {
    let open =
        || std::fs::File::open(file).map_err(|e| Error::from(e).wrap(format!("open {file}")));
    let bad = |e: std::io::Error| Error::from(e).wrap(file);
    // First pass: the index; second: the blobs, streamed.
    let mut index = None;
    let mut ar = tar::Archive::new(open()?);
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let path = e
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if path.trim_start_matches("./") == "index.json" {
            let mut text = String::new();
            e.read_to_string(&mut text)
                .map_err(|e| Error::from(e).wrap(format!("{file}: index.json")))?;
            index = Some(text);
        }
    }
    let index = index.ok_or_else(|| {
        Error::of(
            Kind::InvalidArgument,
            format!("{file}: no index.json (not an OCI archive)"),
        )
    })?;
    let mut ar = tar::Archive::new(open()?);
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let path = e
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let Some(hex) = path.trim_start_matches("./").strip_prefix("blobs/sha256/") else {
            continue;
        };
        if hex.is_empty() || e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let digest = format!("sha256:{hex}");
        let total = e.header().size().unwrap_or(0) as i64;
        write_blob(conn, &digest, total, &mut e, &format!("{file}: {path}"))?;
    }
    // The images the index names.
    let v = crate::json::parse(&index, "index.json")?;
    let root = crate::json::Node::new(&v, "index.json");
    let manifests = root.need("manifests").and_then(|m| m.items())?;
    let mut done = Vec::new();
    for m in manifests {
        let d = crate::image::oci::Descriptor::from_node(&m)?;
        let name = match (
            d.annotation("io.containerd.image.name"),
            d.annotation("org.opencontainers.image.ref.name"),
            opts.base_name,
        ) {
            (Some(n), _, None) => n.to_string(),
            (Some(n), _, Some(b)) if n.starts_with(b) => n.to_string(),
            (_, Some(r), Some(b)) => format!("{b}:{r}"),
            (None, Some(r), None) if r.contains(['/', ':']) => r.to_string(),
            _ if opts.digests => format!("import-{}@{}", crate::time::now().0, d.digest),
            _ => continue,
        };
        let target = crate::proto::types::Descriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.to_string(),
            size: d.size as i64,
            ..Default::default()
        };
        put_image(conn, &name, target)?;
        done.push(Imported {
            name,
            digest: d.digest.to_string(),
        });
    }
    Ok(done)
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
