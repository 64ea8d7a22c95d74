//! The overlayfs driver's mounts: a snapshot with no parent is its own
//! `fs` bind-mounted; otherwise an overlay of the parent chain (nearest
//! first) under the snapshot's `fs` (upper) and `work`. A view has no
//! upper: a lowerdir-only overlay is read-only (a view of a single layer is
//! a read-only bind of it).
//!
//! The options carry absolute paths, as containerd's do, since another
//! process (a shim, ctr) may perform the mount; [`super::mount`] copes with
//! option strings longer than mount(2)'s one page.

use super::mount::Mount;
use std::path::{Path, PathBuf};

/// The mount of the snapshot in `dir` (`<dir>/fs`, `<dir>/work`) over
/// `lowers` (parent first, root layer last).
pub fn mount(dir: &Path, lowers: &[PathBuf], read_only: bool) -> Mount {
    let upper = dir.join("fs");
    match (lowers, read_only) {
        ([], _) => Mount::bind(&upper, read_only),
        ([only], true) => Mount::bind(only, true),
        (_, true) => Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![lowerdir(lowers)],
        },
        (_, false) => Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("workdir={}", dir.join("work").display()),
                format!("upperdir={}", upper.display()),
                lowerdir(lowers),
            ],
        },
    }
}

fn lowerdir(lowers: &[PathBuf]) -> String {
    let list: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    format!("lowerdir={}", list.join(":"))
}

/// Can an overlay with an upper dir be mounted on the filesystem holding
/// `dir` (the snapshotter root)? Tried for real, since overlayfs refuses
/// some upper filesystems (another overlay, some FUSE) and may be absent
/// from the kernel: the daemon then falls back to `native`.
pub fn supported(dir: &Path) -> bool {
    let probe = dir.join(format!(".overlay-probe-{}", std::process::id()));
    let ok = (|| -> crate::Result<()> {
        for d in ["lower", "fs", "work", "merged"] {
            std::fs::create_dir_all(probe.join(d))?;
        }
        let m = mount(&probe, &[probe.join("lower")], false);
        m.mount(&probe.join("merged"))?;
        super::mount::unmount(&probe.join("merged"))
    })()
    .is_ok();
    let _ = std::fs::remove_dir_all(&probe);
    ok
}
