//! The runtime's side of create: validate, make the state dir, clone the
//! init with its namespaces, write its id maps, wait until it is ready, and
//! record it. Any failure removes everything it made.

use super::container::{self, Container, State, StateRoot};
use super::init::{self, InitContext};
use super::mount_sources::{self, MountSources};
use super::tty;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::oci::resources;
use crate::oci::spec::{self, Spec};
use crate::sys::{ns, process, signal, sock};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: String,
    pub pid_file: Option<String>,
    pub console_socket: Option<String>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// With a terminal and no console socket, keep the pty for ourselves
    /// (`run` in the foreground) instead of refusing.
    pub own_console: bool,
}

/// A created container, and the runtime's end of its console when it kept
/// the pty for itself.
pub struct Created {
    pub container: Container,
    pub console: Option<UnixStream>,
}

/// The runtime's end of the channel to the init it cloned.
pub(crate) struct ParentChannel(OwnedFd);
/// The init's end of that channel.
pub(crate) struct InitChannel(OwnedFd);

const MSG_MAPS_WRITTEN: &[u8] = b"maps";
const MSG_RELEASE: &[u8] = b"go";
const MSG_HOOKS: &[u8] = b"hooks";
const MSG_PID: &[u8] = b"pid:";
const MSG_RESUME: &[u8] = b"resume";
const MSG_READY: &[u8] = b"ready";
const MSG_ERROR: &[u8] = b"error:";
const MSG_SOURCE: &[u8] = b"source:";
const MSG_SOURCES_DONE: &[u8] = b"sources";

pub(crate) fn channel() -> Result<(ParentChannel, InitChannel)> {
    let (a, b) = sock::seqpacket_pair()?;
    Ok((ParentChannel(a), InitChannel(b)))
}

fn recv(fd: &OwnedFd) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 8192];
    loop {
        match rustix::net::recv(fd, &mut buf, rustix::net::RecvFlags::empty()) {
            Ok((n, _)) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::from(e).wrap("read from init channel")),
        }
    }
}

fn send(fd: &OwnedFd, msg: &[u8]) -> Result<()> {
    rustix::net::send(fd, msg, rustix::net::SendFlags::NOSIGNAL)
        .context("write to init channel")?;
    Ok(())
}

impl ParentChannel {
    fn maps_written(&self) -> Result<()> {
        send(&self.0, MSG_MAPS_WRITTEN)
    }

    /// The init's pid, as the intermediate process that cloned it tells it.
    fn recv_init_pid(&self) -> Result<process::Pid> {
        let msg = recv(&self.0)?;
        if let Some(n) = msg.strip_prefix(MSG_PID) {
            if let Some(pid) = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()) {
                return Ok(pid);
            }
        }
        match msg.strip_prefix(MSG_ERROR) {
            Some(text) => Err(Error::new(String::from_utf8_lossy(text).into_owned())),
            None => Err(Error::new("container init exited before it was ready")),
        }
    }

    /// Wait for the init to reach the point where runtime hooks run.
    fn wait_hooks_point(&self) -> Result<()> {
        let msg = recv(&self.0)?;
        if msg == MSG_HOOKS {
            Ok(())
        } else if let Some(text) = msg.strip_prefix(MSG_ERROR) {
            Err(Error::new(String::from_utf8_lossy(text).into_owned()))
        } else {
            Err(Error::new("container init exited before it was ready"))
        }
    }

    fn resume(&self) -> Result<()> {
        send(&self.0, MSG_RESUME)
    }

    /// Pass the bind sources opened for the init, each with the index of
    /// its mount in the config.
    fn send_mount_sources(&self, sources: &[(usize, OwnedFd)]) -> Result<()> {
        for (i, fd) in sources {
            let mut msg = MSG_SOURCE.to_vec();
            msg.extend_from_slice(i.to_string().as_bytes());
            sock::send_fd(&self.0, &msg, fd.as_raw_fd())?;
        }
        send(&self.0, MSG_SOURCES_DONE)
    }

    /// Let an exec'd child go on (it is in its cgroups now).
    pub(crate) fn release(&self) -> Result<()> {
        send(&self.0, MSG_RELEASE)
    }

    /// Wait for a child to exec: the channel closes (close-on-exec) with no
    /// message, or carries its error.
    pub(crate) fn wait_exec(&self) -> Result<()> {
        let msg = recv(&self.0)?;
        match msg.strip_prefix(MSG_ERROR) {
            Some(text) => Err(Error::new(String::from_utf8_lossy(text).into_owned())),
            None if msg.is_empty() => Ok(()),
            None => Err(Error::new("unexpected message from the exec child")),
        }
    }

    /// An error the init has already sent, if any (does not wait).
    fn pending_error(&self) -> Option<Error> {
        let mut buf = vec![0u8; 8192];
        let (n, _) = rustix::net::recv(&self.0, &mut buf, rustix::net::RecvFlags::DONTWAIT).ok()?;
        let text = buf[..n].strip_prefix(MSG_ERROR)?;
        Some(Error::new(String::from_utf8_lossy(text).into_owned()))
    }

    /// Wait for the init to be ready; its error if it failed.
    fn wait_ready(&self) -> Result<()> {
        let msg = recv(&self.0)?;
        if msg == MSG_READY {
            Ok(())
        } else if let Some(text) = msg.strip_prefix(MSG_ERROR) {
            Err(Error::new(String::from_utf8_lossy(text).into_owned()))
        } else {
            Err(Error::new("container init exited before it was ready"))
        }
    }
}

