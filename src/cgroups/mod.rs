//! Control groups: find the hierarchies (cgroup v1, hybrid or unified v2,
//! told apart at run time), make a container's cgroup in each, apply
//! `linux.resources`, move processes in, freeze, read stats, remove.
//!
//! A cgroup here is the list of its directories, one per hierarchy, each
//! tagged with the controllers of its hierarchy; that list is what the
//! state file keeps, so later commands need no discovery.

pub mod device_filter;
mod device_rules;
mod files;
pub mod stats;

use crate::error::{Context, Error, Result};
use crate::oci::resources::{DeviceRule, Resources};
use crate::sys::process::Pid;
use std::path::{Path, PathBuf};

/// One directory of a container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, miniserde::Serialize, miniserde::Deserialize)]
pub struct Dir {
    /// Controllers of the hierarchy, comma-separated ("cpu,cpuacct",
    /// "name=systemd"); empty for the cgroup v2 hierarchy.
    pub controllers: String,
    /// Where the hierarchy is mounted; its last component names the
    /// hierarchy inside a container's cgroup mount.
    pub mount: String,
    pub path: String,
}

impl Dir {
    pub fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }
    fn has(&self, controller: &str) -> bool {
        self.controllers.split(',').any(|c| c == controller)
    }
    fn file(&self, name: &str) -> PathBuf {
        Path::new(&self.path).join(name)
    }
    /// For logs: the controllers, or "v2".
    fn label(&self) -> &str {
        if self.is_v2() {
            "v2"
        } else {
            &self.controllers
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cgroup {
    pub dirs: Vec<Dir>,
}

/// A mounted hierarchy and this process's cgroup in it.
struct Hierarchy {
    controllers: String,
    mount_point: String,
    mount_root: String,
    own: String,
}

/// Every cgroup hierarchy mounted here, from /proc/self/mountinfo and
/// /proc/self/cgroup.
fn hierarchies() -> Result<Vec<Hierarchy>> {
    let mounts = crate::sys::mount::mount_table()?;
    let membership =
        std::fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in mounts {
        if !(m.fs_type == "cgroup" || m.fs_type == "cgroup2") {
            continue;
        }
        let v2 = m.fs_type == "cgroup2";
        let mut ctrls: Vec<&str> = if v2 {
            Vec::new()
        } else {
            m.super_options
                .split(',')
                .filter(|o| is_controller_option(o))
                .collect()
        };
        ctrls.sort_unstable();
        let key = ctrls.join(",");
        let own = membership.lines().find_map(|cl| {
            let mut it = cl.splitn(3, ':');
            let (_, c, p) = (it.next()?, it.next()?, it.next()?);
            let mut cs: Vec<&str> = if c.is_empty() {
                Vec::new()
            } else {
                c.split(',').collect()
            };
            cs.sort_unstable();
            (cs.join(",") == key && (v2 == c.is_empty())).then(|| p.to_string())
        });
        let Some(own) = own else { continue };
        // The same hierarchy may be mounted twice; the first mount serves.
        if out.iter().any(|h| h.controllers == key) {
            continue;
        }
        out.push(Hierarchy {
            controllers: key,
            mount_point: m.mount_point,
            mount_root: m.root,
            own,
        });
    }
    Ok(out)
}

fn is_controller_option(o: &str) -> bool {
    const NOT: &[&str] = &[
        "rw",
        "ro",
        "nosuid",
        "nodev",
        "noexec",
        "relatime",
        "noatime",
        "clone_children",
        "xattr",
        "noprefix",
        "cpuset_v2_mode",
        "favordynmods",
    ];
    !NOT.contains(&o) && !o.starts_with("release_agent=")
}

/// Is the host purely cgroup v2?
// f_type's integer type differs between musl and glibc.
#[allow(clippy::unnecessary_cast)]
pub fn is_unified() -> bool {
    rustix::fs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.f_type as i64 == libc::CGROUP2_SUPER_MAGIC as i64)
}

fn clean_path(p: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::new(format!(
                    "linux.cgroupsPath {p:?}: must not contain \"..\""
                )))
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// `base` joined with `add`, which must stay below `base` ("." and "a/.."
/// name `base` itself, as in runc).
fn sub_path(base: &str, add: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in add.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(crate::err_kind!(
                        InvalidArgument,
                        "{add} is not a sub cgroup path"
                    ));
                }
            }
            c => parts.push(c),
        }
    }
    let mut out = base.trim_end_matches('/').to_string();
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    Ok(out)
}

