//! The container's filesystem: propagation, the rootfs bind, the config's
//! mounts in order, /dev, the console, pivot_root, then masked and
//! read-only paths. Every destination is resolved inside the rootfs
//! (openat2 RESOLVE_IN_ROOT) and mounted onto through its fd, so a symlink
//! in the image can never send a mount to the host.

use super::container::HostRootfsBind;
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

/// Does the container have a mount namespace of its own? Without one it
/// shares the runtime's: its mounts are made there (as runc makes them),
/// nothing of the host's propagation is changed, and the init chroots.
pub(crate) fn own_mount_ns(spec: &Spec) -> bool {
    spec.linux.namespace(crate::sys::ns::Kind::Mount).is_some()
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
    sources: &MountSources,
) -> Result<Option<Console>> {
    let own_ns = own_mount_ns(spec);
    if own_ns {
        let requested = spec
            .linux
            .rootfs_propagation
            .as_deref()
            .map_or(m::MS_SLAVE | m::MS_REC, propagation_flags);
        // An unbindable tree would refuse the rootfs bind below: cut
        // propagation to the host now and make the container's root
        // unbindable in finish(), once it is its own.
        let prop = if requested & m::MS_UNBINDABLE != 0 {
            m::MS_SLAVE | m::MS_REC
        } else {
            requested
        };
        m::mount("", "/", "", prop, "").context("set propagation of /")?;
        make_rootfs_parent_private(rootfs)?;
    }
    let rootfs_s = rootfs.to_string_lossy();
    m::mount(&rootfs_s, &rootfs_s, "", m::MS_BIND | m::MS_REC, "")
        .with_context(|| format!("bind mount rootfs {rootfs_s}"))?;
    // Without a mount namespace of our own the runtime takes this bind
    // away when create fails or at delete (HostBindSite).
    populate(spec, rootfs, bundle, userns, terminal, cgroups, sources)
}

/// The config's mounts, /dev and the console, on the bound rootfs.
fn populate(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    userns: bool,
    terminal: bool,
    cgroups: &[CgroupBind],
    sources: &MountSources,
) -> Result<Option<Console>> {
    let root = sysfs::open_root(&rootfs.to_string_lossy())?;
    let mut read_only_later = Vec::new();
    for (i, mnt) in spec.mounts.iter().enumerate() {
        let ctx = MountCtx {
            root: &root,
            bundle,
            userns,
            cgroups,
            source: sources.get(i),
            // Whatever goes below a read-only mount (or into /dev) must be
            // made before it turns read-only. Not for procfs and sysfs: in
            // a user namespace the kernel may allow them only read-only
            // (when the visible one is), and their directories exist.
            defer_read_only: !matches!(mnt.kind.as_str(), "proc" | "sysfs")
                && (clean(&mnt.destination) == "/dev"
                    || spec.mounts[i + 1..]
                        .iter()
                        .any(|later| is_below(&later.destination, &mnt.destination))),
        };
        let later =
            mount_one(&ctx, mnt).map_err(|e| e.wrap(format!("mounts[{i}] {}", mnt.destination)))?;
        if let Some(d) = later {
            read_only_later.push((i, d));
        }
    }
    let dev_is_bound = spec
        .mounts
        .iter()
        .any(|x| clean(&x.destination) == "/dev" && is_bind(x));
    if !dev_is_bound {
        make_devices(&root, &spec.linux.devices, userns)?;
        make_dev_links(&root, spec)?;
    }
    let console = if terminal {
        Some(open_console(&root)?)
    } else {
        None
    };
    // In reverse config order: the mounts below another one (later in the
    // config) turn read-only before the one they sit in. A remount changes
    // its own mount only; recursive attributes (rro) reach every mount
    // below, the config's later ones included.
    for (i, d) in read_only_later.into_iter().rev() {
        let mnt = &spec.mounts[i];
        let dest = reopen(&root, &mnt.destination)?;
        let wrap = |e: Error| e.wrap(format!("mounts[{i}] {}: make read-only", mnt.destination));
        if let Some(flags) = d.remount {
            remount_bind(&sysfs::proc_path(&dest), flags).map_err(wrap)?;
        }
        set_recursive_attrs(&dest, d.recursive).map_err(wrap)?;
    }
    Ok(console)
}