impl InitChannel {
    pub(crate) fn wait_maps_written(&self) -> Result<()> {
        match recv(&self.0)?.as_slice() {
            MSG_MAPS_WRITTEN => Ok(()),
            _ => Err(Error::new("runtime went away before writing the id maps")),
        }
    }
    /// Tell the runtime the pid of the init we cloned.
    pub(crate) fn send_init_pid(&self, pid: process::Pid) -> Result<()> {
        send(&self.0, format!("pid:{pid}").as_bytes())
    }

    /// Mounts are done: let the runtime run its hooks, and wait for it.
    pub(crate) fn hooks_point(&self) -> Result<()> {
        send(&self.0, MSG_HOOKS)?;
        match recv(&self.0)?.as_slice() {
            MSG_RESUME => Ok(()),
            _ => Err(Error::new("runtime went away while running hooks")),
        }
    }

    pub(crate) fn wait_release(&self) -> Result<()> {
        match recv(&self.0)?.as_slice() {
            MSG_RELEASE => Ok(()),
            _ => Err(Error::new("runtime went away before releasing the process")),
        }
    }

    /// The bind sources the runtime opened for us (see mount_sources).
    pub(crate) fn recv_mount_sources(&self) -> Result<Vec<(usize, OwnedFd)>> {
        let mut out = Vec::new();
        loop {
            let mut buf = [0u8; 64];
            let (n, fd) = sock::recv_fd(&self.0, &mut buf)?;
            let msg = &buf[..n];
            if msg == MSG_SOURCES_DONE {
                return Ok(out);
            }
            let index = msg
                .strip_prefix(MSG_SOURCE)
                .and_then(|i| std::str::from_utf8(i).ok()?.parse().ok());
            match (index, fd) {
                (Some(i), Some(fd)) => out.push((i, fd)),
                _ => crate::bail!("runtime went away before passing the bind mount sources"),
            }
        }
    }

    pub(crate) fn ready(&self) -> Result<()> {
        send(&self.0, MSG_READY)
    }
    pub(crate) fn fail(&self, e: &Error) {
        let mut msg = MSG_ERROR.to_vec();
        msg.extend_from_slice(e.message().as_bytes());
        msg.truncate(8000);
        let _ = send(&self.0, &msg);
    }
}

/// Removes a half-made container (state dir, cgroup) unless disarmed.
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
}

