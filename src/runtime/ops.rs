//! The operations on an existing container: kill, delete, run (create +
//! start + wait), list.

use super::container::{Container, StateRoot, Status};
use super::create::{create, start, CreateOptions};
use super::ps;
use super::tty;
use crate::error::{Context, Error, Result};
use crate::sys::{process, signal};

/// Send `sig` to the init through a pidfd taken after checking it is still
/// our init, so a reused pid is never signalled.
fn signal_init(c: &Container, sig: i32) -> Result<()> {
    let pidfd =
        process::pidfd_open(c.state.pid).with_context(|| format!("signal container {}", c.id()))?;
    if !c.init_alive() {
        return Err(crate::err_kind!(
            FailedPrecondition,
            "container not running"
        ));
    }
    process::pidfd_send_signal(&pidfd, sig).with_context(|| format!("signal container {}", c.id()))
}

/// `runc kill`.
///
/// `all` signals every process of the container. A container that has
/// stopped is an error, except with `all`: then what is left in its cgroup
/// (a shared pid namespace's orphans) is signalled, and nothing left is
/// success (as runc; containerd's shim relies on it). SIGKILL reaches every process when the container shares
/// the host's pid namespace, with or without `all` (as current runc: the
/// kernel does it only when the init is pid 1 of its own namespace).
pub fn kill(root: &StateRoot, id: &str, sig: i32, all: bool) -> Result<()> {
    let c = root.load(id)?;
    let _lock = c.lock()?;
    crate::log::debug!(
        "kill container {id}: signal {sig}{}",
        if all { " to all" } else { "" }
    );
    if c.status() == Status::Stopped {
        if all {
            // Each may exit meanwhile (ESRCH): nothing to report then.
            for pid in c.cgroup().procs() {
                let _ = process::kill(pid, sig);
            }
            thaw_for_sigkill(&c, sig);
            return Ok(());
        }
        return Err(crate::err_kind!(
            FailedPrecondition,
            "container not running"
        ));
    }
    if all || (sig == libc::SIGKILL && !c.state.own_pid_ns) {
        for pid in ps::pids(&c)? {
            let _ = process::kill(pid, sig);
        }
    } else {
        signal_init(&c, sig)?;
    }
    thaw_for_sigkill(&c, sig);
    Ok(())
}

/// A frozen process acts on SIGKILL only once thawed (runc thaws too). The
/// signal is delivered either way: a failed thaw is a warning.
fn thaw_for_sigkill(c: &Container, sig: i32) {
    if sig == libc::SIGKILL && c.cgroup().is_frozen() {
        if let Err(e) = c.cgroup().set_frozen(false) {
            crate::log::warn!("kill container {}: thaw after SIGKILL: {e}", c.id());
        }
    }
}

/// SIGKILL every process of the container and wait until the init is gone
/// (what is left in the cgroup too, even once the init has died).
fn kill_and_wait(c: &Container) -> Result<()> {
    let init = process::pidfd_open(c.state.pid)
        .ok()
        .filter(|_| c.init_alive());
    let cgroup = c.cgroup();
    for pid in ps::pids(c)?.into_iter().chain(cgroup.procs()) {
        if pid != c.state.pid {
            let _ = process::kill(pid, libc::SIGKILL);
        }
    }
    if let Some(pidfd) = &init {
        // In its own pid namespace, the init's death takes every other process.
        let _ = process::pidfd_send_signal(pidfd, libc::SIGKILL);
    }
    if cgroup.is_frozen() {
        // A frozen process cannot act on its SIGKILL until thawed.
        let _ = cgroup.set_frozen(false);
    }
    if let Some(pidfd) = &init {
        if !process::pidfd_wait(pidfd, 10_000) {
            crate::bail!(
                "container {}: init {} did not die after SIGKILL",
                c.id(),
                c.state.pid
            );
        }
        // A zombie counts as stopped; our own child is reaped here.
        let _ = process::wait_pid(c.state.pid, true);
    }
    Ok(())
}

