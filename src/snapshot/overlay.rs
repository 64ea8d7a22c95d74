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
