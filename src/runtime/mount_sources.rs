//! Bind mount sources opened by the runtime before the container's user
//! namespace takes effect. Inside that namespace the init is root of
//! nothing on the host: a source under a directory only the host's root may
//! enter (mode 0700, owned by root) is out of its reach. The runtime clones
//! each source as a detached mount tree (open_tree), the init inherits the
//! fds and attaches the trees where the config says.

use crate::error::{Context, Result};
use crate::oci::spec::{Mount, Spec};
use crate::sys::mount as m;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// One detached tree per bind mount of the config (by index), or none.
#[derive(Default)]
pub(crate) struct MountSources(Vec<Option<OwnedFd>>);

impl MountSources {
    /// Clone the source of every bind mount of `spec`.
    pub(crate) fn open(spec: &Spec, bundle: &Path) -> Result<MountSources> {
        let mut trees = Vec::with_capacity(spec.mounts.len());
        for (i, mnt) in spec.mounts.iter().enumerate() {
            if !is_bind(mnt) {
                trees.push(None);
                continue;
            }
            let src = source_path(bundle, mnt);
            let recursive = mnt.options.iter().any(|o| o == "rbind");
            let tree = m::clone_tree(&src.to_string_lossy(), recursive)
                .with_context(|| format!("bind source {}", src.display()))
                .map_err(|e| e.wrap(format!("mounts[{i}] {}", mnt.destination)))?;
            trees.push(Some(tree));
        }
        Ok(MountSources(trees))
    }

    /// The tree cloned for mount `index`, if any.
    pub(crate) fn get(&self, index: usize) -> Option<&OwnedFd> {
        self.0.get(index).and_then(Option::as_ref)
    }
}

pub(crate) fn is_bind(mnt: &Mount) -> bool {
    mnt.kind == "bind" || mnt.options.iter().any(|o| o == "bind" || o == "rbind")
}

/// A bind source as the config names it: absolute, or relative to the bundle.
pub(crate) fn source_path(bundle: &Path, mnt: &Mount) -> PathBuf {
    if mnt.source.starts_with('/') {
        Path::new(&mnt.source).to_path_buf()
    } else {
        bundle.join(&mnt.source)
    }
}