impl Undo {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.destroy();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Everything that does not need the state dir yet: config, rootfs and
/// option checks, so a bad input leaves nothing behind.
fn validate(opts: &CreateOptions) -> Result<(PathBuf, Spec, String)> {
    container::validate_id(&opts.id)?;
    let bundle = spec::bundle_dir(&opts.bundle)?;
    let (spec, text) = spec::load_with_text(&bundle)?;
    if let Some(section) = spec.linux.unsupported.first() {
        crate::bail!(
            "{}: {section}: not supported by this build yet",
            bundle.join("config.json").display()
        );
    }
    let process = spec.process.as_ref().ok_or_else(|| {
        Error::new(format!(
            "{}: process: required field is missing",
            bundle.join("config.json").display()
        ))
    })?;
    let rootfs = spec.rootfs(&bundle);
    if !rootfs.is_dir() {
        crate::bail!("rootfs {}: no such directory", rootfs.display());
    }
    super::rootfs::check_shared_mount_ns(&spec)?;
    if spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.linux.namespace(ns::Kind::Uts).is_none()
    {
        crate::bail!("hostname: unable to set a hostname without a private UTS namespace");
    }
    check_sysctls(&spec)?;
    match (process.terminal, &opts.console_socket) {
        (true, None) if !opts.own_console => {
            crate::bail!("cannot allocate tty if runc will detach without setting console socket")
        }
        (false, Some(_)) => {
            crate::bail!("cannot use console socket if runc will not detach or allocate tty")
        }
        _ => {}
    }
    Ok((bundle, spec, text))
}

/// --preserve-fds N: fds 3 .. 3+N-1 must all be open.
pub(crate) fn check_preserved_fds(n: u32) -> Result<()> {
    if n > 1 << 20 {
        crate::bail!("--preserve-fds {n}: too many");
    }
    for fd in 3..3 + n as i32 {
        if !process::fd_is_open(fd) {
            crate::bail!("--preserve-fds {n}: fd {fd} is not open");
        }
        // Opened by the runtime itself after fd was found free.
        if crate::log::sink_fd() == Some(fd) {
            crate::bail!("--preserve-fds {n}: fd {fd} is not open (it is the runtime's log)");
        }
    }
    Ok(())
}

/// A sysctl may only be set when the namespace it belongs to is the
/// container's own; anything else would change the host.
fn check_sysctls(spec: &Spec) -> Result<()> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let has = |k: ns::Kind| spec.linux.namespace(k).is_some();
    for (key, _) in &spec.linux.sysctl {
        let ok = if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            has(ns::Kind::Ipc)
        } else if key.starts_with("net.") {
            has(ns::Kind::Network)
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            has(ns::Kind::Uts)
        } else {
            false
        };
        if !ok {
            crate::bail!(
                "linux.sysctl: {key} is not in a separate kernel namespace of the container"
            );
        }
    }
    Ok(())
}

/// The device cgroup rules: the config's, then the defaults every
/// container gets (as runc: devices the config creates get no rule of
/// their own, so a config's deny rule stands).
fn device_rules(spec: &Spec) -> Vec<resources::DeviceRule> {
    with_default_device_rules(
        spec.linux
            .resources
            .as_ref()
            .map_or(&[][..], |r| &r.devices),
    )
}

/// `rules`, then the defaults every container gets.
pub(crate) fn with_default_device_rules(
    rules: &[resources::DeviceRule],
) -> Vec<resources::DeviceRule> {
    let mut all = rules.to_vec();
    all.extend(resources::default_device_rules());
    all
}

