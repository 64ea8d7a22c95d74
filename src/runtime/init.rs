//! The container's init, from clone to exec. It runs in the cloned child
//! (no re-exec, no JSON: the parsed config is already in memory), reports
//! ready or the first error over its channel, then waits for `start`.

use super::create::{wait_for_start, InitChannel};
use super::mount_sources::{self, MountSources};
use super::user_process;
use super::{hooks, rootfs};
use crate::error::{Context, Result};
use crate::oci::spec::{Process, Spec};
use crate::sys::{ns, process, signal, user};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// The init's user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserNs {
    /// The runtime's own.
    Host,
    /// Made by the clone; the runtime writes its id maps.
    New,
    /// Joined by path (through an intermediate process).
    Joined,
}

pub(crate) struct InitContext<'a> {
    pub container_id: &'a str,
    pub bundle_str: &'a str,
    /// Filled in by the init itself, first thing.
    pub host_pid: i32,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub channel: InitChannel,
    pub exec_listener: UnixListener,
    pub console: Option<UnixStream>,
    /// Namespaces the init joins itself (the mount namespace).
    pub joins: Vec<(ns::Kind, OwnedFd)>,
    pub userns: UserNs,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// The compiled linux.seccomp, if any.
    pub seccomp: Option<&'a crate::seccomp::Program>,
    /// The kernel's highest capability, read by the runtime.
    pub last_cap: u32,
    /// Host cgroups to show under `cgroup` mounts.
    pub cgroups: Vec<rootfs::CgroupBind>,
}

/// Entry point in the cloned child. Never returns.
pub(crate) fn main(mut ctx: InitContext) -> ! {
    process::child_panics_exit();
    ctx.host_pid = host_pid();
    // The created container waits for `start` already locked down: under
    // its seccomp filter, with only the capabilities its config gives (an
    // `exec` into it meanwhile must find nothing more to take). Signals are
    // reset before, so that what remains under the filter is the start
    // handshake, the startContainer hooks (as runc runs them) and execve.
    let locked = prepare(&ctx).and_then(|exec| {
        signal::reset_dispositions();
        signal::unblock_all()?;
        exec.lock_down()
    });
    let exec = match locked {
        Ok(exec) => exec,
        Err(e) => {
            ctx.channel.fail(&e);
            process::exit_now(1);
        }
    };
    if let Err(e) = ctx.channel.ready() {
        let _ = writeln!(std::io::stderr(), "container init: {e}");
        process::exit_now(1);
    }
    // Our creator may exit now: its stderr is not ours to keep open.
    let _ = crate::log::redirect(None);
    let mut conn = match wait_for_start(&ctx.exec_listener, &exec) {
        Ok(c) => c,
        Err(_) => process::exit_now(1),
    };
    let e = match hooks::run(
        "startContainer",
        &ctx.spec.hooks.start_container,
        &hook_state(&ctx, "created"),
        hooks::OnFailure::Stop,
    ) {
        Ok(_) => exec.exec(),
        Err(e) => e,
    };
    let _ = conn.write_all(e.message().as_bytes());
    process::exit_now(1)
}

/// Our pid in the runtime's pid namespace (the outermost NSpid entry),
/// read while /proc is still the host's.
fn host_pid() -> i32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("NSpid:")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

fn hook_state<'a>(ctx: &'a InitContext, status: &'a str) -> hooks::HookState<'a> {
    hooks::HookState {
        id: ctx.container_id,
        status,
        pid: ctx.host_pid,
        bundle: ctx.bundle_str,
        annotations: &ctx.annotations,
    }
}

fn prepare<'a>(ctx: &InitContext<'a>) -> Result<user_process::Exec<'a>> {
    match ctx.userns {
        UserNs::Host => process::set_parent_death_signal(libc::SIGKILL)?,
        UserNs::New => {
            process::set_parent_death_signal(libc::SIGKILL)?;
            ctx.channel.wait_maps_written()?;
        }
        // Our parent is the intermediate, which exits: only once the
        // runtime has adopted us may its death be ours.
        UserNs::Joined => {
            ctx.channel.wait_release()?;
            process::set_parent_death_signal(libc::SIGKILL)?;
        }
    }
    let mount_sources = if mount_sources::passed_to_init(ctx.spec) {
        let received = ctx.channel.recv_mount_sources()?;
        MountSources::from_received(ctx.spec.mounts.len(), received)
    } else {
        MountSources::default()
    };
    if ctx.userns != UserNs::Host {
        // Become root of the namespace (host root maps to nothing there).
        user::set_gid(0).context("become root in the user namespace")?;
        user::set_uid(0).context("become root in the user namespace")?;
    }
    for (kind, fd) in &ctx.joins {
        ns::enter(fd, *kind)?;
    }
    process::setsid()?;
    if !ctx.no_new_keyring {
        crate::sys::keyring::join_new_session(ctx.container_id)?;
    }
    // The modes of the files we create are given explicitly.
    process::umask(0);
    let proc = ctx.process;
    if let Some(adj) = proc.oom_score_adj {
        user_process::write_oom_score_adj(adj)?;
    }
    let console = rootfs::prepare(
        ctx.spec,
        ctx.rootfs,
        ctx.bundle,
        ctx.userns != UserNs::Host,
        proc.terminal,
        &ctx.cgroups,
        &mount_sources,
    )?;
    let hooks = &ctx.spec.hooks;
    if !(hooks.prestart.is_empty() && hooks.create_runtime.is_empty()) {
        ctx.channel.hooks_point()?;
    }
    if !hooks.create_container.is_empty() {
        hooks::run(
            "createContainer",
            &hooks.create_container,
            &hook_state(ctx, "created"),
            hooks::OnFailure::Stop,
        )?;
    }
    rootfs::enter(ctx.spec, ctx.rootfs, ctx.no_pivot)?;
    if let Some(name) = ctx.spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        rustix::system::sethostname(name.as_bytes())
            .with_context(|| format!("hostname: set {name:?}"))?;
    }
    if let Some(name) = ctx.spec.domainname.as_deref().filter(|h| !h.is_empty()) {
        rustix::system::setdomainname(name.as_bytes())
            .with_context(|| format!("domainname: set {name:?}"))?;
    }
    rootfs::finish(ctx.spec)?;
    if let Some(pty) = console {
        user_process::attach_console(pty, ctx.console.as_ref(), proc)?;
    }
    if let Some(persona) = ctx.spec.linux.personality {
        process::set_personality(persona).context("linux.personality")?;
    }
    let exec = user_process::finish(proc, ctx.preserve_fds, ctx.seccomp, ctx.last_cap)?;
    process::set_parent_death_signal(0)?;
    Ok(exec)
}