/// Is `path` strictly below `dir` (both absolute, in the container)?
fn is_below(path: &str, dir: &str) -> bool {
    let dir = clean(dir);
    let path = clean(path);
    if dir == "/" {
        return path != "/";
    }
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// A shared mount holding the rootfs (after a propagation value that left
/// it shared: `shared`, or a non-recursive one over a shared mount other
/// than `/`) would send the rootfs bind and every mount of the container to
/// its peers on the host, and pivot_root refuses a shared parent. Make it
/// private in our namespace, whatever the config asked for `/` (the
/// container's own root gets its propagation after the pivot).
fn make_rootfs_parent_private(rootfs: &Path) -> Result<()> {
    // Through a symlink at its end, statx would name the link's mount.
    let path =
        std::fs::canonicalize(rootfs).with_context(|| format!("rootfs {}", rootfs.display()))?;
    let path = path.to_string_lossy();
    let id = m::mount_id_of(&path)?;
    let Some(parent) = m::mount_table()?.into_iter().find(|mi| mi.id == id) else {
        crate::bail!("no mount holds the rootfs {path}");
    };
    if parent.is_shared() {
        m::mount("", &parent.mount_point, "", m::MS_PRIVATE, "").with_context(|| {
            format!(
                "make {}, the mount holding the rootfs, private",
                parent.mount_point
            )
        })?;
    }
    Ok(())
}

fn clean(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/"
    } else {
        t
    }
}

use super::mount_sources::{is_bind, MountSources};

/// Resolve the destination again after something was mounted on it, so
/// the fd names the new mount and not the directory underneath.
fn reopen(root: &OwnedFd, dest: &str) -> Result<OwnedFd> {
    sysfs::open_in_root(root, dest, OFlags::PATH).with_context(|| format!("resolve {dest}"))
}

/// What one mount needs besides its config entry.
struct MountCtx<'a> {
    root: &'a OwnedFd,
    bundle: &'a Path,
    userns: bool,
    cgroups: &'a [CgroupBind],
    /// The source the runtime opened for a bind mount.
    source: Option<&'a OwnedFd>,
    /// Leave the mount writable; the caller remounts it read-only later.
    defer_read_only: bool,
}

/// What turns a mount read-only once everything below it is made.
struct Deferred {
    /// Remount flags (with MS_RDONLY).
    remount: Option<Flags>,
    /// mount_setattr attributes for the mount and all below it (with rro).
    recursive: m::Attrs,
}

/// What of `opts` waits until the end, if anything: a read-only remount
/// (`remount`), and the recursive attributes when they make it read-only.
fn deferral(ctx: &MountCtx, opts: &m::Options, remount: Option<Flags>) -> Option<Deferred> {
    let rro = opts.recursive.set & m::MOUNT_ATTR_RDONLY != 0;
    if !ctx.defer_read_only || (remount.is_none() && !rro) {
        return None;
    }
    Some(Deferred {
        remount,
        recursive: if rro {
            opts.recursive
        } else {
            m::Attrs::default()
        },
    })
}