/// `runc create`: leave an init that has done everything but exec.
pub fn create(root: &StateRoot, opts: &CreateOptions) -> Result<Created> {
    // The init waits for `start` in the container's namespaces as a clone
    // of us: anything that can see it there (an exec'd process, a container
    // sharing its pid namespace) must not reach the host's binary through
    // /proc/PID/exe (CVE-2019-5736). This re-execs the whole command.
    crate::sys::exe::ensure_sealed()?;
    let (bundle, spec, config_text) = validate(opts)?;
    crate::log::debug!("create {}: bundle {}", opts.id, bundle.display());
    let cgroup = Cgroup::for_container(spec.linux.cgroups_path.as_deref(), &opts.id)?;
    // Sharing a cgroup would let one container's delete kill the other's
    // processes (runc refuses too).
    if let Some(pid) = cgroup.procs().first() {
        crate::bail!(
            "container's cgroup is not empty: {} holds pid {pid} (another container?)",
            cgroup.dirs.first().map_or("", |d| d.path.as_str())
        );
    }
    // Its processes would stop as they move in, and create would hang.
    if let Some(dir) = cgroup.frozen_dir() {
        crate::bail!("container's cgroup unexpectedly frozen: {dir} (thaw or remove it)");
    }
    if opts.preserve_fds > 0 {
        check_preserved_fds(opts.preserve_fds)?;
    }
    let dir = root.create_dir(&opts.id)?;
    let mut undo = Undo {
        dir: Some(dir.clone()),
        cgroup: Some(cgroup.clone()),
    };
    // The config as created: exec applies it, whatever the bundle holds later.
    container::write_replace(&dir.join(container::CONFIG_FILE), config_text.as_bytes())?;
    cgroup.create()?;
    // A frozen parent freezes the new cgroup too (checked only now: a cgroup
    // inherits the state when it is made).
    if let Some(dir) = cgroup.frozen_dir() {
        crate::bail!(
            "container's cgroup {dir} is frozen by a frozen parent cgroup (thaw the parent)"
        );
    }
    let no_resources = resources::Resources::default();
    cgroup
        .apply(
            spec.linux.resources.as_ref().unwrap_or(&no_resources),
            &device_rules(&spec),
        )
        .map_err(|e| e.wrap("linux.resources"))?;
    let (console, own_end) = tty::console_endpoints(
        opts.console_socket.as_deref(),
        spec.process.as_ref().is_some_and(|p| p.terminal),
    )?;
    let container = spawn(&dir, &bundle, &spec, opts, console, &cgroup)?;
    crate::log::debug!(
        "create {}: init {} ready, waiting for start",
        opts.id,
        container.state.pid
    );
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, container.state.pid).inspect_err(|_| {
            let _ = process::kill(container.state.pid, libc::SIGKILL);
            let _ = process::wait_pid(container.state.pid, false);
            if let Some(bind) = &container.state.rootfs_bind {
                let _ = super::rootfs::detach_host_rootfs_bind(bind);
            }
        })?;
    }
    undo.disarm();
    Ok(Created {
        container,
        console: own_end,
    })
}

pub(crate) fn write_pid_file(path: &str, pid: process::Pid) -> Result<()> {
    let p = Path::new(path);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    container::write_replace(&abs, pid.to_string().as_bytes())
}

/// Bind the start socket in the state dir through /proc/self/fd, which
/// keeps the path short whatever the length of --root.
fn bind_exec_socket(dir: &Path) -> Result<UnixListener> {
    let dirfd = crate::sys::fs::open_root(&dir.to_string_lossy())?;
    let path = format!(
        "{}/{}",
        crate::sys::fs::proc_path(&dirfd),
        super::EXEC_SOCKET
    );
    UnixListener::bind(&path)
        .with_context(|| format!("bind {}", dir.join(super::EXEC_SOCKET).display()))
}