/// `runc delete`. Returns the warnings: failed poststop hooks, which do
/// not stop the delete.
pub fn delete(root: &StateRoot, id: &str, force: bool) -> Result<Vec<Error>> {
    let Some(c) = load_for_delete(root, id, force)? else {
        return Ok(Vec::new());
    };
    let _lock = c.lock()?;
    // The runtime spec: deleting a container that is not stopped MUST be
    // an error, and a created one is not stopped. runc and crun delete a
    // created container anyway; we follow the spec. containerd 1.6 is not
    // affected (tried with its runc shim and ctr): its client refuses to
    // delete a created task ("task must be stopped before deletion"), and
    // `ctr t rm -f` kills first (`kill --all ID 9`), then deletes the
    // stopped container, then `delete --force`.
    crate::log::debug!("delete container {id} ({})", c.status().as_str());
    match c.status() {
        Status::Stopped => kill_and_wait(&c)?,
        status if !force => {
            return Err(crate::err_kind!(
                FailedPrecondition,
                "cannot delete container {id} that is not stopped: {}",
                status.as_str()
            ));
        }
        _ => kill_and_wait(&c)?,
    }
    c.cgroup().destroy()?;
    if let Some(bind) = &c.state.rootfs_bind {
        super::rootfs::detach_host_rootfs_bind(bind)?;
    }
    let hook_state = super::hooks::HookState {
        id,
        status: "stopped",
        pid: 0,
        bundle: &c.state.bundle,
        annotations: &c.state.annotations,
    };
    // A failing poststop hook is a warning; the others run and the
    // container is deleted.
    let warnings = super::hooks::run(
        "poststop",
        &c.state.poststop,
        &hook_state,
        super::hooks::OnFailure::Warn,
    )?;
    c.remove_dir()?;
    Ok(warnings)
}

