//! The container's filesystem: propagation, the rootfs bind, the config's
//! mounts in order, /dev, the console, pivot_root, then masked and
//! read-only paths. Every destination is resolved inside the rootfs
//! (openat2 RESOLVE_IN_ROOT) and mounted onto through its fd, so a symlink
//! in the image can never send a mount to the host.

use crate::error::{Context, Error, Result};
use crate::oci::spec::{Device, Mount, Spec};
use crate::sys::fs::{self as sysfs, Leaf};
use crate::sys::mount::{self as m, Flags};
use crate::sys::pty;
use rustix::fs::OFlags;
use std::os::fd::OwnedFd;
use std::path::Path;

/// The pty of a container with `terminal: true`.
pub(crate) struct Console {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// A cgroup hierarchy to expose under a `cgroup` mount: the host mount
/// point and our cgroup's path in it, read in the host's cgroup namespace.
#[derive(Debug, Clone)]
pub(crate) struct CgroupBind {
    pub name: String,
    pub source: String,
}

fn propagation_flags(name: &str) -> Flags {
    match name {
        "private" => m::MS_PRIVATE,
        "rprivate" => m::MS_PRIVATE | m::MS_REC,
        "slave" => m::MS_SLAVE,
        "shared" => m::MS_SHARED,
        "rshared" => m::MS_SHARED | m::MS_REC,
        "unbindable" => m::MS_UNBINDABLE,
        "runbindable" => m::MS_UNBINDABLE | m::MS_REC,
        _ => m::MS_SLAVE | m::MS_REC,
    }
}

/// Everything before pivot_root. Runs in the init, in its new mount
/// namespace, still seeing the host's files.
pub(crate) fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    userns: bool,
    terminal: bool,
    cgroups: &[CgroupBind],
) -> Result<Option<Console>> {
    let prop = spec
        .linux
        .rootfs_propagation
        .as_deref()
        .map_or(m::MS_SLAVE | m::MS_REC, propagation_flags);
    m::mount("", "/", "", prop, "").context("set propagation of /")?;
    if prop & m::MS_SHARED != 0 {
        // pivot_root refuses a shared parent: make the mount holding the
        // rootfs private (its own propagation comes back after the pivot).
        m::mount("", &mount_point_of(rootfs)?, "", m::MS_PRIVATE, "")
            .context("make the rootfs's parent mount private")?;
    }
    let rootfs_s = rootfs.to_string_lossy();
    m::mount(&rootfs_s, &rootfs_s, "", m::MS_BIND | m::MS_REC, "")
        .with_context(|| format!("bind mount rootfs {rootfs_s}"))?;
    let root = sysfs::open_root(&rootfs_s)?;
    for (i, mnt) in spec.mounts.iter().enumerate() {
        mount_one(&root, bundle, mnt, userns, cgroups)
            .map_err(|e| e.wrap(format!("mounts[{i}] {}", mnt.destination)))?;
    }
    let dev_is_bound = spec
        .mounts
        .iter()
        .any(|x| clean(&x.destination) == "/dev" && is_bind(x));
    if !dev_is_bound {
        make_devices(&root, &spec.linux.devices, userns)?;
        make_dev_links(&root, spec)?;
    }
    if terminal {
        return open_console(&root).map(Some);
    }
    Ok(None)
}

/// The mount point of the mount that holds `path` (the longest mount point
/// in mountinfo that is a prefix of it).
fn mount_point_of(path: &Path) -> Result<String> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let path = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| {
            *mp == "/"
                || path == *mp
                || path
                    .strip_prefix(*mp)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|mp| mp.len())
        .map(str::to_string)
        .ok_or_else(|| Error::new(format!("no mount holds {path}")))
}

fn clean(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/"
    } else {
        t
    }
}

fn is_bind(mnt: &Mount) -> bool {
    mnt.kind == "bind" || mnt.options.iter().any(|o| o == "bind" || o == "rbind")
}

/// Resolve the destination again after something was mounted on it, so
/// the fd names the new mount and not the directory underneath.
fn reopen(root: &OwnedFd, dest: &str) -> Result<OwnedFd> {
    sysfs::open_in_root(root, dest, OFlags::PATH).with_context(|| format!("resolve {dest}"))
}

