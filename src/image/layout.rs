//! Write an OCI image layout (`oci-layout`, `index.json`, `blobs/`) holding
//! one pulled image, merged into the layout when it exists.

use crate::error::{Context, Result};
use crate::image::oci::{Descriptor, REF_NAME};
use crate::image::store::{self, Store};
use std::fs;
use std::path::Path;

/// Copy (hardlink when possible) the image's blobs from the store and name
/// the manifest `ref_name` in the layout's index.
pub fn write(
    dir: &Path,
    store: &Store,
    manifest: &Descriptor,
    blobs: &[&Descriptor],
    ref_name: &str,
) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create layout {}", dir.display()))?;
    store::init_layout(dir)?;
    for d in blobs.iter().copied().chain(std::iter::once(manifest)) {
        let alg_dir = dir.join("blobs").join(d.digest.algorithm().name());
        fs::create_dir_all(&alg_dir).with_context(|| format!("create {}", alg_dir.display()))?;
        let dest = alg_dir.join(d.digest.hex());
        if fs::symlink_metadata(&dest).is_ok_and(|m| m.len() == d.size) {
            continue;
        }
        let src = store.blob_path(&d.digest);
        let tmp = alg_dir.join(format!(".{}.tmp-{}", d.digest.hex(), std::process::id()));
        let _ = fs::remove_file(&tmp);
        // A copy, not a hard link: a write to the layout must never change
        // a verified blob of the store (copy_file_range makes it cheap, and
        // a reflink where the filesystem can).
        fs::copy(&src, &tmp)
            .with_context(|| format!("copy blob {} into {}", d.digest, dir.display()))?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &dest)
            .with_context(|| format!("write blob {} into {}", d.digest, dir.display()))?;
    }
    let index = dir.join("index.json");
    let mut list = store::read_index(&index)?;
    list.retain(|d| d.annotation(REF_NAME) != Some(ref_name));
    let mut entry = manifest.clone();
    entry.annotations = vec![(REF_NAME.to_string(), ref_name.to_string())];
    list.push(entry);
    store::write_index(&index, &list)
}