/// Make one mount. Returns what is still to apply when its read-only
/// remount or attributes are deferred.
fn mount_one(ctx: &MountCtx, mnt: &Mount) -> Result<Option<Deferred>> {
    let root = ctx.root;
    let opts = m::parse_options(&mnt.options);
    if !opts.unsupported.is_empty() {
        crate::bail!(
            "mount option {} not supported by this build",
            opts.unsupported.join(",")
        );
    }
    if is_bind(mnt) {
        bind_one(ctx, mnt, &opts)?;
        let dest = reopen(root, &mnt.destination)?;
        let extra = opts.flags & m::BIND_REMOUNT_FLAGS;
        let read_only = extra & m::MS_RDONLY != 0;
        let later = deferral(ctx, &opts, read_only.then_some(extra));
        let now = match &later {
            Some(d) if d.remount.is_some() => extra & !m::MS_RDONLY,
            _ => extra,
        };
        if now != 0 {
            remount_bind(&sysfs::proc_path(&dest), now)?;
        }
        set_attrs(&dest, &opts, later.is_some())?;
        set_propagation(&dest, &opts.propagation)?;
        return Ok(later);
    }
    if mnt.kind == "cgroup" || mnt.kind == "cgroup2" {
        mount_cgroup(root, mnt, &opts, ctx.cgroups)?;
        set_attrs(&reopen(root, &mnt.destination)?, &opts, false)?;
        return Ok(None);
    }
    if mnt.kind.is_empty() {
        crate::bail!("type is required for a mount that is not a bind mount");
    }
    if mnt.kind == "proc" || mnt.kind == "sysfs" {
        // A symlink here would put the filesystem somewhere else in the
        // rootfs (an image's /proc -> /etc): masks would miss it.
        if sysfs::symlink_on_path(root, &mnt.destination)? {
            crate::bail!(
                "filesystem {:?} must be mounted on ordinary directory (the procfs and sysfs \
                 may not be mounted over a symbolic link)",
                mnt.kind
            );
        }
    }
    let dest = sysfs::ensure_in_root(root, &mnt.destination, Leaf::Dir, 0o755)?;
    let source = if mnt.source.is_empty() {
        &mnt.kind
    } else {
        &mnt.source
    };
    let target = sysfs::proc_path(&dest);
    let mut flags = opts.flags;
    let read_only = flags & m::MS_RDONLY != 0;
    let later = deferral(
        ctx,
        &opts,
        read_only.then_some(opts.flags & m::BIND_REMOUNT_FLAGS),
    );
    if later.as_ref().is_some_and(|d| d.remount.is_some()) {
        flags &= !m::MS_RDONLY;
    }
    match m::mount(source, &target, &mnt.kind, flags, &opts.data) {
        Ok(()) => {}
        // A user namespace that does not own the network namespace may not
        // mount sysfs: show the host's, as runc does.
        Err(e) if mnt.kind == "sysfs" && ctx.userns => {
            m::mount("/sys", &target, "", m::MS_BIND | m::MS_REC, "")
                .map_err(|_| e.wrap(format!("mount {} on {}", mnt.kind, mnt.destination)))?;
            let dest = reopen(root, &mnt.destination)?;
            remount_bind(&sysfs::proc_path(&dest), flags & m::BIND_REMOUNT_FLAGS)?;
        }
        Err(e) => return Err(e.wrap(format!("mount {} {}", mnt.kind, fs_hint(&opts.data)))),
    }
    let dest = reopen(root, &mnt.destination)?;
    set_attrs(&dest, &opts, later.is_some())?;
    set_propagation(&dest, &opts.propagation)?;
    Ok(later)
}

/// Bind the source of `mnt` on its destination: through the fd the
/// runtime opened when there is one, else by the source path.
fn bind_one(ctx: &MountCtx, mnt: &Mount, opts: &m::Options) -> Result<()> {
    let src = super::mount_sources::source_path(ctx.bundle, mnt);
    let is_dir = match ctx.source {
        Some(fd) => sysfs::is_dir(fd),
        None => std::fs::metadata(&src)
            .with_context(|| format!("bind source {}", src.display()))?
            .is_dir(),
    };
    let leaf = if is_dir { Leaf::Dir } else { Leaf::File };
    let dest = sysfs::ensure_in_root(ctx.root, &mnt.destination, leaf, 0o755)?;
    let source = match ctx.source {
        Some(fd) => sysfs::proc_path(fd),
        None => src.to_string_lossy().into_owned(),
    };
    m::mount(
        &source,
        &sysfs::proc_path(&dest),
        "",
        m::MS_BIND | (opts.flags & m::MS_REC),
        "",
    )
    .with_context(|| format!("bind {}", src.display()))
}

/// The option words that mount(2) cannot say (`rro`, `nosymfollow`, ...),
/// through mount_setattr(2); the recursive ones not when `deferred`.
fn set_attrs(dest: &OwnedFd, opts: &m::Options, deferred: bool) -> Result<()> {
    if !deferred {
        set_recursive_attrs(dest, opts.recursive)?;
    }
    if !opts.single.is_empty() {
        m::set_attrs(dest, opts.single, false).context("apply mount option nosymfollow")?;
    }
    Ok(())
}

