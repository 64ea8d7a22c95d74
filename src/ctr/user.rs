//! `--user` as ctr resolves it (containerd's oci.WithUser): a name or
//! number, group optional, looked up in the container's own /etc/passwd
//! and /etc/group. ctr mounts the snapshot to read them; we read the
//! snapshot's layer directories directly (topmost first, a whiteout
//! hides what is below), which needs no mount and leaves nothing behind.
//! Each layer is its own root for the lookup: an image's symlinks never
//! lead to a host file.

use super::client::Conn;
use crate::error::{Error, Kind, Result};
use crate::proto::services::{containers, snapshots};
use std::path::PathBuf;

/// The ids a process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Where the container's files are: its snapshot's directories.
pub struct Rootfs(Vec<PathBuf>);

/// The largest passwd or group file read.
const MAX_DB: u64 = 4 << 20;

impl Rootfs {
    /// The layer directories of the container's snapshot.
    pub fn of(conn: &Conn, c: &containers::Container) -> Result<Rootfs> {
        if c.snapshot_key.is_empty() {
            return Err(Error::new("rootfs snapshot not created for container"));
        }
        let r: snapshots::MountsResponse = conn.call(
            snapshots::SERVICE,
            "Mounts",
            &snapshots::MountsRequest {
                snapshotter: c.snapshotter.clone(),
                key: c.snapshot_key.clone(),
            },
        )?;
        let mut dirs = Vec::new();
        for m in &r.mounts {
            match m.r#type.as_str() {
                "overlay" => {
                    let opt = |k: &str| {
                        m.options
                            .iter()
                            .find_map(|o| o.strip_prefix(k))
                            .map(str::to_string)
                    };
                    if let Some(upper) = opt("upperdir=") {
                        dirs.push(PathBuf::from(upper));
                    }
                    if let Some(lower) = opt("lowerdir=") {
                        dirs.extend(lower.split(':').map(PathBuf::from));
                    }
                }
                "bind" | "rbind" => dirs.push(PathBuf::from(&m.source)),
                other => {
                    return Err(Error::new(format!(
                        "rootfs mount of type {other:?}: cannot read /etc/passwd from it"
                    )))
                }
            }
        }
        Ok(Rootfs(dirs))
    }

    /// A rootfs that is one directory (tests, bundles).
    pub fn dir(path: impl Into<PathBuf>) -> Rootfs {
        Rootfs(vec![path.into()])
    }

    /// The text of `/etc/NAME`, None when the container has none. The
    /// layers are walked top-down as overlayfs merges them: a whiteout of
    /// `etc` or of `etc/NAME` (overlayfs' 0/0 device, or the OCI layer
    /// form `.wh.NAME` a snapshotter may keep) hides the lower layers'
    /// file, and so does an opaque `etc` (`trusted.overlay.opaque=y`, or
    /// `etc/.wh..wh..opq`) once this layer has been looked at. Each layer
    /// is looked up as its own root (openat2 RESOLVE_IN_ROOT), so a
    /// symlinked `etc` or `etc/NAME` in an image resolves inside that
    /// layer and never reaches a host file.
    fn etc(&self, name: &str) -> Result<Option<String>> {
        let rel = format!("etc/{name}");
        for dir in &self.0 {
            let what = || format!("/etc/{name} in {}", dir.display());
            let io = |e: rustix::io::Errno| Error::from(std::io::Error::from(e)).wrap(what());
            let root = crate::sys::fs::open_root(&dir.to_string_lossy())?;
            if exists(&root, ".wh.etc").map_err(io)?
                || exists(&root, &format!("etc/.wh.{name}")).map_err(io)?
            {
                return Ok(None);
            }
            match read_regular(&root, &rel).map_err(|e| e.wrap(what()))? {
                Found::Text(t) => return Ok(Some(t)),
                Found::Hidden => return Ok(None),
                Found::Missing => {}
            }
            if etc_is_opaque(&root).map_err(io)? {
                return Ok(None);
            }
        }
        Ok(None)
    }
}

/// What one layer has at a path.
enum Found {
    Text(String),
    /// Something that is not a regular file (a whiteout, a directory), or
    /// a parent that is not a directory: the path ends here.
    Hidden,
    Missing,
}

