//! A mount as containerd describes it (type, source, options) and how to
//! perform one.
//!
//! Overlay with many layers: mount(2) takes its options as one page (4 KiB),
//! and absolute lower dirs overflow that at ~60 layers. containerd shortens
//! them by forking a child that chdirs to their common parent and passes
//! relative paths. We avoid the fork (and any chdir in a threaded daemon)
//! with the kernel's own answer: the new mount API, where each lower dir is
//! its own `lowerdir+` parameter (Linux 6.8+), so only the 500-layer stack
//! limit of overlayfs remains. Short option strings still go through
//! mount(2), which every kernel has.

use crate::error::{Context, Result};
use crate::sys::mount as sysmount;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
};
use std::path::Path;

/// mount(2)'s data argument must fit in one page, terminator included.
const MOUNT_DATA_MAX: usize = 4095;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// "bind" or "overlay".
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

impl Mount {
    pub fn bind(source: &Path, read_only: bool) -> Mount {
        Mount {
            kind: "bind".into(),
            source: source.display().to_string(),
            options: vec!["rbind".into(), if read_only { "ro" } else { "rw" }.into()],
        }
    }

    fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }

    /// Mount this at `target`.
    pub fn mount(&self, target: &Path) -> Result<()> {
        let tgt = target.display().to_string();
        let what = || format!("mount {} {} on {tgt}", self.kind, self.source);
        match self.kind.as_str() {
            "bind" => {
                let rec = if self.options.iter().any(|o| o == "rbind") {
                    sysmount::MS_REC
                } else {
                    0
                };
                sysmount::mount(&self.source, &tgt, "", sysmount::MS_BIND | rec, "")
                    .with_context(what)?;
                if self.read_only() {
                    let flags = sysmount::MS_BIND | sysmount::MS_REMOUNT | sysmount::MS_RDONLY;
                    if let Err(e) = sysmount::mount("", &tgt, "", flags, "") {
                        let _ = sysmount::umount(&tgt, sysmount::MNT_DETACH);
                        return Err(e.wrap(what()));
                    }
                }
                Ok(())
            }
            "overlay" => self.mount_overlay(&tgt).with_context(what),
            other => Err(crate::err_kind!(
                InvalidArgument,
                "mount type {other:?} is not supported (bind, overlay)"
            )),
        }
    }

    fn mount_overlay(&self, target: &str) -> Result<()> {
        let data: Vec<&str> = self
            .options
            .iter()
            .map(String::as_str)
            .filter(|o| !matches!(*o, "ro" | "rw"))
            .collect();
        let data = data.join(",");
        let flags = if self.read_only() {
            sysmount::MS_RDONLY
        } else {
            0
        };
        if data.len() <= MOUNT_DATA_MAX {
            return sysmount::mount(&self.source, target, "overlay", flags, &data);
        }
        self.mount_overlay_fsconfig(target)
    }

    /// The new mount API: one parameter per lower dir.
    fn mount_overlay_fsconfig(&self, target: &str) -> Result<()> {
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen overlay")?;
        fsconfig_set_string(&fs, "source", self.source.as_str()).context("fsconfig source")?;
        for opt in &self.options {
            match opt.split_once('=') {
                Some(("lowerdir", list)) => {
                    for dir in list.split(':') {
                        fsconfig_set_string(&fs, "lowerdir+", dir).with_context(|| {
                            format!(
                                "fsconfig lowerdir+ {dir} (overlay with more layers than \
                                 one page of options needs Linux 6.8 or newer)"
                            )
                        })?;
                    }
                }
                Some((key, value)) => fsconfig_set_string(&fs, key, value)
                    .with_context(|| format!("fsconfig {key}"))?,
                None if matches!(opt.as_str(), "ro" | "rw") => {}
                None => fsconfig_set_flag(&fs, opt.as_str())
                    .with_context(|| format!("fsconfig {opt}"))?,
            }
        }
        fsconfig_create(&fs).context("create overlay")?;
        let attrs = if self.read_only() {
            MountAttrFlags::MOUNT_ATTR_RDONLY
        } else {
            MountAttrFlags::empty()
        };
        let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).context("fsmount")?;
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .context("move_mount")
    }
}

/// Mount a snapshot's mounts in order at `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = m.mount(target) {
            for _ in 0..i {
                let _ = unmount(target);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Unmount `target` (lazily: a process may still hold it).
pub fn unmount(target: &Path) -> Result<()> {
    sysmount::umount(&target.display().to_string(), sysmount::MNT_DETACH)
}