impl Cgroup {
    /// The cgroup a container gets: `cgroups_path` absolute (from each
    /// hierarchy's root) or relative (to this process's own cgroup), or
    /// `/<id>` when the config names none.
    pub fn for_container(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
        if let Some(p) = cgroups_path {
            if p.contains(':') && !p.starts_with('/') {
                crate::bail!("linux.cgroupsPath {p:?}: looks like a systemd slice:prefix:name path, but skiff manages cgroups directly (no systemd)");
            }
        }
        let (absolute, rel) = match cgroups_path {
            Some(p) => (p.starts_with('/'), clean_path(p)?),
            None => (true, clean_path(id)?),
        };
        if rel.is_empty() {
            crate::bail!(
                "linux.cgroupsPath {:?}: names the root cgroup",
                cgroups_path.unwrap_or("")
            );
        }
        let mut dirs = Vec::new();
        for h in hierarchies()? {
            let base = if absolute {
                String::new()
            } else {
                // Our own cgroup, seen from the mount's root.
                let own = h
                    .own
                    .strip_prefix(h.mount_root.trim_end_matches('/'))
                    .unwrap_or(&h.own);
                own.trim_matches('/').to_string()
            };
            let mut path = h.mount_point.trim_end_matches('/').to_string();
            for part in [base.as_str(), rel.as_str()] {
                if !part.is_empty() {
                    path.push('/');
                    path.push_str(part);
                }
            }
            dirs.push(Dir {
                controllers: h.controllers,
                mount: h.mount_point,
                path,
            });
        }
        if dirs.is_empty() {
            crate::bail!("no cgroup hierarchy is mounted (looked in /proc/self/mountinfo)");
        }
        Ok(Cgroup { dirs })
    }

    /// `exec --cgroup`: this cgroup with directories moved down to existing
    /// sub-cgroups, as runc takes the flag: one `PATH` for every hierarchy,
    /// or `CONTROLLER[,CONTROLLER]:PATH` (repeatable) for v1 hierarchies.
    pub fn with_sub_cgroups(&self, args: &[String]) -> Result<Cgroup> {
        let mut out = self.clone();
        if args.is_empty() {
            return Ok(out);
        }
        let mut by_controller: Vec<(&str, &str)> = Vec::new();
        for arg in args {
            let Some((ctrls, path)) = arg.split_once(':') else {
                if args.len() != 1 {
                    crate::bail!("invalid --cgroup argument: {arg} (missing <controller>: prefix)");
                }
                for d in &mut out.dirs {
                    d.path = sub_path(&d.path, arg)?;
                }
                return Ok(out);
            };
            for ctrl in ctrls.split(',') {
                if ctrl.is_empty() {
                    crate::bail!("invalid --cgroup argument: {arg} (empty <controller> prefix)");
                }
                if by_controller.iter().any(|(c, _)| *c == ctrl) {
                    crate::bail!(
                        "invalid --cgroup argument(s): controller {ctrl} specified multiple times"
                    );
                }
                by_controller.push((ctrl, path));
            }
        }
        for (ctrl, path) in &by_controller {
            let i = self
                .dirs
                .iter()
                .position(|d| !d.is_v2() && d.has(ctrl))
                .ok_or_else(|| {
                    crate::err_kind!(InvalidArgument, "--cgroup: unknown controller {ctrl}")
                })?;
            let moved = sub_path(&self.dirs[i].path, path)?;
            if out.dirs[i].path != self.dirs[i].path && out.dirs[i].path != moved {
                crate::bail!(
                    "--cgroup: controllers of hierarchy {} given different paths",
                    self.dirs[i].controllers
                );
            }
            out.dirs[i].path = moved;
        }
        Ok(out)
    }

    pub fn v2_dir(&self) -> Option<&Dir> {
        self.dirs.iter().find(|d| d.is_v2())
    }

    /// An fd of the v2 directory, for clone3's CLONE_INTO_CGROUP.
    pub fn open_v2_dir(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        self.v2_dir()
            .map(|d| crate::sys::fs::open_root(&d.path))
            .transpose()
    }

    /// Make every directory (and missing parents). cpuset parents are
    /// filled from their own parents, as a new cpuset starts empty and would
    /// refuse any process.
    pub fn create(&self) -> Result<()> {
        for d in &self.dirs {
            crate::log::debug!("cgroup {}: {}", d.label(), d.path);
            if d.has("cpuset") {
                create_cpuset(Path::new(&d.path))?;
            } else {
                std::fs::create_dir_all(&d.path)
                    .with_context(|| format!("create cgroup {}", d.path))?;
            }
        }
        if let Some(d) = self.v2_dir() {
            files::v2_enable_controllers(Path::new(&d.path))?;
        }
        Ok(())
    }

