//! `runc exec`: run another process in a running container. The runtime
//! joins the container's pid namespace and clones (into its v2 cgroup);
//! the child joins the other namespaces, moves into the v1 cgroups the
//! runtime wrote it into, sets up the process as the init did, and execs.

use super::container::{Container, StateRoot, Status};
use super::create::channel;
use super::{tty, user_process};
use crate::error::{Context, Error, Result};
use crate::oci::spec::{self, Process};
use crate::sys::{caps, ns, process, signal};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub id: String,
    pub process_file: Option<String>,
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<String>,
    pub detach: bool,
    pub pid_file: Option<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// `UID[:GID]`
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// `--cgroup`: sub-cgroups of the container's to run in, as runc takes
    /// them (`PATH`, or `CONTROLLER[,CONTROLLER]:PATH` per v1 hierarchy).
    pub sub_cgroups: Vec<String>,
}

/// The process to run: --process's file, or the container's own process
/// with the command line and flags applied (as runc does).
fn build_process(base: &spec::Spec, opts: &ExecOptions) -> Result<Process> {
    let mut p = match &opts.process_file {
        Some(f) => spec::load_process(Path::new(f))?,
        None => {
            let mut p = base.process.clone().unwrap_or_default();
            if opts.args.is_empty() {
                crate::bail!("exec: no command given (use ARGS or --process)");
            }
            p.args = opts.args.clone();
            p.terminal = opts.tty;
            p
        }
    };
    if opts.tty {
        p.terminal = true;
    }
    if let Some(cwd) = &opts.cwd {
        p.cwd = cwd.clone();
    }
    for kv in &opts.env {
        if !kv.contains('=') {
            crate::bail!("invalid environment variable {kv:?}: use KEY=VALUE");
        }
        p.env.push(kv.clone());
    }
    if let Some(u) = &opts.user {
        let (uid, gid) = u
            .split_once(':')
            .map_or((u.as_str(), None), |(a, b)| (a, Some(b)));
        p.user.uid = uid
            .parse()
            .map_err(|_| Error::new(format!("--user {u:?}: expected UID[:GID] (numbers)")))?;
        if let Some(g) = gid {
            p.user.gid = g
                .parse()
                .map_err(|_| Error::new(format!("--user {u:?}: expected UID[:GID] (numbers)")))?;
        }
    }
    p.user
        .additional_gids
        .extend(opts.additional_gids.iter().copied());
    if !opts.caps.is_empty() {
        let set = p.capabilities.get_or_insert_with(Default::default);
        for name in &opts.caps {
            let n = caps::from_name(name)
                .ok_or_else(|| Error::new(format!("--cap {name:?}: unknown capability")))?;
            set.bounding.insert(n);
            set.effective.insert(n);
            set.permitted.insert(n);
        }
    }
    if opts.no_new_privs {
        p.no_new_privileges = true;
    }
    if p.args.is_empty() {
        crate::bail!("exec: process.args must not be empty");
    }
    Ok(p)
}

/// The namespaces of the container's init that its config made its own.
fn init_namespaces(c: &Container, base: &spec::Spec) -> Result<Vec<(ns::Kind, OwnedFd)>> {
    let mut out = Vec::new();
    // The user namespace first: joining it grants the rights over the others.
    let mut kinds: Vec<ns::Kind> = base.linux.namespaces.iter().map(|n| n.kind).collect();
    kinds.sort_by_key(|k| *k != ns::Kind::User);
    for kind in kinds {
        let path = format!("/proc/{}/ns/{}", c.state.pid, kind.proc_name());
        let fd = rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("exec: open {path}"))?;
        out.push((kind, fd));
    }
    Ok(out)
}

