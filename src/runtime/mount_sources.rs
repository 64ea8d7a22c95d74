//! Bind mount sources opened by the runtime for an init in a user
//! namespace. Inside that namespace the init is root of nothing on the
//! host: a source under a directory only the host's root may enter (mode
//! 0700, owned by root) is out of its reach. So the runtime, still the
//! host's root, opens each source (O_PATH) and passes the fds to the init,
//! which binds through them.
//!
//! The runtime opens them from inside the init's new mount namespace: the
//! mounts there are the namespace's own copies, which the kernel locked
//! (a read-only host mount stays read-only, mounts on top stay on top) and
//! turned from shared into slaves of the host's. A bind of one of those
//! keeps both. Opened in the runtime's namespace, a source would be the
//! host's own mount: its bind would carry no locks and would join the
//! host's peer group, so the container could make a read-only bind
//! writable and its mounts below the bind would show up on the host.

use crate::error::{Context, Result};
use crate::oci::spec::{Mount, Spec};
use crate::sys::ns;
use rustix::fs::{Mode, OFlags};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// One O_PATH fd per bind mount of the config (by index), or none.
#[derive(Default)]
pub(crate) struct MountSources(Vec<Option<OwnedFd>>);

impl MountSources {
    /// Open the source of every bind mount of `spec` as seen in the mount
    /// namespace behind `mnt_ns`: (index in `spec.mounts`, fd).
    pub(crate) fn open_in(
        mnt_ns: &OwnedFd,
        spec: &Spec,
        bundle: &Path,
    ) -> Result<Vec<(usize, OwnedFd)>> {
        let wanted: Vec<(usize, PathBuf, String)> = spec
            .mounts
            .iter()
            .enumerate()
            .filter(|(_, mnt)| is_bind(mnt))
            .map(|(i, mnt)| (i, source_path(bundle, mnt), mnt.destination.clone()))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        ns::in_mount_ns(mnt_ns, || {
            wanted
                .into_iter()
                .map(|(i, src, dest)| {
                    let fd = rustix::fs::open(&src, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                        .with_context(|| {
                            format!("mounts[{i}] {dest}: bind source {}", src.display())
                        })?;
                    Ok((i, fd))
                })
                .collect::<Result<Vec<_>>>()
        })?
    }

    /// Put the fds the runtime sent where the config has their mounts.
    pub(crate) fn from_received(count: usize, received: Vec<(usize, OwnedFd)>) -> MountSources {
        let mut fds: Vec<Option<OwnedFd>> = (0..count).map(|_| None).collect();
        for (i, fd) in received {
            if let Some(slot) = fds.get_mut(i) {
                *slot = Some(fd);
            }
        }
        MountSources(fds)
    }

    /// The source opened for mount `index`, if any.
    pub(crate) fn get(&self, index: usize) -> Option<&OwnedFd> {
        self.0.get(index).and_then(Option::as_ref)
    }
}

/// Does the runtime open the bind sources for the init of `spec`? For an
/// init in a user namespace with a mount namespace of its own (without
/// one it may not mount at all).
pub(crate) fn passed_to_init(spec: &Spec) -> bool {
    spec.linux.namespace(ns::Kind::User).is_some() && super::rootfs::own_mount_ns(spec)
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