    /// Apply resources and device rules to every hierarchy.
    pub fn apply(&self, res: &Resources, devices: &[DeviceRule]) -> Result<()> {
        let unified = is_unified();
        // Raw v2 files make no sense where the controllers are v1's (runc
        // refuses too, rather than write them to the bare v2 hierarchy).
        if !unified && !res.unified.is_empty() {
            return Err(crate::err_kind!(
                InvalidArgument,
                "linux.resources.unified: invalid configuration: cannot use unified on cgroup v1 (this host's controllers are in cgroup v1 hierarchies)"
            ));
        }
        // Device rules are worked out, and refused if they must be, before
        // anything is written: a refused update changes nothing.
        let mut device_plans = Vec::new();
        if !devices.is_empty() {
            for d in self.dirs.iter().filter(|d| d.has("devices")) {
                device_plans.push((d, files::DevicePlan::new(Path::new(&d.path), devices)?));
            }
        }
        for d in &self.dirs {
            if d.is_v2() {
                files::apply_v2(Path::new(&d.path), res, unified)?;
                // On a hybrid host the v1 devices controller does this.
                if !devices.is_empty() && unified {
                    attach_device_filter(Path::new(&d.path), devices)?;
                }
            } else {
                let plan = device_plans
                    .iter()
                    .find(|(dir, _)| std::ptr::eq(*dir, d))
                    .map(|(_, plan)| plan);
                for c in d.controllers.split(',') {
                    files::apply_v1(c, Path::new(&d.path), res, plan)?;
                }
            }
        }
        Ok(())
    }

    /// Move `pid` into every hierarchy (except the ones named in `skip`,
    /// where it was born through CLONE_INTO_CGROUP).
    pub fn join(&self, pid: Pid, skip_v2: bool) -> Result<()> {
        for d in &self.dirs {
            if skip_v2 && d.is_v2() {
                continue;
            }
            std::fs::write(d.file("cgroup.procs"), pid.to_string())
                .with_context(|| format!("move pid {pid} into cgroup {}", d.path))?;
        }
        Ok(())
    }

    /// Pids in the cgroup (from the pids, freezer or v2 hierarchy, whichever
    /// is there).
    pub fn procs(&self) -> Vec<Pid> {
        let pick = self
            .dirs
            .iter()
            .find(|d| d.has("pids"))
            .or_else(|| self.dirs.iter().find(|d| d.has("freezer")))
            .or_else(|| self.v2_dir())
            .or_else(|| self.dirs.first());
        let Some(d) = pick else { return Vec::new() };
        // Sub-cgroups made inside the container count too.
        let mut pids = Vec::new();
        let mut todo = vec![PathBuf::from(&d.path)];
        while let Some(dir) = todo.pop() {
            let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<Pid>().ok()));
            if let Ok(entries) = std::fs::read_dir(&dir) {
                todo.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Freeze or thaw every process, and wait until the kernel says done.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        if let Some(d) = self.dirs.iter().find(|d| d.has("freezer")) {
            return files::v1_freeze(Path::new(&d.path), frozen);
        }
        if let Some(d) = self
            .v2_dir()
            .filter(|d| Path::new(&d.path).join("cgroup.freeze").exists())
        {
            return files::v2_freeze(Path::new(&d.path), frozen);
        }
        crate::bail!("pause: no freezer cgroup is available on this host")
    }

    /// A directory of this cgroup that is frozen now, by itself or by a
    /// parent (the v1 freezer's state, or v2's cgroup.freeze and the
    /// `frozen` of cgroup.events; v2 exists on hybrid hosts too): a process
    /// moved in would stop at once.
    pub fn frozen_dir(&self) -> Option<&str> {
        let read = |d: &Dir, file: &str| std::fs::read_to_string(d.file(file));
        self.dirs
            .iter()
            .find(|d| {
                if d.is_v2() {
                    read(d, "cgroup.freeze").is_ok_and(|s| s.trim() == "1")
                        || read(d, "cgroup.events")
                            .is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"))
                } else if d.has("freezer") {
                    // FREEZING too: on its way (a parent is being frozen).
                    read(d, "freezer.state").is_ok_and(|s| s.trim() != "THAWED")
                } else {
                    false
                }
            })
            .map(|d| d.path.as_str())
    }