fn open_ns_paths(spec: &Spec) -> Result<Vec<(ns::Kind, OwnedFd)>> {
    spec.linux
        .namespaces
        .iter()
        .filter_map(|n| n.path.as_ref().map(|p| (n.kind, p)))
        .map(|(kind, path)| {
            let fd = rustix::fs::open(
                path.as_str(),
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .with_context(|| {
                format!(
                    "linux.namespaces: {} namespace path {path}",
                    kind.oci_name()
                )
            })?;
            if kind == ns::Kind::Mount && ns::is_own(&fd, kind)? {
                // The init would set up the rootfs (propagation, pivot_root)
                // in the host's view of the files.
                return Err(crate::err_kind!(
                    InvalidArgument,
                    "linux.namespaces: mount namespace path {path} is the runtime's own mount \
                     namespace (leave the mount namespace out of the config to share it)"
                ));
            }
            Ok((kind, fd))
        })
        .collect()
}

fn spawn(
    dir: &Path,
    bundle: &Path,
    spec: &Spec,
    opts: &CreateOptions,
    console: Option<UnixStream>,
    cgroup: &Cgroup,
) -> Result<Container> {
    let process = spec.process.as_ref().expect("validated");
    let listener = bind_exec_socket(dir)?;
    let joins = open_ns_paths(spec)?;
    // Namespaces that only matter to the container are joined here, before
    // the clone, while we still hold every privilege; the mount namespace
    // is joined by the init, since we still need our own view of the files.
    let mut init_joins = Vec::new();
    let mut join_user = None;
    let mut own_namespaces = ns::Return::default();
    for (kind, fd) in joins {
        match kind {
            ns::Kind::Mount => init_joins.push((kind, fd)),
            // Joined by an intermediate process, so that the namespaces the
            // init creates belong to that user namespace (see below).
            ns::Kind::User => join_user = Some(fd),
            // Left on every way out of this function: the guard's drop.
            _ => own_namespaces.enter(&fd, kind)?,
        }
    }
    let new_flags: u64 = spec
        .linux
        .namespaces
        .iter()
        .filter(|n| n.path.is_none())
        .map(|n| n.kind.clone_flag())
        .fold(0, |a, b| a | b);
    let userns = if new_flags & ns::Kind::User.clone_flag() != 0 {
        init::UserNs::New
    } else if join_user.is_some() {
        init::UserNs::Joined
    } else {
        init::UserNs::Host
    };
    let cgroup_binds = super::rootfs::cgroup_binds(cgroup);
    // Compiled here, so a bad profile fails create before any clone.
    let seccomp = super::user_process::compile_seccomp(spec)?;
    // Read here, not in the child (see caps::last_cap).
    let last_cap = crate::sys::caps::last_cap();
    let (parent, child) = channel()?;
    let rootfs = spec.rootfs(bundle);
    let bind_site = super::rootfs::HostBindSite::before_create(spec, &rootfs)?;
    let v2_fd = cgroup.open_v2_dir()?;
    let saved_mask = signal::block_all()?;
    // With a user namespace to join, an intermediate child joins it and
    // clones the init; we adopt the init when the intermediate exits.
    let (clone_flags, intermediate) = match &join_user {
        Some(_) => {
            process::set_child_subreaper()?;
            (0, true)
        }
        None => (new_flags, false),
    };
    let forked = process::clone_into_cgroup(clone_flags, v2_fd.as_ref());
    match forked {
        Ok((process::Forked::Child, _)) => {
            drop(parent);
            if let Some(user) = &join_user {
                process::child_panics_exit();
                let cloned =
                    ns::enter(user, ns::Kind::User).and_then(|_| process::clone_process(new_flags));
                match cloned {
                    Ok(process::Forked::Parent(pid)) => {
                        let code = i32::from(child.send_init_pid(pid).is_err());
                        process::exit_now(code);
                    }
                    Ok(process::Forked::Child) => {}
                    Err(e) => {
                        child.fail(&e);
                        process::exit_now(1);
                    }
                }
            }
            init::main(InitContext {
                spec,
                process,
                rootfs: &rootfs,
                bundle,
                channel: child,
                exec_listener: listener,
                console,
                joins: init_joins,
                userns,
                container_id: &opts.id,
                bundle_str: &bundle.to_string_lossy(),
                annotations: spec.annotations.iter().cloned().collect(),
                host_pid: 0,
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                preserve_fds: opts.preserve_fds,
                cgroups: cgroup_binds,
                seccomp: seccomp.as_ref(),
                last_cap,
            })
        }
        Ok((process::Forked::Parent(first), born_in_v2)) => {
            drop(child);
            drop(listener);
            drop(console);
            let restored = own_namespaces
                .restore()
                .and_then(|_| signal::restore(&saved_mask));
            let pid = if intermediate {
                let init_pid = parent.recv_init_pid();
                let _ = process::wait_pid(first, false);
                init_pid?
            } else {
                first
            };
            let brought_up = restored
                .and_then(|_| bring_up(pid, born_in_v2, &parent, spec, bundle, opts, cgroup));
            if let Err(e) = brought_up {
                let _ = process::kill(pid, libc::SIGKILL);
                let _ = process::wait_pid(pid, false);
                if let Some(site) = &bind_site {
                    let _ = site.undo();
                }
                return Err(e);
            }
            let rootfs_bind = match bind_site.as_ref().map(|s| s.made()).transpose() {
                Ok(bind) => bind.flatten(),
                Err(e) => {
                    let _ = process::kill(pid, libc::SIGKILL);
                    let _ = process::wait_pid(pid, false);
                    return Err(e);
                }
            };
            let state = State {
                id: opts.id.clone(),
                pid,
                start_time: process::start_time(pid).unwrap_or(0),
                bundle: bundle.to_string_lossy().into_owned(),
                rootfs: rootfs.to_string_lossy().into_owned(),
                created: crate::time::now_rfc3339(),
                annotations: spec.annotations.iter().cloned().collect(),
                own_pid_ns: spec
                    .linux
                    .namespace(ns::Kind::Pid)
                    .is_some_and(|n| n.path.is_none()),
                cgroup: cgroup.dirs.clone(),
                poststart: spec.hooks.poststart.clone(),
                poststop: spec.hooks.poststop.clone(),
                rootfs_bind,
            };
            let container = Container {
                dir: dir.to_path_buf(),
                state,
            };
            if let Err(e) = container.save() {
                let _ = process::kill(pid, libc::SIGKILL);
                let _ = process::wait_pid(pid, false);
                if let Some(bind) = &container.state.rootfs_bind {
                    let _ = super::rootfs::detach_host_rootfs_bind(bind);
                }
                return Err(e);
            }
            Ok(container)
        }
        Err(e) => {
            signal::restore(&saved_mask)?;
            Err(e)
        }
    }
}

/// The runtime's part while the init prepares: id maps, cgroups, runtime
/// hooks, then wait until the init is ready or has failed.
fn bring_up(
    pid: process::Pid,
    born_in_v2: bool,
    parent: &ParentChannel,
    spec: &Spec,
    bundle: &Path,
    opts: &CreateOptions,
    cgroup: &Cgroup,
) -> Result<()> {
    match spec.linux.namespace(ns::Kind::User) {
        Some(n) if n.path.is_none() => {
            write_id_maps(pid, spec)?;
            parent.maps_written()?;
        }
        // A joined one: the init waits for word that we know its pid.
        Some(_) => parent.release()?,
        None => {}
    }
    if mount_sources::passed_to_init(spec) {
        let mnt_ns = open_init_mount_ns(pid, spec)?;
        let sources = MountSources::open_in(&mnt_ns, spec, bundle)?;
        parent.send_mount_sources(&sources)?;
    }
    // The init prepares its rootfs meanwhile; it cannot exec before `start`,
    // which comes after we return, so its user's process runs in the cgroup.
    if let Err(e) = cgroup.join(pid, born_in_v2) {
        // The init may have failed first (and be gone): its error says more.
        return Err(parent.pending_error().unwrap_or(e));
    }
    if !(spec.hooks.prestart.is_empty() && spec.hooks.create_runtime.is_empty()) {
        parent.wait_hooks_point()?;
        let annotations = spec.annotations.iter().cloned().collect();
        let bundle_s = bundle.to_string_lossy();
        let hook_state = super::hooks::HookState {
            id: &opts.id,
            status: "created",
            pid,
            bundle: &bundle_s,
            annotations: &annotations,
        };
        use super::hooks::{run, OnFailure::Stop};
        run("prestart", &spec.hooks.prestart, &hook_state, Stop)?;
        run(
            "createRuntime",
            &spec.hooks.create_runtime,
            &hook_state,
            Stop,
        )?;
        parent.resume()?;
    }
    parent.wait_ready()
}

/// The mount namespace the init mounts in: the one it was cloned into, or
/// the one the config names (which the init joins itself).
fn open_init_mount_ns(pid: process::Pid, spec: &Spec) -> Result<OwnedFd> {
    let path = match spec
        .linux
        .namespace(ns::Kind::Mount)
        .and_then(|n| n.path.clone())
    {
        Some(path) => path,
        None => format!("/proc/{pid}/ns/mnt"),
    };
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("open the container's mount namespace {path}"))
}