fn mount_one(
    root: &OwnedFd,
    bundle: &Path,
    mnt: &Mount,
    userns: bool,
    cgroups: &[CgroupBind],
) -> Result<()> {
    let opts = m::parse_options(&mnt.options);
    if !opts.unsupported.is_empty() {
        crate::bail!(
            "mount option {} not supported by this build",
            opts.unsupported.join(",")
        );
    }
    if is_bind(mnt) {
        let src = if mnt.source.starts_with('/') {
            Path::new(&mnt.source).to_path_buf()
        } else {
            bundle.join(&mnt.source)
        };
        let meta =
            std::fs::metadata(&src).with_context(|| format!("bind source {}", src.display()))?;
        let leaf = if meta.is_dir() { Leaf::Dir } else { Leaf::File };
        let dest = sysfs::ensure_in_root(root, &mnt.destination, leaf, 0o755)?;
        m::mount(
            &src.to_string_lossy(),
            &sysfs::proc_path(&dest),
            "",
            m::MS_BIND | (opts.flags & m::MS_REC),
            "",
        )
        .with_context(|| format!("bind {}", src.display()))?;
        let dest = reopen(root, &mnt.destination)?;
        let extra = opts.flags & m::BIND_REMOUNT_FLAGS;
        if extra != 0 {
            remount_bind(&sysfs::proc_path(&dest), extra)?;
        }
        return set_propagation(&dest, &opts.propagation);
    }
    if mnt.kind == "cgroup" || mnt.kind == "cgroup2" {
        return mount_cgroup(root, mnt, &opts, cgroups);
    }
    if mnt.kind.is_empty() {
        crate::bail!("type is required for a mount that is not a bind mount");
    }
    let dest = sysfs::ensure_in_root(root, &mnt.destination, Leaf::Dir, 0o755)?;
    let source = if mnt.source.is_empty() {
        &mnt.kind
    } else {
        &mnt.source
    };
    let target = sysfs::proc_path(&dest);
    match m::mount(source, &target, &mnt.kind, opts.flags, &opts.data) {
        Ok(()) => {}
        // A user namespace that does not own the network namespace may not
        // mount sysfs: show the host's, as runc does.
        Err(e) if mnt.kind == "sysfs" && userns => {
            m::mount("/sys", &target, "", m::MS_BIND | m::MS_REC, "")
                .map_err(|_| e.wrap(format!("mount {} on {}", mnt.kind, mnt.destination)))?;
            let dest = reopen(root, &mnt.destination)?;
            remount_bind(&sysfs::proc_path(&dest), opts.flags & m::BIND_REMOUNT_FLAGS)?;
        }
        Err(e) => return Err(e.wrap(format!("mount {} {}", mnt.kind, fs_hint(&opts.data)))),
    }
    set_propagation(&reopen(root, &mnt.destination)?, &opts.propagation)
}

fn fs_hint(data: &str) -> String {
    if data.is_empty() {
        String::new()
    } else {
        format!("({data})")
    }
}

fn set_propagation(dest: &OwnedFd, props: &[Flags]) -> Result<()> {
    for p in props {
        m::mount("", &sysfs::proc_path(dest), "", *p, "").context("set mount propagation")?;
    }
    Ok(())
}

/// Remount a bind mount with `flags`, keeping the flags the kernel locks
/// (nosuid, nodev, noexec, atime) on mounts inherited into a user namespace.
pub(crate) fn remount_bind(target: &str, flags: Flags) -> Result<()> {
    let locked = rustix::fs::statvfs(target)
        .map(|st| {
            let f = st.f_flag;
            let mut out: Flags = 0;
            for (st_flag, ms_flag) in [
                (rustix::fs::StatVfsMountFlags::NOSUID, m::MS_NOSUID),
                (rustix::fs::StatVfsMountFlags::NODEV, m::MS_NODEV),
                (rustix::fs::StatVfsMountFlags::NOEXEC, m::MS_NOEXEC),
                (rustix::fs::StatVfsMountFlags::NOATIME, m::MS_NOATIME),
                (rustix::fs::StatVfsMountFlags::NODIRATIME, m::MS_NODIRATIME),
                (rustix::fs::StatVfsMountFlags::RELATIME, m::MS_RELATIME),
            ] {
                if f.contains(st_flag) {
                    out |= ms_flag;
                }
            }
            out
        })
        .unwrap_or(0);
    let first = m::mount("", target, "", m::MS_BIND | m::MS_REMOUNT | flags, "");
    if first.is_ok() {
        return Ok(());
    }
    m::mount(
        "",
        target,
        "",
        m::MS_BIND | m::MS_REMOUNT | flags | locked,
        "",
    )
    .context("remount bind mount")
}