/// `runc exec`. Returns the exit status (0 when detached).
pub fn exec(root: &StateRoot, opts: &ExecOptions) -> Result<i32> {
    // Never enter a container as a binary it could rewrite (CVE-2019-5736).
    // This re-execs the whole command.
    crate::sys::exe::ensure_sealed()?;
    let c = root.load(&opts.id)?;
    match c.status() {
        Status::Stopped => crate::bail!("cannot exec in a stopped container"),
        Status::Paused if !opts.ignore_paused => {
            crate::bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        _ => {}
    }
    let base = c.spec()?;
    let proc = build_process(&base, opts)?;
    let cgroup = c.cgroup().with_sub_cgroups(&opts.sub_cgroups)?;
    if opts.preserve_fds > 0 {
        super::create::check_preserved_fds(opts.preserve_fds)?;
    }
    match (proc.terminal, &opts.console_socket, opts.detach) {
        (true, None, true) => {
            crate::bail!("cannot allocate tty if runc will detach without setting console socket")
        }
        (false, Some(_), _) => {
            crate::bail!("cannot use console socket if runc will not detach or allocate tty")
        }
        _ => {}
    }
    let namespaces = init_namespaces(&c, &base)?;
    // The container's filter applies to every process that enters it.
    let seccomp = super::user_process::compile_seccomp(&base)?;
    // Read here, not in the child (see caps::last_cap).
    let last_cap = caps::last_cap();
    let (console, own_end) = tty::console_endpoints(opts.console_socket.as_deref(), proc.terminal)?;
    let v2_fd = cgroup.open_v2_dir()?;
    // The pid namespace applies to our next child only.
    // Left again on every way out of this function: the guard's drop.
    let mut own_pid_ns = ns::Return::default();
    let mut in_container = Vec::new();
    for (kind, fd) in namespaces {
        if kind == ns::Kind::Pid {
            own_pid_ns.enter(&fd, kind)?;
        } else {
            in_container.push((kind, fd));
        }
    }
    let (parent, child) = channel()?;
    let saved = signal::block_all()?;
    let forked = process::clone_into_cgroup(0, v2_fd.as_ref()).inspect_err(|_| {
        let _ = signal::restore(&saved);
    })?;
    match forked {
        (process::Forked::Child, _) => {
            process::child_panics_exit();
            drop(parent);
            let err = child_main(
                &child,
                &in_container,
                &proc,
                console.as_ref(),
                opts.preserve_fds,
                seccomp.as_ref(),
                last_cap,
            );
            child.fail(&err);
            process::exit_now(1);
        }
        (process::Forked::Parent(pid), born_in_v2) => {
            drop(child);
            drop(console);
            let fail = |e: Error| {
                let _ = process::kill(pid, libc::SIGKILL);
                let _ = process::wait_pid(pid, false);
                let _ = signal::restore(&saved);
                e
            };
            // On failure the guard's drop tries once more, then aborts.
            own_pid_ns.restore().map_err(fail)?;
            crate::log::debug!(
                "exec: process {pid} in container {}: {:?}",
                opts.id,
                proc.args
            );
            cgroup.join(pid, born_in_v2).map_err(fail)?;
            parent.release().map_err(fail)?;
            // The channel closes at exec; a message means it failed.
            parent.wait_exec().map_err(fail)?;
            if let Some(f) = &opts.pid_file {
                super::create::write_pid_file(f, pid).map_err(fail)?;
            }
            crate::log::debug!("exec: process {pid} started");
            if opts.detach {
                signal::restore(&saved)?;
                return Ok(0);
            }
            let relay = match &own_end {
                Some(sock) => Some(tty::start(sock).map_err(fail)?),
                None => None,
            };
            let exit = super::ops::wait_forwarding(pid, relay.as_ref()).inspect_err(|_| {
                let _ = signal::restore(&saved);
            })?;
            if let Some(r) = relay {
                r.finish();
            }
            signal::restore(&saved)?;
            crate::log::debug!("exec: process {pid} exited with status {}", exit.status());
            Ok(exit.status())
        }
    }
}

/// The child: returns only on failure.
fn child_main(
    chan: &super::create::InitChannel,
    namespaces: &[(ns::Kind, OwnedFd)],
    proc: &Process,
    console: Option<&UnixStream>,
    preserve_fds: u32,
    seccomp: Option<&crate::seccomp::Program>,
    last_cap: u32,
) -> Error {
    let run = || -> Result<user_process::Exec> {
        process::set_parent_death_signal(libc::SIGKILL)?;
        chan.wait_release()?;
        for (kind, fd) in namespaces {
            ns::enter(fd, *kind)?;
        }
        if let Some(socket) = console {
            process::setsid()?;
            let pty = user_process::open_pty()?;
            user_process::attach_console(pty, Some(socket), proc)?;
        }
        let exec = user_process::finish(proc, preserve_fds, seccomp, last_cap)?;
        process::set_parent_death_signal(0)?;
        signal::reset_dispositions();
        signal::unblock_all()?;
        Ok(exec)
    };
    // The seccomp filter goes in last: then only execve.
    match run().and_then(user_process::Exec::lock_down) {
        Ok(exec) => exec.exec(),
        Err(e) => e,
    }
}
