//! The daemon's objects as ctr looks them up: images, containers, tasks
//! and blobs, with ctr's wording when one is missing, and the deletes
//! that more than one command performs.

use super::client::Conn;
use super::format;
use crate::error::{Error, Kind, Result};
use crate::image::oci::{self, Document, ImageConfig, Platform};
use crate::proto::services::{containers, content, images, namespaces, snapshots, tasks};
use crate::proto::types::{Descriptor, Empty};
use crate::ttrpc::{Code, Status};
use std::io::Read;

/// The task status containerd calls STOPPED.
pub const STATUS_STOPPED: i32 = 3;

/// The largest JSON document (index, manifest, config) read into memory;
/// layers are streamed.
const MAX_DOCUMENT: usize = 8 << 20;

fn not_found(s: &Status) -> bool {
    s.code == Code::NotFound
}

/// The snapshotter containerd's client names when nothing else does
/// (`containerd.DefaultSnapshotter` on Linux).
pub const CTR_DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// The namespace label naming the namespace's default snapshotter
/// (containerd's `defaults.DefaultSnapshotterNSLabel`).
pub const NS_SNAPSHOTTER_LABEL: &str = "containerd.io/defaults/snapshotter";

/// The snapshotter a command names: its `--snapshotter` (or
/// $CONTAINERD_SNAPSHOTTER), else the namespace's default label, as
/// containerd's client resolves it; None when neither names one.
pub fn named_snapshotter(conn: &Conn, flag: Option<&str>) -> Result<Option<String>> {
    if let Some(f) = flag.filter(|f| !f.is_empty()) {
        return Ok(Some(f.to_string()));
    }
    let r: std::result::Result<namespaces::GetNamespaceResponse, Status> = conn.call(
        namespaces::SERVICE,
        "Get",
        &namespaces::GetNamespaceRequest {
            name: conn.namespace().to_string(),
        },
    );
    match r {
        Ok(r) => Ok(r
            .namespace
            .and_then(|n| n.labels.get(NS_SNAPSHOTTER_LABEL).cloned())
            .filter(|l| !l.is_empty())),
        // A namespace is made by its first use: it has no labels yet.
        Err(s) if not_found(&s) => Ok(None),
        Err(s) => Err(s.into()),
    }
}

/// Whether to ask again naming [`CTR_DEFAULT_SNAPSHOTTER`]: a call that
/// named no snapshotter was refused as an invalid argument. skiff's
/// daemon takes "" as its own default (configured, or native on a kernel
/// without overlayfs), which only it knows, so ctr sends "" first;
/// containerd's server has no default (its client always names one, and
/// "overlayfs" unless told otherwise), so it refuses "".
pub fn retry_with_ctr_default(sent: &str, s: &Status) -> bool {
    sent.is_empty() && s.code == Code::InvalidArgument
}

pub fn get_image(conn: &Conn, name: &str) -> Result<images::Image> {
    let missing = || Error::of(Kind::NotFound, format!("image \"{name}\": not found"));
    let r: std::result::Result<images::GetImageResponse, Status> = conn.call(
        images::SERVICE,
        "Get",
        &images::GetImageRequest {
            name: name.to_string(),
        },
    );
    match r {
        Ok(r) => r.image.ok_or_else(missing),
        Err(s) if not_found(&s) => Err(missing()),
        Err(s) => Err(s.into()),
    }
}

pub fn list_images(conn: &Conn, filters: &[String]) -> Result<Vec<images::Image>> {
    let r: images::ListImagesResponse = conn.call(
        images::SERVICE,
        "List",
        &images::ListImagesRequest {
            filters: filters.to_vec(),
        },
    )?;
    Ok(r.images)
}

pub fn get_container(conn: &Conn, id: &str) -> Result<containers::Container> {
    let missing = || {
        Error::of(
            Kind::NotFound,
            format!(
                "container \"{id}\" in namespace \"{}\": not found",
                conn.namespace()
            ),
        )
    };
    let r: std::result::Result<containers::GetContainerResponse, Status> = conn.call(
        containers::SERVICE,
        "Get",
        &containers::GetContainerRequest { id: id.to_string() },
    );
    match r {
        Ok(r) => r.container.ok_or_else(missing),
        Err(s) if not_found(&s) => Err(missing()),
        Err(s) => Err(s.into()),
    }
}

/// The task of a container, None when it has none.
pub fn get_task(conn: &Conn, id: &str) -> Result<Option<tasks::Process>> {
    let r: std::result::Result<tasks::GetResponse, Status> = conn.call(
        tasks::SERVICE,
        "Get",
        &tasks::GetRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        },
    );
    match r {
        Ok(r) => Ok(r.process),
        Err(s) if not_found(&s) => Ok(None),
        Err(s) => Err(s.into()),
    }
}

/// The task of an existing container, or ctr's message for what is missing.
pub fn need_task(conn: &Conn, id: &str) -> Result<tasks::Process> {
    get_container(conn, id)?;
    get_task(conn, id)?.ok_or_else(|| {
        Error::of(
            Kind::NotFound,
            format!("no running task found: task {id} not found"),
        )
    })
}

/// Delete a task; the fifos its creator left (a detached run) go with it.
pub fn delete_task(conn: &Conn, id: &str) -> Result<tasks::DeleteResponse> {
    let task = get_task(conn, id).ok().flatten();
    let r: tasks::DeleteResponse = conn.call(
        tasks::SERVICE,
        "Delete",
        &tasks::DeleteTaskRequest {
            container_id: id.to_string(),
        },
    )?;
    if let Some(t) = task {
        super::cio::remove_fifos(super::cio::FIFO_ROOT, id, &[&t.stdin, &t.stdout, &t.stderr]);
    }
    Ok(r)
}