    pub fn is_frozen(&self) -> bool {
        if let Some(d) = self.dirs.iter().find(|d| d.has("freezer")) {
            return std::fs::read_to_string(d.file("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN");
        }
        self.v2_dir()
            .and_then(|d| std::fs::read_to_string(d.file("cgroup.freeze")).ok())
            .is_some_and(|s| s.trim() == "1")
    }

    /// Remove every directory. A cgroup empties a moment after its last
    /// process is reaped, so EBUSY is retried briefly.
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for d in &self.dirs {
            // Sub-cgroups made inside the container go first, deepest first.
            remove_children(Path::new(&d.path));
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(&d.path) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(e) => {
                        first_err.get_or_insert_with(|| {
                            Error::from(e).wrap(format!("remove cgroup {}", d.path))
                        });
                        break;
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// An eventfd the kernel signals at each OOM in this cgroup, and when
    /// the cgroup is removed (cgroup v1 memory controller only).
    pub fn oom_eventfd(&self) -> Option<std::os::fd::OwnedFd> {
        use std::os::fd::AsRawFd;
        let dir = Path::new(&self.dirs.iter().find(|d| d.has("memory"))?.path).to_path_buf();
        let efd = crate::sys::eventfd::new().ok()?;
        let control = std::fs::File::open(dir.join("memory.oom_control")).ok()?;
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        std::fs::write(dir.join("cgroup.event_control"), line).ok()?;
        Some(efd)
    }

    /// Does the memory cgroup still exist?
    pub fn memory_dir_exists(&self) -> bool {
        self.dirs
            .iter()
            .find(|d| d.has("memory"))
            .is_some_and(|d| Path::new(&d.path).join("cgroup.event_control").exists())
    }

    /// Has the OOM killer killed anything in this cgroup?
    pub fn oom_kills(&self) -> u64 {
        files::oom_kills(self)
    }
}

/// Restrict device access of a cgroup v2 directory to `rules`.
pub fn attach_device_filter(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let fd = crate::sys::fs::open_root(&dir.to_string_lossy())?;
    crate::sys::bpf::attach_device_filter(&fd, &device_filter::program(rules))
        .map_err(|e| e.wrap(format!("linux.resources.devices: cgroup {}", dir.display())))
}

fn remove_children(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_children(&e.path());
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

fn create_cpuset(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_cpuset(parent)?;
        std::fs::create_dir(dir)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .with_context(|| format!("create cgroup {}", dir.display()))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = std::fs::read_to_string(parent.join(file))
                    .with_context(|| format!("read {}", parent.join(file).display()))?;
                std::fs::write(dir.join(file), theirs.trim())
                    .with_context(|| format!("write {}", dir.join(file).display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_climbing_paths() {
        assert!(clean_path("/a/../b").is_err());
        assert_eq!(clean_path("/a//b/").unwrap(), "a/b");
    }

    #[test]
    fn sub_cgroups() {
        let dir = |controllers: &str, path: &str| Dir {
            controllers: controllers.into(),
            mount: String::new(),
            path: path.into(),
        };
        let cg = Cgroup {
            dirs: vec![
                dir("cpu,cpuacct", "/c/x"),
                dir("memory", "/m/x"),
                dir("", "/u/x"),
            ],
        };
        let paths = |args: &[&str]| -> Result<Vec<String>> {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            Ok(cg
                .with_sub_cgroups(&args)?
                .dirs
                .into_iter()
                .map(|d| d.path)
                .collect())
        };
        assert_eq!(
            paths(&["a/b"]).unwrap(),
            ["/c/x/a/b", "/m/x/a/b", "/u/x/a/b"]
        );
        assert_eq!(paths(&["a/../b"]).unwrap(), ["/c/x/b", "/m/x/b", "/u/x/b"]);
        assert_eq!(
            paths(&["memory:s", "cpu,cpuacct:t"]).unwrap(),
            ["/c/x/t", "/m/x/s", "/u/x"]
        );
        for bad in [&["../y"][..], &["a/../../y"], &["/../y"]] {
            let e = paths(bad).unwrap_err();
            assert!(e.message().ends_with("is not a sub cgroup path"), "{e}");
        }
        assert!(paths(&["a", "b"]).is_err());
        assert!(paths(&["memory:a", "memory:b"]).is_err());
        assert!(paths(&[":a"]).is_err());
        assert!(paths(&["blkio:a"]).is_err());
        assert!(paths(&["cpu:a", "cpuacct:b"]).is_err());
    }
}
