//! The container's root filesystem: containerd hands the shim the mounts of
//! its snapshot (an overlay, or a bind of a directory) in Create, and the
//! shim mounts them on BUNDLE/rootfs, undoing that on delete.

use crate::error::{Context, Result};
use crate::sys::mount;
use std::path::{Path, PathBuf};

/// One mount as containerd describes it (containerd.types.Mount).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootfsMount {
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

pub fn rootfs_dir(bundle: &Path) -> PathBuf {
    bundle.join("rootfs")
}

/// Mount `mounts` in order on BUNDLE/rootfs. On an error the mounts made so
/// far are undone.
pub fn mount_rootfs(bundle: &Path, mounts: &[RootfsMount]) -> Result<()> {
    if mounts.is_empty() {
        return Ok(());
    }
    let target = rootfs_dir(bundle);
    std::fs::create_dir_all(&target).with_context(|| format!("create {}", target.display()))?;
    let target_s = target.display().to_string();
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, &target_s) {
            if i > 0 {
                unmount_rootfs(bundle);
            }
            return Err(e.wrap(format!(
                "mount rootfs {} ({}) on {target_s}",
                m.source, m.kind
            )));
        }
    }
    Ok(())
}

fn mount_one(m: &RootfsMount, target: &str) -> Result<()> {
    let o = mount::parse_options(&m.options);
    if !o.unsupported.is_empty() {
        return Err(crate::err_kind!(
            InvalidArgument,
            "mount options {:?} are not supported",
            o.unsupported
        ));
    }
    let is_bind = m.kind == "bind" || o.flags & mount::MS_BIND != 0;
    let fstype = if is_bind { "" } else { m.kind.as_str() };
    let flags = o.flags | if m.kind == "bind" { mount::MS_BIND } else { 0 };
    mount::mount(&m.source, target, fstype, flags, &o.data)?;
    // A bind mount takes ro, nosuid and the like only through a remount.
    let bind_extra = flags & mount::BIND_REMOUNT_FLAGS;
    if is_bind && bind_extra != 0 {
        mount::mount(
            "",
            target,
            "",
            mount::MS_BIND | mount::MS_REMOUNT | bind_extra,
            "",
        )?;
    }
    for p in &o.propagation {
        mount::mount("", target, "", *p, "")?;
    }
    Ok(())
}

/// Unmount everything on BUNDLE/rootfs (stacked mounts too). Quiet: there
/// may be nothing mounted (delete is idempotent).
pub fn unmount_rootfs(bundle: &Path) {
    let target = rootfs_dir(bundle).display().to_string();
    for _ in 0..16 {
        match mount::umount(&target, 0) {
            Ok(()) => continue,
            Err(e) if e.message().contains("busy") => {
                let _ = mount::umount(&target, mount::MNT_DETACH);
            }
            Err(_) => break,
        }
    }
}