/// What a `cgroup` mount shows: each hierarchy of the container's cgroup,
/// under the name of its host mount point.
pub(crate) fn cgroup_binds(cg: &crate::cgroups::Cgroup) -> Vec<CgroupBind> {
    cg.dirs
        .iter()
        .map(|d| CgroupBind {
            name: d.mount.rsplit('/').next().unwrap_or(&d.mount).to_string(),
            source: d.path.clone(),
        })
        .collect()
}

fn mount_cgroup(
    root: &OwnedFd,
    mnt: &Mount,
    opts: &m::Options,
    cgroups: &[CgroupBind],
) -> Result<()> {
    let dest = sysfs::ensure_in_root(root, &mnt.destination, Leaf::Dir, 0o755)?;
    if crate::cgroups::is_unified() {
        return m::mount(
            "cgroup2",
            &sysfs::proc_path(&dest),
            "cgroup2",
            opts.flags,
            "",
        )
        .context("mount cgroup2");
    }
    // cgroup v1: a tmpfs holding one bind of our cgroup per hierarchy.
    let base = opts.flags & (m::MS_NOSUID | m::MS_NODEV | m::MS_NOEXEC);
    m::mount("tmpfs", &sysfs::proc_path(&dest), "tmpfs", base, "mode=755")
        .context("mount cgroup tmpfs")?;
    for cg in cgroups {
        let sub = format!("{}/{}", mnt.destination.trim_end_matches('/'), cg.name);
        let d = sysfs::ensure_in_root(root, &sub, Leaf::Dir, 0o755)?;
        m::mount(
            &cg.source,
            &sysfs::proc_path(&d),
            "",
            m::MS_BIND | m::MS_REC,
            "",
        )
        .with_context(|| format!("bind {}", cg.source))?;
        let d = reopen(root, &sub)?;
        remount_bind(&sysfs::proc_path(&d), opts.flags & m::BIND_REMOUNT_FLAGS)?;
        // Combined hierarchies (cpu,cpuacct) are also reachable by each name.
        if cg.name.contains(',') {
            let parent = reopen(root, &mnt.destination)?;
            for part in cg.name.split(',') {
                let _ = rustix::fs::symlinkat(cg.name.as_str(), &parent, part);
            }
        }
    }
    if opts.flags & m::MS_RDONLY != 0 {
        let d = reopen(root, &mnt.destination)?;
        m::mount(
            "",
            &sysfs::proc_path(&d),
            "",
            m::MS_REMOUNT | m::MS_RDONLY | base,
            "",
        )
        .context("remount cgroup tmpfs read-only")?;
    }
    Ok(())
}

/// The devices every container gets (runc's defaults), then the config's.
fn default_devices() -> Vec<Device> {
    let dev = |name: &str, major, minor| Device {
        path: format!("/dev/{name}"),
        kind: 'c',
        major,
        minor,
        file_mode: Some(0o666),
        uid: Some(0),
        gid: Some(0),
    };
    vec![
        dev("null", 1, 3),
        dev("zero", 1, 5),
        dev("full", 1, 7),
        dev("random", 1, 8),
        dev("urandom", 1, 9),
        dev("tty", 5, 0),
    ]
}

fn make_devices(root: &OwnedFd, extra: &[Device], userns: bool) -> Result<()> {
    let mut all = default_devices();
    for d in extra {
        all.retain(|x| x.path != d.path);
        all.push(d.clone());
    }
    for d in &all {
        make_device(root, d, userns).with_context(|| format!("linux.devices: {}", d.path))?;
    }
    Ok(())
}