/// Wait for a process to exit (no deadline: it runs as long as it runs).
pub fn wait_task(conn: &Conn, id: &str, exec_id: &str) -> Result<u32> {
    let r: tasks::WaitResponse = conn.call_unbounded(
        tasks::SERVICE,
        "Wait",
        &tasks::WaitRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        },
    )?;
    Ok(r.exit_status)
}

/// Delete a container as ctr does: refused while its task is not stopped;
/// its snapshot goes with it unless kept.
pub fn delete_container(conn: &Conn, id: &str, with_snapshot: bool) -> Result<()> {
    let c = get_container(conn, id)?;
    if let Some(task) = get_task(conn, id)? {
        if task.status != STATUS_STOPPED {
            return Err(Error::of(
                Kind::FailedPrecondition,
                format!(
                    "cannot delete a non stopped container: {{{} {} 0001-01-01 00:00:00 +0000 UTC}}",
                    format::status_word(task.status).to_lowercase(),
                    task.exit_status
                ),
            ));
        }
        delete_task(conn, id)?;
    }
    if with_snapshot && !c.snapshot_key.is_empty() {
        let r: std::result::Result<Empty, Status> = conn.call(
            snapshots::SERVICE,
            "Remove",
            &snapshots::RemoveSnapshotRequest {
                snapshotter: c.snapshotter.clone(),
                key: c.snapshot_key.clone(),
            },
        );
        match r {
            Ok(_) => {}
            Err(s) if not_found(&s) => {}
            Err(s) => return Err(s.into()),
        }
    }
    let _: Empty = conn.call(
        containers::SERVICE,
        "Delete",
        &containers::DeleteContainerRequest { id: id.to_string() },
    )?;
    Ok(())
}

/// A blob of the content store as a reader: Content.Read's chunks are
/// handed on as they come, so a layer never sits whole in memory.
pub struct BlobReader {
    conn: Conn,
    stream: crate::grpc::ClientStream,
    chunk: Vec<u8>,
    at: usize,
    done: bool,
}

impl BlobReader {
    pub fn open(conn: &Conn, digest: &str) -> Result<BlobReader> {
        let stream = conn.stream(
            content::SERVICE,
            "Read",
            &content::ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            },
        )?;
        Ok(BlobReader {
            conn: conn.clone(),
            stream,
            chunk: Vec::new(),
            at: 0,
            done: false,
        })
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let io = |s: Status| std::io::Error::other(s.message);
        while self.at == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self
                .stream
                .recv(self.conn.stream_timeout().map_err(io)?)
                .map_err(io)?
            {
                None => self.done = true,
                Some(m) => {
                    let r = <content::ReadContentResponse as prost::Message>::decode(&m[..])
                        .map_err(|e| {
                            std::io::Error::other(format!("decode ReadContentResponse: {e}"))
                        })?;
                    self.chunk = r.data;
                    self.at = 0;
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A small blob (a JSON document) read whole, refused past `MAX_DOCUMENT`.
pub fn read_document(conn: &Conn, digest: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    BlobReader::open(conn, digest)?
        .take(MAX_DOCUMENT as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::new(format!("read {digest}: {e}")))?;
    if data.len() > MAX_DOCUMENT {
        return Err(Error::new(format!(
            "{digest}: larger than {MAX_DOCUMENT} bytes: not an image document"
        )));
    }
    Ok(data)
}

/// What `images ls` shows beyond the record: the size of what the host
/// platform needs and the platforms the image has.
pub struct ImageFacts {
    pub size: i64,
    pub platforms: Vec<String>,
    pub config: Option<ImageConfig>,
}

/// The facts of an image, None when its content is missing (ctr prints `-`).
pub fn image_facts(conn: &Conn, target: &Descriptor) -> Option<ImageFacts> {
    let data = read_document(conn, &target.digest).ok()?;
    let doc = oci::parse_document(&data, &target.media_type, &target.digest).ok()?;
    let mut size = target.size;
    let (manifest, platforms) = match doc {
        Document::Index(list) => {
            let mut platforms: Vec<String> = list
                .iter()
                .filter_map(|d| d.platform.as_ref().map(format::platform))
                .collect();
            platforms.sort();
            platforms.dedup();
            let d = oci::select_platform(&list, &Platform::host())?;
            size += d.size as i64;
            let data = read_document(conn, &d.digest.to_string()).ok()?;
            match oci::parse_document(&data, &d.media_type, "manifest").ok()? {
                Document::Manifest(m) => (m, platforms),
                Document::Index(_) => return None,
            }
        }
        Document::Manifest(m) => (m, Vec::new()),
    };
    size += manifest.config.size as i64;
    size += manifest.layers.iter().map(|l| l.size as i64).sum::<i64>();
    let config = read_document(conn, &manifest.config.digest.to_string())
        .ok()
        .and_then(|d| oci::parse_config(&d, "image config").ok());
    let platforms = if platforms.is_empty() {
        config
            .as_ref()
            .map(|c| vec![format::platform(&c.platform)])
            .unwrap_or_default()
    } else {
        platforms
    };
    Some(ImageFacts {
        size,
        platforms,
        config,
    })
}
