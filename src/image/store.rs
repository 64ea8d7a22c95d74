//! The local content store, itself an OCI image layout: `blobs/<alg>/<hex>`
//! holds verified blobs only; `ingest/` holds partial downloads (kept for
//! resume); `index.json` names the pulled images. A blob enters `blobs/`
//! by write-temp, fsync, rename, after its digest and size were checked.
//!
//! # Who collects garbage
//! The store may be shared by skiff-fetch and the daemon (whose metadata
//! names blobs skiff-fetch knows nothing of). There is one collector:
//! - until the daemon first uses the store, `skiff-fetch rm` untags and
//!   then deletes the blobs no tagged image reaches ([`Store::remove`]);
//! - once the daemon has used it ([`Store::delegate_collection`] leaves
//!   the marker file `gc-by-daemon`), `rm` only untags, and the daemon's
//!   collector (`metadata::gc`) is the only one: it counts the images in
//!   `index.json` as roots, so skiff-fetch's images stay.
//!
//! Either collector holds `gc.lock` exclusively while it marks and sweeps;
//! a writer holds it shared ([`Store::pin`]) from its first blob until its
//! image is tagged, so no collection sees its blobs untagged.

use crate::error::{Context, Error, Result};
use crate::image::digest::{self, Digest, Verifier};
use crate::image::oci::{self, Descriptor, REF_NAME};
use crate::json::{self, Node, Writer};
use crate::record;
use crate::sys::fs::{lock_file, LockMode};
use rustix::fs::{flock, FlockOperation};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        let s = Store {
            root: root.to_path_buf(),
        };
        for d in ["blobs/sha256", "blobs/sha512", "ingest"] {
            fs::create_dir_all(root.join(d))
                .with_context(|| format!("create store {}", root.join(d).display()))?;
        }
        init_layout(root)?;
        Ok(s)
    }

    /// Open an existing store without creating anything.
    pub fn open_existing(root: &Path) -> Result<Store> {
        if !root.join("index.json").exists() {
            return Err(Error::new(format!(
                "store {}: no index.json (nothing pulled yet)",
                root.display()
            )));
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    fn ingest_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}-{}", d.algorithm().name(), d.hex()))
    }

    /// Is the blob present (with the expected size)?
    pub fn has(&self, desc: &Descriptor) -> bool {
        fs::symlink_metadata(self.blob_path(&desc.digest))
            .is_ok_and(|m| m.is_file() && m.len() == desc.size)
    }

    /// Read a small blob (manifest, config) and check it again.
    pub fn read(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > oci::MAX_DOCUMENT {
            return Err(Error::new(format!(
                "blob {}: {} bytes is too large to read into memory",
                desc.digest, desc.size
            )));
        }
        let path = self.blob_path(&desc.digest);
        let data = fs::read(&path).with_context(|| format!("read blob {}", desc.digest))?;
        digest::verify_bytes(&data, &desc.digest, desc.size)?;
        Ok(data)
    }

    /// Store an in-memory blob after checking it.
    pub fn put(&self, desc: &Descriptor, data: &[u8]) -> Result<()> {
        digest::verify_bytes(data, &desc.digest, desc.size)?;
        if self.has(desc) {
            return Ok(());
        }
        // Unique per call: threads may put the same blob at once.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = self.root.join("ingest").join(format!(
            "put-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            desc.digest.hex()
        ));
        let res = (|| -> Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, self.blob_path(&desc.digest))?;
            sync_dir(&self.blob_path(&desc.digest))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.with_context(|| format!("store blob {}", desc.digest))
    }

    /// Start (or resume) writing a blob. Holds an exclusive lock on the
    /// partial file so two pulls do not write the same blob at once.
    pub fn ingest(&self, desc: &Descriptor) -> Result<Ingest> {
        let path = self.ingest_path(&desc.digest);
        let what = || format!("ingest blob {}", desc.digest);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(what)?;
        flock(&file, FlockOperation::LockExclusive).with_context(what)?;
        let mut verifier = Verifier::new(
            file.try_clone().with_context(what)?,
            &desc.digest,
            desc.size,
        );
        let have = file.metadata().with_context(what)?.len();
        if have > desc.size {
            file.set_len(0).with_context(what)?;
        } else if have > 0 {
            // Hash what an earlier, interrupted pull left.
            let mut buf = vec![0u8; 256 << 10];
            let mut left = have;
            file.seek(SeekFrom::Start(0)).with_context(what)?;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = file.read(&mut buf[..want]).with_context(what)?;
                if n == 0 {
                    break;
                }
                verifier.absorb(&buf[..n]);
                left -= n as u64;
            }
        }
        let offset = verifier.written();
        file.set_len(offset).with_context(what)?;
        file.seek(SeekFrom::Start(offset)).with_context(what)?;
        // The verifier writes through its own handle; move it to the end too.
        Ok(Ingest {
            path,
            dest: self.blob_path(&desc.digest),
            verifier,
            _lock: file,
            digest: desc.digest.clone(),
        })
    }

    /// Forget a partial download.
    pub fn discard_partial(&self, d: &Digest) {
        let _ = fs::remove_file(self.ingest_path(d));
    }

    // ---- the image index -------------------------------------------------

    /// Serializes writers of `index.json`.
    fn lock(&self) -> Result<File> {
        Ok(lock_file(&self.root.join("lock"), LockMode::Exclusive, true)?.expect("waited"))
    }

    // ---- garbage collection ------------------------------------------------

    /// Keep collectors away while blobs are written and until they are
    /// tagged: hold the returned guard for the whole pull. Pulls pin
    /// together; a collector waits for them all (and they for it).
    pub fn pin(&self) -> Result<CollectionLock> {
        let f = lock_file(&self.root.join(GC_LOCK), LockMode::Shared, true)?;
        Ok(CollectionLock(f.expect("waited")))
    }

    /// The collector's side of [`Store::pin`]: waits until no pull is in
    /// flight and keeps new ones out while held.
    pub fn lock_collection(&self) -> Result<CollectionLock> {
        let f = lock_file(&self.root.join(GC_LOCK), LockMode::Exclusive, true)?;
        Ok(CollectionLock(f.expect("waited")))
    }

    /// Hand garbage collection to the daemon for good: from now on
    /// [`Store::remove`] only untags. The daemon calls this before it
    /// writes or names anything in the store. Not to be called while
    /// holding [`Store::lock_collection`] (it takes it: a `rm` collecting
    /// now finishes first).
    pub fn delegate_collection(&self) -> Result<()> {
        let p = self.root.join(GC_DELEGATED);
        if p.exists() {
            return Ok(());
        }
        let _c = self.lock_collection()?;
        write_atomic(&p, b"the daemon collects garbage in this store\n")
    }

    /// Has the daemon taken over garbage collection?
    pub fn collection_delegated(&self) -> bool {
        self.root.join(GC_DELEGATED).exists()
    }

    /// The images in the store: manifest descriptors named by reference.
    pub fn images(&self) -> Result<Vec<Descriptor>> {
        read_index(&self.root.join("index.json"))
    }

    /// Find an image by its reference name.
    pub fn find(&self, reference: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .images()?
            .into_iter()
            .find(|d| d.annotation(REF_NAME) == Some(reference)))
    }

    /// Record `desc` (which must carry a ref.name annotation) in the index,
    /// replacing an entry of the same name.
    pub fn tag(&self, desc: &Descriptor) -> Result<()> {
        let _l = self.lock()?;
        let name = desc.annotation(REF_NAME).unwrap_or_default();
        let mut list = self.images()?;
        list.retain(|d| d.annotation(REF_NAME) != Some(name));
        list.push(desc.clone());
        write_index(&self.root.join("index.json"), &list)
    }

    /// Remove an image by reference, then, unless the daemon collects
    /// garbage here, delete blobs no image uses (waiting for pulls in
    /// flight). Returns false when no image had that name.
    pub fn remove(&self, reference: &str) -> Result<bool> {
        {
            let _l = self.lock()?;
            let mut list = self.images()?;
            let before = list.len();
            list.retain(|d| d.annotation(REF_NAME) != Some(reference));
            if list.len() == before {
                return Ok(false);
            }
            write_index(&self.root.join("index.json"), &list)?;
        }
        if self.collection_delegated() {
            return Ok(true);
        }
        // The index lock is released first: a pull holds its pin while it
        // waits for that lock to tag. Asked again under the collection
        // lock, which delegation takes.
        let _c = self.lock_collection()?;
        if !self.collection_delegated() {
            self.gc(&self.images()?)?;
        }
        Ok(true)
    }

    /// Delete every blob not reachable from `roots`.
    fn gc(&self, roots: &[Descriptor]) -> Result<()> {
        use crate::image::content;
        let mut keep: HashSet<Digest> = HashSet::new();
        let mut todo: Vec<Descriptor> = roots.to_vec();
        while let Some(d) = todo.pop() {
            if keep.insert(d.digest.clone()) {
                // A document that cannot be read keeps nothing more.
                todo.extend(content::children(self, &d).unwrap_or_default());
            }
        }
        for b in content::list_blobs(self)? {
            if !keep.contains(&b.digest) {
                content::delete_blob(self, &b.digest).or_else(|e| match e.kind() {
                    crate::Kind::NotFound => Ok(()),
                    _ => Err(e),
                })?;
            }
        }
        Ok(())
    }
}

