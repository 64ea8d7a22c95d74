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

/// mount(2)'s data argument must fit in one page, terminator included.
const MOUNT_DATA_MAX: usize = 4095;

/// One mount; undone if a step after the mount itself fails.
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
    if m.kind == "overlay" && o.data.len() > MOUNT_DATA_MAX {
        // Too many lower dirs for one page: the snapshotter's way around
        // that (lowerdir+ through the new mount API, else short paths).
        let mut options: Vec<String> = o.data.split(',').map(str::to_string).collect();
        if flags & mount::MS_RDONLY != 0 {
            options.push("ro".into());
        }
        let long = crate::snapshot::mount::Mount {
            kind: m.kind.clone(),
            source: m.source.clone(),
            options,
        };
        long.mount(Path::new(target))?;
    } else {
        mount::mount(&m.source, target, fstype, flags, &o.data)?;
    }
    let adjusted = (|| {
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
    })();
    if adjusted.is_err() {
        let _ = mount::umount(target, mount::MNT_DETACH);
    }
    adjusted
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

/// Unmount everything on BUNDLE/rootfs without waiting for the file
/// system to be written back. Unmounting an overlay syncs its whole upper
/// file system (the host's disk, with every other writer's dirty data):
/// measured 3 ms to 2.4 s here. Nobody needs that before Delete is
/// answered (the container is gone, its snapshot is removed next), so the
/// mounts are detached from the tree at once, each held by an fd, and a
/// thread lets go of them: the last reference's release does the sync
/// there. If no thread can be made, the release happens right here.
pub fn detach_rootfs(bundle: &Path) {
    use rustix::fs::{open, Mode, OFlags};
    let target = rootfs_dir(bundle).display().to_string();
    let mut held = Vec::new();
    for _ in 0..16 {
        // The top mount on the path, which the detach below takes off.
        let Ok(fd) = open(
            target.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            break;
        };
        if mount::umount(&target, mount::MNT_DETACH).is_err() {
            break;
        }
        held.push(fd);
    }
    if held.is_empty() {
        return;
    }
    // A failed spawn drops the closure, and with it the fds, right here.
    let _ = std::thread::Builder::new()
        .name("unmount".into())
        .stack_size(super::SMALL_STACK)
        .spawn(move || drop(held));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An overlay whose lower dirs take more than a page of options (what
    /// a many-layer image gives) still mounts.
    #[test]
    fn overlay_with_more_than_a_page_of_lower_dirs() {
        if !rustix::process::geteuid().is_root() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "needs root");
            eprintln!("skipped: needs root to mount");
            return;
        }
        let dir = std::env::temp_dir().join(format!("skiff-shim-overlay-{}", std::process::id()));
        let layers = dir.join(format!("snapshots-{}", "x".repeat(40)));
        let mut lowers = Vec::new();
        for i in 0..100 {
            let l = layers.join(format!("{i:04}")).join("fs");
            std::fs::create_dir_all(&l).unwrap();
            std::fs::write(l.join(format!("f{i}")), "").unwrap();
            lowers.push(l.display().to_string());
        }
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let bundle = dir.join("bundle");
        let options = vec![
            "index=off".to_string(),
            format!("workdir={}", work.display()),
            format!("upperdir={}", upper.display()),
            format!("lowerdir={}", lowers.join(":")),
        ];
        assert!(options.iter().map(|o| o.len() + 1).sum::<usize>() > 4096);
        let m = RootfsMount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options,
        };
        let res = mount_rootfs(&bundle, &[m]);
        let seen =
            rootfs_dir(&bundle).join("f0").exists() && rootfs_dir(&bundle).join("f99").exists();
        unmount_rootfs(&bundle);
        let _ = std::fs::remove_dir_all(&dir);
        res.unwrap();
        assert!(seen, "the lower dirs' files are not in the overlay");
    }
}