fn set_recursive_attrs(dest: &OwnedFd, attrs: m::Attrs) -> Result<()> {
    if attrs.is_empty() {
        return Ok(());
    }
    m::set_attrs(dest, attrs, true).context("apply recursive mount options (rro, rnosuid, ...)")
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

/// A container that shares the runtime's mount namespace cannot have
/// masked or read-only paths: they would be made on the host's view.
pub(crate) fn check_shared_mount_ns(spec: &Spec) -> Result<()> {
    if own_mount_ns(spec) {
        return Ok(());
    }
    for (field, paths) in [
        ("linux.maskedPaths", &spec.linux.masked_paths),
        ("linux.readonlyPaths", &spec.linux.readonly_paths),
    ] {
        if !paths.is_empty() {
            return Err(crate::err_kind!(
                InvalidArgument,
                "{field}: unable to restrict sys entries without a private mount namespace"
            ));
        }
    }
    Ok(())
}

/// Where the init of a container without a mount namespace binds its
/// rootfs in the runtime's namespace: the rootfs's canonical path, and the
/// mount the bind goes on top of (the one that path reaches before).
pub(crate) struct HostBindSite {
    path: String,
    under: u64,
}

impl HostBindSite {
    /// None for a container with a mount namespace of its own (its
    /// mounts go away with it).
    pub(crate) fn before_create(spec: &Spec, rootfs: &Path) -> Result<Option<HostBindSite>> {
        if own_mount_ns(spec) {
            return Ok(None);
        }
        let path = std::fs::canonicalize(rootfs)
            .with_context(|| format!("rootfs {}", rootfs.display()))?
            .to_string_lossy()
            .into_owned();
        let under = m::mount_id_of(&path)?;
        Ok(Some(HostBindSite { path, under }))
    }

    /// The bind the init made, if it got that far: the mount at the path
    /// whose parent is the one that was there before.
    pub(crate) fn made(&self) -> Result<Option<HostRootfsBind>> {
        Ok(m::mount_table()?
            .into_iter()
            .find(|mi| mi.mount_point == self.path && mi.parent == self.under)
            .map(|mi| HostRootfsBind {
                path: self.path.clone(),
                mount_id: mi.id,
            }))
    }

    /// After a failed create: take away the bind the init made, if any.
    pub(crate) fn undo(&self) -> Result<()> {
        match self.made()? {
            Some(bind) => detach_host_rootfs_bind(&bind),
            None => Ok(()),
        }
    }
}

/// Take a container's rootfs bind (and every mount of the container on
/// it) out of the runtime's mount namespace, while it is still the mount
/// on top at its path: never anything someone else mounted there. runc
/// leaves them behind.
pub(crate) fn detach_host_rootfs_bind(bind: &HostRootfsBind) -> Result<()> {
    match m::mount_id_of(&bind.path) {
        Ok(id) if id == bind.mount_id => m::umount(&bind.path, m::MNT_DETACH),
        _ => Ok(()),
    }
}

/// Make the rootfs our `/`.
pub(crate) fn enter(spec: &Spec, rootfs: &Path, no_pivot: bool) -> Result<()> {
    rustix::process::chdir(rootfs).with_context(|| format!("chdir {}", rootfs.display()))?;
    if !own_mount_ns(spec) {
        // The runtime's namespace is the host's: neither pivot_root nor a
        // move may touch it.
        m::chroot(".")?;
    } else if no_pivot {
        hide_host_pseudo_filesystems(rootfs)?;
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

/// Without pivot_root the host's tree stays in the container's mount
/// namespace, under the moved rootfs. The kernel lets a user namespace
/// mount a fresh procfs or sysfs when the namespace holds a fully visible
/// one (mnt_too_revealing): the host's, unmasked, would do, and a process
/// of the container could mount an unmasked /proc. Take them away (cover
/// them where they cannot be unmounted), as runc does.
fn hide_host_pseudo_filesystems(rootfs: &Path) -> Result<()> {
    // mountinfo shows canonical paths: a rootfs reached through a symlink
    // must be compared as the kernel shows it, or its own mounts would
    // count as the host's.
    let rootfs =
        std::fs::canonicalize(rootfs).with_context(|| format!("rootfs {}", rootfs.display()))?;
    let rootfs = rootfs.to_string_lossy();
    let inside = |mp: &str| {
        mp == rootfs
            || mp
                .strip_prefix(rootfs.as_ref())
                .is_some_and(|r| r.starts_with('/'))
    };
    // A set: the same mount point may be listed many times (stacked mounts).
    let targets: std::collections::BTreeSet<String> = m::mount_table()?
        .into_iter()
        .filter(|mi| {
            (mi.fs_type == "proc" || mi.fs_type == "sysfs")
                && mi.root == "/"
                && !inside(&mi.mount_point)
        })
        .map(|mi| mi.mount_point)
        .collect();
    // Deepest first, so a parent's detach does not hide a child from us.
    let mut targets: Vec<String> = targets.into_iter().collect();
    targets.sort_by_key(|mp| std::cmp::Reverse(mp.len()));
    for mp in targets {
        // Never let the unmount reach the host.
        match m::mount("", &mp, "", m::MS_SLAVE | m::MS_REC, "") {
            Ok(()) => {}
            Err(_) if !Path::new(&mp).exists() => continue,
            Err(e) => return Err(e.wrap(format!("make {mp} a slave mount"))),
        }
        if m::umount(&mp, m::MNT_DETACH).is_err() {
            m::mount("tmpfs", &mp, "tmpfs", m::MS_RDONLY, "size=0")
                .with_context(|| format!("cover the host's {mp}"))?;
        }
    }
    Ok(())
}

/// Everything after pivot_root that needs the container's /proc: sysctls,
/// read-only and masked paths, rootfs propagation, a read-only root.
pub(crate) fn finish(spec: &Spec) -> Result<()> {
    for (key, value) in &spec.linux.sysctl {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).with_context(|| format!("linux.sysctl: set {key}"))?;
    }
    let root = sysfs::open_root("/")?;
    for p in &spec.linux.readonly_paths {
        readonly_path(&root, p).with_context(|| format!("linux.readonlyPaths: {p}"))?;
    }
    for p in &spec.linux.masked_paths {
        mask_path(&root, p).with_context(|| format!("linux.maskedPaths: {p}"))?;
    }
    if let Some(prop) = &spec.linux.rootfs_propagation {
        if own_mount_ns(spec) {
            m::mount("", "/", "", propagation_flags(prop), "")
                .context("linux.rootfsPropagation")?;
        }
    }
    if spec.root.readonly {
        remount_bind("/", m::MS_RDONLY).context("root.readonly: remount / read-only")?;
    }
    Ok(())
}

/// Open a masked or read-only path, refusing one whose top directory
/// (`/proc`, `/sys`) is a symbolic link: with an image's `/proc -> /etc`
/// the mask would land on the image's files and the real procfs (if any)
/// would stay unmasked. Below it, links inside the filesystem (such as
/// /proc/net) are followed, confined to the rootfs. None when there is
/// nothing at `p`.
fn open_restricted(root: &OwnedFd, p: &str) -> Result<Option<OwnedFd>> {
    let top = p.split('/').find(|c| !c.is_empty()).unwrap_or(".");
    if sysfs::symlink_on_path(root, top)? {
        crate::bail!(
            "a symbolic link on the path: the procfs (and sysfs) must be mounted on an \
             ordinary directory"
        );
    }
    match sysfs::open_in_root(root, p, OFlags::PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn readonly_path(root: &OwnedFd, p: &str) -> Result<()> {
    let Some(fd) = open_restricted(root, p)? else {
        return Ok(());
    };
    let target = sysfs::proc_path(&fd);
    m::mount(&target, &target, "", m::MS_BIND | m::MS_REC, "")?;
    let fd = reopen(root, p)?;
    remount_bind(&sysfs::proc_path(&fd), m::MS_RDONLY | m::MS_REC)
}

fn mask_path(root: &OwnedFd, p: &str) -> Result<()> {
    let Some(fd) = open_restricted(root, p)? else {
        return Ok(());
    };
    let target = sysfs::proc_path(&fd);
    if sysfs::is_dir(&fd) {
        m::mount("tmpfs", &target, "tmpfs", m::MS_RDONLY, "")
    } else {
        m::mount("/dev/null", &target, "", m::MS_BIND, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below() {
        assert!(is_below("/dev/pts", "/dev"));
        assert!(is_below("/dev/pts/", "/dev/"));
        assert!(!is_below("/dev", "/dev"));
        assert!(!is_below("/devices", "/dev"));
        assert!(is_below("/x", "/"));
    }
}
