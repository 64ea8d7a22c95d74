//! A mount as containerd describes it (type, source, options) and how to
//! perform one.
//!
//! Overlay with many layers: mount(2) takes its options as one page (4 KiB),
//! and absolute lower dirs overflow that at ~60 layers. containerd shortens
//! them by forking a child that chdirs to their common parent and passes
//! relative paths. We avoid the fork (and any chdir in a threaded daemon):
//! 1. options that fit go to mount(2), which every kernel has;
//! 2. else the new mount API, each lower dir its own `lowerdir+` parameter
//!    (Linux 6.8+): only overlayfs' 500-layer stack limit remains;
//! 3. else (older kernels) mount(2) with the lower dirs named through an fd
//!    of their common parent, `/proc/self/fd/N/<id>/fs`: ~170 layers.

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
        let data = self.overlay_data(&self.options);
        if data.len() <= MOUNT_DATA_MAX {
            return sysmount::mount(&self.source, target, "overlay", self.flags(), &data);
        }
        self.mount_overlay_fsconfig(target).or_else(|e| {
            // No `lowerdir+` (Linux before 6.8): shorter paths instead.
            self.mount_overlay_compact(target).map_err(|c| {
                crate::Error::of(
                    c.kind(),
                    format!("with lowerdir+: {e}; with short lower paths: {c}"),
                )
            })
        })
    }

    fn flags(&self) -> sysmount::Flags {
        if self.read_only() {
            sysmount::MS_RDONLY
        } else {
            0
        }
    }

    /// mount(2)'s data: the options without the flag words.
    fn overlay_data(&self, options: &[String]) -> String {
        let data: Vec<&str> = options
            .iter()
            .map(String::as_str)
            .filter(|o| !matches!(*o, "ro" | "rw"))
            .collect();
        data.join(",")
    }

    /// mount(2) with each lower dir named through an fd of their common
    /// parent (`/proc/self/fd/N/<id>/fs`, ~23 bytes a layer): ~170 layers
    /// fit in a page on any kernel, with no chdir (process-wide) or fork.
    pub(crate) fn mount_overlay_compact(&self, target: &str) -> Result<()> {
        let lowers: Vec<&str> = self
            .options
            .iter()
            .find_map(|o| o.strip_prefix("lowerdir="))
            .map(|l| l.split(':').collect())
            .unwrap_or_default();
        let common = common_dir(&lowers);
        let dir = rustix::fs::open(
            common.as_str(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("open {common}"))?;
        let via = crate::sys::fs::proc_path(&dir);
        let short: Vec<String> = lowers.iter().map(|l| through(&via, &common, l)).collect();
        let options: Vec<String> = self
            .options
            .iter()
            .map(|o| {
                if o.starts_with("lowerdir=") {
                    format!("lowerdir={}", short.join(":"))
                } else {
                    o.clone()
                }
            })
            .collect();
        let data = self.overlay_data(&options);
        if data.len() > MOUNT_DATA_MAX {
            return Err(crate::err_kind!(
                InvalidArgument,
                "{} layers: too many for one page of overlay options on this kernel",
                lowers.len()
            ));
        }
        // The fd stays open until the mount has resolved the paths.
        let res = sysmount::mount(&self.source, target, "overlay", self.flags(), &data);
        drop(dir);
        res
    }

    /// The new mount API: one parameter per lower dir.
    pub(crate) fn mount_overlay_fsconfig(&self, target: &str) -> Result<()> {
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen overlay")?;
        fsconfig_set_string(&fs, "source", self.source.as_str()).context("fsconfig source")?;
        for opt in &self.options {
            match opt.split_once('=') {
                Some(("lowerdir", list)) => {
                    for dir in list.split(':') {
                        fsconfig_set_string(&fs, "lowerdir+", dir)
                            .with_context(|| format!("fsconfig lowerdir+ {dir}"))?;
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

/// The deepest directory holding every path of `paths`, without a
/// trailing slash ("/" for none); the paths go on after it with a '/'.
fn common_dir(paths: &[&str]) -> String {
    let Some(first) = paths.first() else {
        return "/".into();
    };
    let mut common: Vec<&str> = first.split('/').collect();
    common.pop(); // a directory holding the path, not the path itself
    for p in &paths[1..] {
        let comps: Vec<&str> = p.split('/').collect();
        let n = common
            .iter()
            .zip(&comps[..comps.len().saturating_sub(1)])
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(n);
    }
    let joined = common.join("/");
    if joined.is_empty() {
        "/".into()
    } else {
        joined
    }
}

/// `path` (under `common`) named through `via`, an fd path of `common`.
fn through(via: &str, common: &str, path: &str) -> String {
    // `common` may be "/", whose length eats the separator.
    let rel = path[common.len()..].trim_start_matches('/');
    format!("{via}/{rel}")
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

#[cfg(test)]
mod tests {
    use super::{common_dir, through};

    #[test]
    fn common_dir_is_the_deepest_shared_parent() {
        assert_eq!(
            common_dir(&["/var/lib/s/snapshots/1/fs", "/var/lib/s/snapshots/22/fs"]),
            "/var/lib/s/snapshots"
        );
        assert_eq!(common_dir(&["/a/b/fs"]), "/a/b");
        assert_eq!(common_dir(&["/a/x", "/b/y"]), "/");
        assert_eq!(common_dir(&[]), "/");
    }

    #[test]
    fn lower_dirs_are_named_through_the_common_dir_fd() {
        let via = "/proc/self/fd/7";
        assert_eq!(through(via, "/a/b", "/a/b/1/fs"), "/proc/self/fd/7/1/fs");
        assert_eq!(through(via, "/", "/a/x"), "/proc/self/fd/7/a/x");
    }
}