/// The container to delete; None when there is nothing to delete and
/// `force` says that is fine (runc: success), after removing a leftover
/// dir without state.
fn load_for_delete(root: &StateRoot, id: &str, force: bool) -> Result<Option<Container>> {
    super::container::validate_id(id)?;
    match root.load(id) {
        Ok(c) => Ok(Some(c)),
        Err(_)
            if force
                && !root
                    .path()
                    .join(id)
                    .join(super::container::STATE_FILE)
                    .exists() =>
        {
            let _ = std::fs::remove_dir_all(root.path().join(id));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What `delete_stopped` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoppedDelete {
    /// Gone (or there was nothing to delete).
    Deleted,
    /// Nothing was done: the container has poststop hooks, child processes
    /// that must be waited for. The caller runs `delete` where waiting for
    /// its own children is safe (a subprocess, for a caller with a reaper).
    HasHooks,
}

/// Delete a stopped container whose init its caller has reaped (or will),
/// without ever waiting for a process: what is left in its cgroup (a
/// shared pid namespace's orphans) is SIGKILLed, the cgroup removed (which
/// waits for it to empty), then the state dir. For a long-lived caller
/// that reaps its own children (the shim): `delete` would waitpid the init
/// and take its exit from the caller's reaper. An init still alive is an
/// error (FailedPrecondition), never waited for.
pub fn delete_stopped(root: &StateRoot, id: &str) -> Result<StoppedDelete> {
    let Some(c) = load_for_delete(root, id, true)? else {
        return Ok(StoppedDelete::Deleted);
    };
    if !c.state.poststop.is_empty() {
        return Ok(StoppedDelete::HasHooks);
    }
    let _lock = c.lock()?;
    if c.status() != Status::Stopped {
        return Err(crate::err_kind!(
            FailedPrecondition,
            "cannot delete container {id} without waiting: its init {} is alive",
            c.state.pid
        ));
    }
    crate::log::debug!("delete stopped container {id}");
    let cgroup = c.cgroup();
    for pid in cgroup.procs() {
        let _ = process::kill(pid, libc::SIGKILL);
    }
    thaw_for_sigkill(&c, libc::SIGKILL);
    cgroup.destroy()?;
    if let Some(bind) = &c.state.rootfs_bind {
        super::rootfs::detach_host_rootfs_bind(bind)?;
    }
    c.remove_dir()?;
    Ok(StoppedDelete::Deleted)
}

/// Best effort, for a container `delete` could not remove: kill what
/// it runs, remove its cgroup and state dir.
fn discard(c: &Container) {
    let _ = kill_and_wait(c);
    let _ = c.cgroup().destroy();
    let _ = c.remove_dir();
}

#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    pub create: CreateOptions,
    pub detach: bool,
    pub keep: bool,
}

/// How `run` ended.
#[derive(Debug)]
pub struct RunExit {
    /// The container's exit status (128+n for signal n); 0 when detached.
    pub status: i32,
    /// Failed poststart and poststop hooks, which did not stop the run.
    pub warnings: Vec<Error>,
}

/// `runc run`: create and start; unless detached, forward signals to the
/// init, wait for it, and delete the container (unless `keep`).
pub fn run(root: &StateRoot, opts: &RunOptions) -> Result<RunExit> {
    let id = &opts.create.id;
    // Blocked from before the clone, so no signal slips between the init's
    // birth and the forwarding loop; the init unblocks them before exec.
    let saved = if opts.detach {
        None
    } else {
        Some(signal::block_all()?)
    };
    let restore = |saved: &Option<signal::Mask>| {
        if let Some(m) = saved {
            let _ = signal::restore(m);
        }
    };
    let mut create_opts = opts.create.clone();
    create_opts.own_console = !opts.detach;
    let created = match create(root, &create_opts) {
        Ok(c) => c,
        Err(e) => {
            restore(&saved);
            return Err(e);
        }
    };
    let mut warnings = match start(root, id) {
        Ok(warnings) => warnings,
        Err(e) => {
            if delete(root, id, true).is_err() {
                // The state on disk may be what failed: undo from ours.
                discard(&created.container);
            }
            restore(&saved);
            return Err(e);
        }
    };
    if opts.detach {
        return Ok(RunExit {
            status: 0,
            warnings,
        });
    }
    crate::log::debug!("run {id}: waiting for init {}", created.container.state.pid);
    let waited = match &created.console {
        Some(sock) => tty::start(sock).map(Some),
        None => Ok(None),
    }
    .and_then(|relay| {
        let exit = wait_forwarding(created.container.state.pid, relay.as_ref());
        if let Some(r) = relay {
            r.finish();
        }
        exit
    });
    let exit = match waited {
        Ok(exit) => exit,
        Err(e) => {
            let _ = delete(root, id, true);
            restore(&saved);
            return Err(e);
        }
    };
    restore(&saved);
    crate::log::debug!("run {id}: init exited with status {}", exit.status());
    if !opts.keep {
        warnings.extend(delete(root, id, true)?);
    }
    Ok(RunExit {
        status: exit.status(),
        warnings,
    })
}

/// With every signal blocked, wait for our child `pid` and pass it every
/// signal we get (SIGWINCH resizes the relayed terminal instead).
pub(crate) fn wait_forwarding(
    pid: process::Pid,
    relay: Option<&tty::Relay>,
) -> Result<process::Exit> {
    loop {
        match signal::wait_any() {
            libc::SIGCHLD => {
                if let Some(exit) = process::wait_pid(pid, true)? {
                    return Ok(exit);
                }
            }
            libc::SIGWINCH if relay.is_some() => relay.map_or((), |r| r.resize()),
            sig => {
                let _ = process::kill(pid, sig);
            }
        }
    }
}

/// Every container under the root with its live status, by id.
pub fn list(root: &StateRoot) -> Result<Vec<(Container, Status)>> {
    let mut out = Vec::new();
    for id in root.ids()? {
        // A dir without state (a create in progress) is not listed.
        if let Ok(c) = root.load(&id) {
            let status = c.status();
            out.push((c, status));
        }
    }
    Ok(out)
}

/// `runc state` for one container.
pub fn state(root: &StateRoot, id: &str) -> Result<(Container, Status)> {
    let c = root.load(id)?;
    let status = c.status();
    Ok((c, status))
}

/// The owner of a state dir, as `runc list` shows it (user name, else uid).
pub fn owner_name(c: &Container) -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(&c.dir).map(|m| m.uid()).unwrap_or(0);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// `runc pause`.
pub fn pause(root: &StateRoot, id: &str) -> Result<()> {
    let c = root.load(id)?;
    let _lock = c.lock()?;
    match c.status() {
        // runc pauses a created container too.
        Status::Running | Status::Created => c.cgroup().set_frozen(true),
        Status::Paused => Err(crate::err_kind!(
            FailedPrecondition,
            "container {id} is already paused"
        )),
        _ => Err(crate::err_kind!(
            FailedPrecondition,
            "container not running"
        )),
    }
}

/// `runc resume`.
pub fn resume(root: &StateRoot, id: &str) -> Result<()> {
    let c = root.load(id)?;
    let _lock = c.lock()?;
    match c.status() {
        Status::Paused => c.cgroup().set_frozen(false),
        _ => Err(crate::err_kind!(FailedPrecondition, "container not paused")),
    }
}

/// `runc update`: apply new resource limits to a live container.
pub fn update(root: &StateRoot, id: &str, res: &crate::oci::resources::Resources) -> Result<()> {
    let c = root.load(id)?;
    let _lock = c.lock()?;
    if c.status() == Status::Stopped {
        return Err(crate::err_kind!(
            FailedPrecondition,
            "container not running"
        ));
    }
    crate::log::debug!("update container {id}: resources {res:?}");
    // Device rules change only when the update gives some (runc's update
    // never changes them); they then replace the config's, and a v1 cgroup
    // gets only the rules that differ (cgroups::files::v1_devices), so the
    // whole resources that containerd's CRI sends back change nothing. On
    // cgroup v2 they are ignored, as runc ignores them: a second device
    // program would only narrow what the first allows.
    let devices = if res.devices.is_empty() || crate::cgroups::is_unified() {
        Vec::new()
    } else {
        super::create::with_default_device_rules(&res.devices)
    };
    c.cgroup().apply(res, &devices)
}