fn write_id_maps(pid: process::Pid, spec: &Spec) -> Result<()> {
    let fmt = |maps: &[spec::IdMap]| -> String {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect()
    };
    for (file, maps, field) in [
        ("uid_map", &spec.linux.uid_mappings, "linux.uidMappings"),
        ("gid_map", &spec.linux.gid_mappings, "linux.gidMappings"),
    ] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, fmt(maps)).with_context(|| format!("{field}: write {path}"))?;
    }
    Ok(())
}

/// `runc start`: release a created container's init into exec. Returns
/// the warnings: failed poststart hooks, which leave the container running.
pub fn start(root: &StateRoot, id: &str) -> Result<Vec<Error>> {
    let c = root.load(id)?;
    // The init's last lines (startContainer hooks) go to our log.
    start_loaded(
        &c,
        &StartOptions {
            log_fd: crate::log::sink_fd(),
            reply_timeout: None,
        },
    )
}

/// How `start_loaded` hands over the init.
#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    /// The log the init's last lines (startContainer hooks) go to. None
    /// sends none: a long-lived caller (the shim) keeps its own logging
    /// out of the container's init on purpose.
    pub log_fd: Option<std::os::fd::RawFd>,
    /// How long to wait for the init to exec (its startContainer hooks
    /// run first). None waits as long as it takes, as runc; a caller
    /// holding other locks bounds it, and a timeout is a DeadlineExceeded
    /// error that leaves the container created.
    pub reply_timeout: Option<std::time::Duration>,
}

