//! The operations on an existing container: kill, delete, run (create +
//! start + wait), list.

use super::container::{Container, StateRoot, Status};
use super::create::{create, start, CreateOptions};
use super::ps;
use super::tty;
use crate::error::{Context, Result};
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
pub fn kill(root: &StateRoot, id: &str, sig: i32, all: bool) -> Result<()> {
    let c = root.load(id)?;
    let _lock = c.lock()?;
    if c.status() == Status::Stopped {
        return Err(crate::err_kind!(
            FailedPrecondition,
            "container not running"
        ));
    }
    if all {
        for pid in ps::pids(&c)? {
            let _ = process::kill(pid, sig);
        }
        Ok(())
    } else {
        signal_init(&c, sig)
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

/// `runc delete`.
pub fn delete(root: &StateRoot, id: &str, force: bool) -> Result<()> {
    super::container::validate_id(id)?;
    let c = match root.load(id) {
        Ok(c) => c,
        Err(_)
            if force
                && !root
                    .path()
                    .join(id)
                    .join(super::container::STATE_FILE)
                    .exists() =>
        {
            // Nothing to delete (runc: success); a leftover dir without
            // state goes too.
            let _ = std::fs::remove_dir_all(root.path().join(id));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let _lock = c.lock()?;
    match c.status() {
        Status::Stopped | Status::Created => kill_and_wait(&c)?,
        status @ (Status::Running | Status::Paused) => {
            if !force {
                return Err(crate::err_kind!(
                    FailedPrecondition,
                    "cannot delete container {id} that is not stopped: {}",
                    status.as_str()
                ));
            }
            kill_and_wait(&c)?;
        }
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
    if let Err(e) = super::hooks::run("poststop", &c.state.poststop, &hook_state) {
        eprintln!("warning: {e}");
    }
    c.remove_dir()
}

#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    pub create: CreateOptions,
    pub detach: bool,
    pub keep: bool,
}

/// `runc run`: create and start; unless detached, forward signals to the
/// init, wait for it, delete the container (unless `keep`) and return the
/// exit status (128+n for signal n).
pub fn run(root: &StateRoot, opts: &RunOptions) -> Result<i32> {
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
    if let Err(e) = start(root, id) {
        let _ = delete(root, id, true);
        restore(&saved);
        return Err(e);
    }
    if opts.detach {
        return Ok(0);
    }
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
    if !opts.keep {
        delete(root, id, true)?;
    }
    Ok(exit.status())
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
    c.cgroup().apply(res, &[])
}