/// The marker file of [`Store::delegate_collection`].
const GC_DELEGATED: &str = "gc-by-daemon";
/// Held shared by writers, exclusively by a collector.
const GC_LOCK: &str = "gc.lock";

/// A hold on the store's collection lock (see [`Store::pin`]).
pub struct CollectionLock(#[allow(dead_code)] File);

/// A blob being written into the store.
pub struct Ingest {
    path: PathBuf,
    dest: PathBuf,
    verifier: Verifier<File>,
    _lock: File,
    digest: Digest,
}

impl Ingest {
    /// Bytes already present (resume from here).
    pub fn offset(&self) -> u64 {
        self.verifier.written()
    }

    pub fn writer(&mut self) -> &mut Verifier<File> {
        &mut self.verifier
    }

    /// Verify, fsync and move into place. On a mismatch the partial file is
    /// removed: it can never become valid.
    pub fn commit(self) -> Result<()> {
        let Ingest {
            path,
            dest,
            verifier,
            _lock,
            digest,
        } = self;
        let file = match verifier.finish() {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        };
        let what = || format!("store blob {digest}");
        file.sync_all().with_context(what)?;
        fs::rename(&path, &dest).with_context(what)?;
        sync_dir(&dest).with_context(what)
    }
}

/// Make a rename into the directory of `file_in_dir` durable.
fn sync_dir(file_in_dir: &Path) -> Result<()> {
    match file_in_dir.parent() {
        Some(dir) => record::sync_dir(dir),
        None => Ok(()),
    }
}

/// Create `oci-layout` and an empty `index.json` when absent.
pub fn init_layout(root: &Path) -> Result<()> {
    let layout = root.join("oci-layout");
    if !layout.exists() {
        write_atomic(&layout, b"{\"imageLayoutVersion\":\"1.0.0\"}")?;
    }
    let index = root.join("index.json");
    if !index.exists() {
        write_index(&index, &[])?;
    }
    Ok(())
}

pub fn read_index(path: &Path) -> Result<Vec<Descriptor>> {
    let what = path.display().to_string();
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::from(e).wrap(format!("read {what}"))),
    };
    let v = json::parse(&text, &what)?;
    let root = Node::new(&v, "");
    let list = root.get("manifests").map_err(|e| e.wrap(&what))?;
    match list {
        Some(l) => l
            .items()?
            .iter()
            .map(Descriptor::from_node)
            .collect::<Result<_>>()
            .map_err(|e| e.wrap(&what)),
        None => Ok(Vec::new()),
    }
}