fn make_device(root: &OwnedFd, d: &Device, userns: bool) -> Result<()> {
    let (parent, name) = d.path.rsplit_once('/').unwrap_or(("/dev", &d.path));
    // *at calls accept the O_PATH directory fd as it is.
    let dir = sysfs::ensure_in_root(root, parent, Leaf::Dir, 0o755)?;
    // A node may be there from the image: replace it.
    let _ = rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty());
    if userns {
        // mknod is refused in a user namespace: bind the host's node.
        let f = rustix::fs::openat(
            &dir,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o000),
        )
        .with_context(|| format!("create {}", d.path))?;
        drop(f);
        let target = sysfs::open_in_root(root, &d.path, OFlags::PATH)
            .with_context(|| format!("resolve {}", d.path))?;
        return m::mount(&d.path, &sysfs::proc_path(&target), "", m::MS_BIND, "")
            .with_context(|| format!("bind host {}", d.path));
    }
    let kind = match d.kind {
        'b' => libc::S_IFBLK,
        'p' => libc::S_IFIFO,
        _ => libc::S_IFCHR,
    };
    let perm = d.file_mode.unwrap_or(0o666) & 0o7777;
    sysfs::mknodat(&dir, name, kind, perm, d.major, d.minor)?;
    rustix::fs::chownat(
        &dir,
        name,
        Some(rustix::fs::Uid::from_raw(d.uid.unwrap_or(0))),
        Some(rustix::fs::Gid::from_raw(d.gid.unwrap_or(0))),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("chown {}", d.path))
}

fn make_dev_links(root: &OwnedFd, spec: &Spec) -> Result<()> {
    let dev = sysfs::ensure_in_root(root, "/dev", Leaf::Dir, 0o755)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    let has_devpts = spec
        .mounts
        .iter()
        .any(|x| clean(&x.destination) == "/dev/pts" && x.kind == "devpts");
    if has_devpts {
        let _ = rustix::fs::unlinkat(&dev, "ptmx", rustix::fs::AtFlags::empty());
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        match rustix::fs::symlinkat(target, &dev, name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Error::from(e).wrap(format!("symlink /dev/{name}"))),
        }
    }
    Ok(())
}

/// Open a pty in the container's devpts and bind its slave on /dev/console.
fn open_console(root: &OwnedFd) -> Result<Console> {
    let master = sysfs::open_in_root(root, "/dev/ptmx", OFlags::RDWR | OFlags::NOCTTY)
        .context("terminal: open /dev/ptmx in the container (is /dev/pts mounted?)")?;
    let slave = pty::open_peer(&master)?;
    let console = sysfs::ensure_in_root(root, "/dev/console", Leaf::File, 0o600)?;
    m::mount(
        &sysfs::proc_path(&slave),
        &sysfs::proc_path(&console),
        "",
        m::MS_BIND,
        "",
    )
    .context("bind the pty on /dev/console")?;
    Ok(Console { master, slave })
}

/// Make the rootfs our `/`.
pub(crate) fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    rustix::process::chdir(rootfs).with_context(|| format!("chdir {}", rootfs.display()))?;
    if no_pivot {
        m::mount(&rootfs.to_string_lossy(), "/", "", m::MS_MOVE, "").context("move rootfs to /")?;
        m::chroot(".")?;
    } else {
        m::pivot_root(".", ".")?;
        // The old root is now stacked under "."; detach it without letting
        // the unmount propagate to the host.
        m::mount("", ".", "", m::MS_SLAVE | m::MS_REC, "").context("make old root rslave")?;
        m::umount(".", m::MNT_DETACH)?;
    }
    rustix::process::chdir("/").context("chdir /")
}

/// Everything after pivot_root that needs the container's /proc: sysctls,
/// read-only and masked paths, rootfs propagation, a read-only root.
pub(crate) fn finish(spec: &Spec) -> Result<()> {
    for (key, value) in &spec.linux.sysctl {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).with_context(|| format!("linux.sysctl: set {key}"))?;
    }
    for p in &spec.linux.readonly_paths {
        readonly_path(p).with_context(|| format!("linux.readonlyPaths: {p}"))?;
    }
    for p in &spec.linux.masked_paths {
        mask_path(p).with_context(|| format!("linux.maskedPaths: {p}"))?;
    }
    if let Some(prop) = &spec.linux.rootfs_propagation {
        m::mount("", "/", "", propagation_flags(prop), "").context("linux.rootfsPropagation")?;
    }
    if spec.root.readonly {
        remount_bind("/", m::MS_RDONLY).context("root.readonly: remount / read-only")?;
    }
    Ok(())
}

fn readonly_path(p: &str) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    m::mount(p, p, "", m::MS_BIND | m::MS_REC, "")?;
    remount_bind(p, m::MS_RDONLY | m::MS_REC)
}

fn mask_path(p: &str) -> Result<()> {
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
        Ok(meta) if meta.is_dir() => m::mount("tmpfs", p, "tmpfs", m::MS_RDONLY, ""),
        Ok(_) => m::mount("/dev/null", p, "", m::MS_BIND, ""),
    }
}