/// Whether `rel` exists in the layer (a dangling symlink counts).
fn exists(root: &rustix::fd::OwnedFd, rel: &str) -> rustix::io::Result<bool> {
    use rustix::fs::OFlags;
    match crate::sys::fs::open_in_root(root, rel, OFlags::PATH | OFlags::NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the layer's `etc` hides the lower layers' (an opaque
/// directory in overlayfs' form or the OCI layer form).
fn etc_is_opaque(root: &rustix::fd::OwnedFd) -> rustix::io::Result<bool> {
    use rustix::fs::OFlags;
    let etc = match crate::sys::fs::open_in_root(root, "etc", OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut v = [0u8; 1];
    if matches!(
        rustix::fs::fgetxattr(&etc, "trusted.overlay.opaque", &mut v[..]),
        Ok(1) if v[0] == b'y'
    ) {
        return Ok(true);
    }
    exists(root, "etc/.wh..wh..opq")
}

/// Read `rel` of a layer if it is a regular file of at most [`MAX_DB`].
fn read_regular(root: &rustix::fd::OwnedFd, rel: &str) -> Result<Found> {
    use rustix::fs::{FileType, OFlags};
    use std::io::Read;
    let io = |e: rustix::io::Errno| Error::from(std::io::Error::from(e));
    let found = match crate::sys::fs::open_in_root(root, rel, OFlags::PATH) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Found::Missing),
        // `etc` is not a directory in this layer: it hides the rest.
        Err(rustix::io::Errno::NOTDIR) => return Ok(Found::Hidden),
        Err(e) => return Err(io(e)),
    };
    let st = rustix::fs::fstat(&found).map_err(io)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(Found::Hidden);
    }
    // Opened again to read; a swap in between (a running container's
    // upper layer) must still be the same file.
    let fd =
        crate::sys::fs::open_in_root(root, rel, OFlags::RDONLY | OFlags::NONBLOCK).map_err(io)?;
    let again = rustix::fs::fstat(&fd).map_err(io)?;
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        return Err(Error::new("changed while read"));
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_DB + 1)
        .read_to_string(&mut text)
        .map_err(Error::from)?;
    if text.len() as u64 > MAX_DB {
        return Err(Error::new(format!("larger than {MAX_DB} bytes")));
    }
    Ok(Found::Text(text))
}

/// One line of /etc/passwd.
struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
}

/// One line of /etc/group.
struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Passwd {
                name: f.first()?.to_string(),
                uid: f.get(2)?.trim().parse().ok()?,
                gid: f.get(3)?.trim().parse().ok()?,
            })
        })
        .collect()
}