pub fn write_index(path: &Path, list: &[Descriptor]) -> Result<()> {
    let mut w = Writer::pretty();
    w.begin_object();
    w.key("schemaVersion").num(2);
    w.key("mediaType").str(oci::OCI_INDEX);
    w.key("manifests").array();
    for d in list {
        d.write(&mut w);
    }
    w.end_array();
    w.end_object();
    let mut text = w.finish();
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// write-temp, fsync, rename, fsync(dir) ([`record::write`]; safe from
/// several threads at once).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    record::write(path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("skiff-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    fn desc(data: &[u8]) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: Digest::of(data),
            size: data.len() as u64,
            platform: None,
            annotations: vec![(REF_NAME.into(), "x/y:z".into())],
        }
    }

    #[test]
    fn ingest_verifies_resumes_and_tags() {
        struct Cleanup(PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = fs::remove_dir_all(&self.0);
            }
        }
        let root = tmpdir("ingest");
        let _cleanup = Cleanup(root.clone());
        let s = Store::open(&root).unwrap();
        let d = desc(b"hello world");
        let mut i = s.ingest(&d).unwrap();
        i.writer().write_all(b"hello").unwrap();
        drop(i);
        assert!(!s.has(&d));
        let mut i = s.ingest(&d).unwrap();
        assert_eq!(i.offset(), 5);
        i.writer().write_all(b" world").unwrap();
        i.commit().unwrap();
        assert!(s.has(&d));

        let bad = desc(b"other");
        let mut i = s.ingest(&bad).unwrap();
        i.writer().write_all(b"OTHER").unwrap();
        assert!(i
            .commit()
            .unwrap_err()
            .message()
            .contains("digest mismatch"));
        assert!(!s.has(&bad));
        assert!(!s.ingest_path(&bad.digest).exists());

        s.tag(&d).unwrap();
        assert_eq!(s.find("x/y:z").unwrap().unwrap().digest, d.digest);
        assert!(s.remove("x/y:z").unwrap());
        assert!(!s.has(&d));
        assert!(!s.remove("x/y:z").unwrap());
        fs::remove_dir_all(&root).unwrap();
    }
}
