//! A runtime bundle from an image: `config.json` shaped like `runc spec`'s
//! default (terminal off, root writable), with the image's command, environment, working
//! directory and user, so `runc run -b DIR id` runs it as `docker run` would.

use crate::error::{Error, Result};
use crate::image::oci::ImageConfig;
use crate::oci::default_config;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::path::Path;

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// The process arguments: Entrypoint + Cmd, where `args` (when given)
/// replace Cmd as `docker run IMAGE ARGS…` does.
pub fn command(config: &ImageConfig, args: Option<&[String]>) -> Result<Vec<String>> {
    let mut out = config.entrypoint.clone();
    match args {
        Some(a) => out.extend(a.iter().cloned()),
        None => out.extend(config.cmd.iter().cloned()),
    }
    if out.is_empty() {
        return Err(Error::new(
            "the image has no Entrypoint or Cmd: give a command after --",
        ));
    }
    Ok(out)
}

pub fn environment(config: &ImageConfig) -> Vec<String> {
    let mut env = config.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    env
}

/// Read a file of the rootfs, resolving symlinks inside it only.
fn read_in_root(rootfs: &Path, path: &str) -> Option<String> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    // Resolve without opening (O_PATH), and read only a regular file: the
    // image could have made it a FIFO (a hang) or a device node (opened
    // on the host).
    let fd = rustix::fs::openat2(
        &root,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    // Reopen that very inode (the magic link cannot be swapped under us).
    let fd = rustix::fs::open(
        crate::sys::fs::proc_path(&fd).as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(16 << 20)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// Resolve the image's `User` (`name`, `uid`, `name:group`, `uid:gid`)
/// against the rootfs's /etc/passwd and /etc/group, as docker does.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<User> {
    let passwd = read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_in_root(rootfs, "etc/group").unwrap_or_default();
    resolve_user_in(&passwd, &group, spec)
}

pub fn resolve_user_in(passwd: &str, group: &str, spec: &str) -> Result<User> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let pw: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let entry = match u.parse::<u32>() {
        Ok(uid) => pw.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid)),
        Err(_) => Some(pw.iter().find(|f| f[0] == u).ok_or_else(|| {
            Error::new(format!(
                "user {u:?}: no such user in the image's /etc/passwd"
            ))
        })?),
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry.and_then(|f| f[2].parse().ok()).unwrap_or(0),
    };
    let name = entry.map(|f| f[0]);
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    let gid = match g {
        Some(g) if !g.is_empty() => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::new(format!(
                        "group {g:?}: no such group in the image's /etc/group"
                    ))
                })?,
        },
        _ => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let mut additional_gids = Vec::new();
    if g.is_none() {
        if let Some(name) = name {
            for f in &groups {
                let members = f.get(3).copied().unwrap_or("");
                if members.split(',').any(|m| m == name) {
                    if let Ok(n) = f[2].parse::<u32>() {
                        if n != gid && !additional_gids.contains(&n) {
                            additional_gids.push(n);
                        }
                    }
                }
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

/// The config.json text: `runc spec`'s defaults with the image's process,
/// no terminal, and a writable root as `docker run` gives it (the rootfs
/// is this bundle's own copy).
pub fn config_json(args: &[String], env: &[String], cwd: &str, user: &User) -> String {
    let mut s = default_config::render(&default_config::Template {
        terminal: false,
        args: args.to_vec(),
        env: env.to_vec(),
        cwd: cwd.to_string(),
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids.clone(),
        readonly_root: false,
        indent: "  ",
        ..default_config::Template::default()
    });
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {

    #[test]
    fn reads_only_regular_files_of_the_rootfs() {
        let root = std::env::temp_dir().join(format!("skiff-readinroot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/group"), "root:x:0:\n").unwrap();
        std::os::unix::fs::symlink("/usr/lib/group", root.join("etc/group")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("etc/passwd").as_path(),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // A FIFO would block a plain open forever.
        assert_eq!(read_in_root(&root, "etc/passwd"), None);
        // An absolute symlink resolves inside the root.
        assert_eq!(
            read_in_root(&root, "etc/group").as_deref(),
            Some("root:x:0:\n")
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\nwww:x:33:34::/var/www:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,www\nweb:x:34:\nstaff:x:50:www\n";

    #[test]
    fn resolves_users_like_docker() {
        let r = |s| resolve_user_in(PASSWD, GROUP, s).unwrap();
        assert_eq!(
            r(""),
            User {
                uid: 0,
                gid: 0,
                additional_gids: vec![10]
            }
        );
        assert_eq!(
            r("www"),
            User {
                uid: 33,
                gid: 34,
                additional_gids: vec![10, 50]
            }
        );
        assert_eq!(
            r("33"),
            User {
                uid: 33,
                gid: 34,
                additional_gids: vec![10, 50]
            }
        );
        assert_eq!(
            r("1000"),
            User {
                uid: 1000,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            r("www:staff"),
            User {
                uid: 33,
                gid: 50,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            r("5:7"),
            User {
                uid: 5,
                gid: 7,
                additional_gids: vec![]
            }
        );
        assert!(resolve_user_in(PASSWD, GROUP, "nobody")
            .unwrap_err()
            .message()
            .contains("no such user"));
        assert!(resolve_user_in(PASSWD, GROUP, "www:nogroup")
            .unwrap_err()
            .message()
            .contains("no such group"));
    }

    #[test]
    fn command_and_env() {
        let c = ImageConfig {
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--serve".into()],
            ..Default::default()
        };
        assert_eq!(command(&c, None).unwrap(), ["/bin/app", "--serve"]);
        assert_eq!(
            command(&c, Some(&["x".to_string()])).unwrap(),
            ["/bin/app", "x"]
        );
        assert!(command(&ImageConfig::default(), None).is_err());
        assert_eq!(environment(&ImageConfig::default()), [DEFAULT_PATH]);
        let j = config_json(
            &["sh".into()],
            &[DEFAULT_PATH.into()],
            "",
            &User {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
            },
        );
        let v = crate::json::parse(&j, "config.json").unwrap();
        let n = crate::json::Node::new(&v, "");
        assert!(!n
            .need("process")
            .unwrap()
            .need("terminal")
            .unwrap()
            .bool()
            .unwrap());
        assert_eq!(
            n.need("process")
                .unwrap()
                .need("cwd")
                .unwrap()
                .str()
                .unwrap(),
            "/"
        );
    }
}