fn groups(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Group {
                name: f.first()?.to_string(),
                gid: f.get(2)?.trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn no_users() -> Error {
    Error::of(Kind::NotFound, "no users found")
}

fn no_groups() -> Error {
    Error::of(Kind::NotFound, "no groups found")
}

/// Resolve `spec` (`uid`, `name`, `uid:gid`, `name:group`...) as ctr's
/// `oci.WithUser`; with `supplementary` (ctr run's
/// `oci.WithAdditionalGIDs`) the groups listing the user are added. The
/// primary group is always among the additional ones (containerd 1.6.18+).
pub fn resolve(spec: &str, root: &Rootfs, supplementary: bool) -> Result<User> {
    let parts: Vec<&str> = spec.split(':').collect();
    let users = || -> Result<Vec<Passwd>> {
        Ok(root.etc("passwd")?.map(|t| passwd(&t)).unwrap_or_default())
    };
    let (uid, gid) = match parts.as_slice() {
        [one] => match one.parse::<u32>() {
            // A number: its passwd entry gives the group, else 0.
            Ok(uid) => {
                let gid = users()?.iter().find(|u| u.uid == uid).map_or(0, |u| u.gid);
                (uid, gid)
            }
            Err(_) => {
                let list = users()?;
                let u = list.iter().find(|u| u.name == *one).ok_or_else(no_users)?;
                (u.uid, u.gid)
            }
        },
        [u, g] => {
            let uid = match u.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    users()?
                        .iter()
                        .find(|p| p.name == *u)
                        .ok_or_else(no_users)?
                        .uid
                }
            };
            let gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    let list = root.etc("group")?.map(|t| groups(&t)).unwrap_or_default();
                    list.iter()
                        .find(|x| x.name == *g)
                        .ok_or_else(no_groups)?
                        .gid
                }
            };
            (uid, gid)
        }
        _ => {
            return Err(Error::of(
                Kind::InvalidArgument,
                format!("invalid USER value {spec}"),
            ))
        }
    };
    let mut additional_gids = Vec::new();
    if supplementary {
        // ctr looks the whole value up as a user name (a number by uid).
        let name = match spec.parse::<u32>() {
            Ok(n) => users()?.into_iter().find(|u| u.uid == n).map(|u| u.name),
            Err(_) => Some(spec.to_string()),
        };
        if let Some(name) = name {
            let list = root.etc("group")?.map(|t| groups(&t)).unwrap_or_default();
            additional_gids.extend(
                list.iter()
                    .filter(|g| g.name != name && g.members.contains(&name))
                    .map(|g| g.gid),
            );
        }
    }
    if !additional_gids.contains(&gid) {
        additional_gids.push(gid);
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> (PathBuf, Rootfs) {
        let dir = std::env::temp_dir().join(format!("skiff-user-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1234:2345::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/group"),
            "root:x:0:\nstaff:x:2345:alice\nextra:x:3456:bob,alice\nalice:x:4567:alice\n",
        )
        .unwrap();
        (dir.clone(), Rootfs::dir(dir))
    }

    #[test]
    fn names_numbers_and_groups_resolve_as_ctr() {
        let (dir, root) = rootfs();
        let u = |s: &str, sup: bool| resolve(s, &root, sup);
        assert_eq!(
            u("alice", false).unwrap(),
            User {
                uid: 1234,
                gid: 2345,
                additional_gids: vec![2345]
            }
        );
        assert_eq!(u("1234", false).unwrap().gid, 2345);
        assert_eq!(
            u("99", false).unwrap(),
            User {
                uid: 99,
                gid: 0,
                additional_gids: vec![0]
            }
        );
        assert_eq!(u("alice:extra", false).unwrap().gid, 3456);
        assert_eq!(
            u("7:8", false).unwrap(),
            User {
                uid: 7,
                gid: 8,
                additional_gids: vec![8]
            }
        );
        assert_eq!(u("alice", true).unwrap().additional_gids, vec![2345, 3456]);
        assert_eq!(u("nobody", false).unwrap_err().message(), "no users found");
        assert_eq!(
            u("alice:nogroup", false).unwrap_err().message(),
            "no groups found"
        );
        assert_eq!(
            u("a:b:c", false).unwrap_err().message(),
            "invalid USER value a:b:c"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Layers merge as overlayfs merges them: an opaque `etc` (either
    /// form) or a whiteout of `etc/passwd` (either form) hides a lower
    /// layer's users; without them the lower layer's file is found.
    #[test]
    fn opaque_dirs_and_whiteouts_hide_lower_layers() {
        let dir = std::env::temp_dir().join(format!("skiff-user-layers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lower = dir.join("lower");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), "alice:x:5:6::/:/bin/sh\n").unwrap();
        let upper = |name: &str, files: &[&str]| {
            let u = dir.join(name);
            std::fs::create_dir_all(u.join("etc")).unwrap();
            for f in files {
                std::fs::write(u.join(f), "").unwrap();
            }
            Rootfs(vec![u, lower.clone()])
        };
        let found = |r: &Rootfs| resolve("alice", r, false).map(|u| u.uid);
        assert_eq!(found(&upper("plain", &["etc/group"])).unwrap(), 5);
        for (name, files) in [
            ("opq", &["etc/.wh..wh..opq", "etc/group"][..]),
            ("wh", &["etc/.wh.passwd"][..]),
            ("whetc", &[".wh.etc"][..]),
        ] {
            let e = found(&upper(name, files)).unwrap_err();
            assert_eq!(e.message(), "no users found", "{name}");
        }
        let x = upper("xattr", &[]);
        rustix::fs::setxattr(
            dir.join("xattr/etc"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        assert_eq!(found(&x).unwrap_err().message(), "no users found");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// An image's symlinks resolve inside its layer: a link to a file of
    /// the image works (as in containerd, which reads the mounted
    /// rootfs), and a link to the host's /etc never reaches it.
    #[test]
    fn symlinks_resolve_inside_the_layer() {
        let dir = std::env::temp_dir().join(format!("skiff-user-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let inside = dir.join("inside");
        std::fs::create_dir_all(inside.join("etc")).unwrap();
        std::fs::create_dir_all(inside.join("usr/lib")).unwrap();
        std::fs::write(inside.join("usr/lib/passwd"), "bob:x:77:78::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/usr/lib/passwd", inside.join("etc/passwd")).unwrap();
        let got = resolve("bob", &Rootfs::dir(&inside), false).unwrap();
        assert_eq!((got.uid, got.gid), (77, 78));

        // `etc -> /etc` names the layer's own etc (a loop), never the host's.
        let host = dir.join("host");
        std::fs::create_dir_all(&host).unwrap();
        std::os::unix::fs::symlink("/etc", host.join("etc")).unwrap();
        let r = resolve("root", &Rootfs::dir(&host), false);
        assert!(r.is_err(), "the host's /etc/passwd was read: {r:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