/// `start` of a container already loaded (a caller that has read its
/// state need not read it again).
pub fn start_loaded(c: &Container, opts: &StartOptions) -> Result<Vec<Error>> {
    let id = c.id();
    let _lock = c.lock()?;
    match c.status() {
        super::Status::Created => {}
        super::Status::Stopped => crate::bail!("cannot start a container that has stopped"),
        super::Status::Running | super::Status::Paused => {
            crate::bail!("cannot start an already running container")
        }
    }
    crate::log::debug!("start {id}: release init {}", c.state.pid);
    let sock_path = c.dir.join(super::EXEC_SOCKET);
    let dirfd = crate::sys::fs::open_root(&c.dir.to_string_lossy())?;
    let mut conn = UnixStream::connect(format!(
        "{}/{}",
        crate::sys::fs::proc_path(&dirfd),
        super::EXEC_SOCKET
    ))
    .with_context(|| format!("start container {id}: connect {}", sock_path.display()))?;
    let _ = std::fs::remove_file(&sock_path);
    // The init's last lines (startContainer hooks) go to the log given.
    match opts.log_fd {
        Some(fd) => sock::send_fd(&conn, &[0], fd),
        None => conn.write_all(&[0]).map_err(Error::from),
    }
    .with_context(|| format!("start container {id}"))?;
    conn.set_read_timeout(opts.reply_timeout)
        .with_context(|| format!("start container {id}"))?;
    // The init answers with one byte when it is released, then execs (which
    // closes its end) or writes why exec failed.
    let mut reply = Vec::new();
    match conn.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Err(crate::err_kind!(
                DeadlineExceeded,
                "start container {id}: its init did not exec within {:?} (a startContainer hook hangs?)",
                opts.reply_timeout.unwrap_or_default()
            ));
        }
        Err(e) => return Err(Error::from(e).wrap(format!("start container {id}"))),
    }
    match reply.split_first() {
        Some((0, [])) => {}
        Some((0, why)) => return Err(Error::new(String::from_utf8_lossy(why).into_owned())),
        _ => crate::bail!("start container {id}: its init died before it could exec"),
    }
    // A failing poststart hook is a warning; the others and the container
    // run on.
    let hook_state = super::hooks::HookState {
        id,
        status: "running",
        pid: c.state.pid,
        bundle: &c.state.bundle,
        annotations: &c.state.annotations,
    };
    super::hooks::run(
        "poststart",
        &c.state.poststart,
        &hook_state,
        super::hooks::OnFailure::Warn,
    )
}

/// The init's side of the start handshake: block until `start` connects,
/// take its log sink as ours, acknowledge, and return the connection so an
/// exec failure can be told. Only a locked-down init waits (see
/// `user_process::Exec::lock_down`).
pub(crate) fn wait_for_start(
    listener: &UnixListener,
    _locked: &super::user_process::LockedExec,
) -> Result<UnixStream> {
    let (mut conn, _) = listener.accept().context("wait for start")?;
    let (_, log) = sock::recv_fd(&conn, &mut [0u8; 1]).context("wait for start")?;
    if let Some(log) = log {
        crate::log::redirect(Some(log.as_fd()))?;
    }
    conn.write_all(&[0]).context("acknowledge start")?;
    Ok(conn)
}
