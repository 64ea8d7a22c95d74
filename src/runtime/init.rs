//! The container's init, from clone to exec. It runs in the cloned child
//! (no re-exec, no JSON: the parsed config is already in memory), reports
//! ready or the first error over its channel, then waits for `start`.

use super::create::{wait_for_start, InitChannel};
use super::rootfs;
use crate::error::{Context, Error, Result};
use crate::oci::spec::{Process, Spec};
use crate::sys::{caps, ns, process, pty, signal, sock, user};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

pub(crate) struct InitContext<'a> {
    pub container_id: &'a str,
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub channel: InitChannel,
    pub exec_listener: UnixListener,
    pub console: Option<UnixStream>,
    /// Namespaces the init joins itself (the mount namespace).
    pub joins: Vec<(ns::Kind, OwnedFd)>,
    pub new_userns: bool,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Host cgroups to show under `cgroup` mounts.
    pub cgroups: Vec<rootfs::CgroupBind>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Entry point in the cloned child. Never returns.
pub(crate) fn main(ctx: InitContext) -> ! {
    process::child_panics_exit();
    let exec = match prepare(&ctx) {
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
    let mut conn = match wait_for_start(&ctx.exec_listener) {
        Ok(c) => c,
        Err(_) => process::exit_now(1),
    };
    drop(ctx.exec_listener);
    signal::reset_dispositions();
    let e = match signal::unblock_all() {
        Ok(()) => process::execve(&exec.path, &exec.args, &exec.env),
        Err(e) => e,
    };
    let _ = conn.write_all(format!("exec {}: {}", exec.path, e).as_bytes());
    process::exit_now(1)
}

/// What to exec once started.
struct Exec {
    path: String,
    args: Vec<String>,
    env: Vec<String>,
}

fn prepare(ctx: &InitContext) -> Result<Exec> {
    process::set_parent_death_signal(libc::SIGKILL)?;
    if ctx.new_userns {
        ctx.channel.wait_maps_written()?;
        // Become root of the new namespace (host root maps to nothing here).
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
        write_oom_score_adj(adj)?;
    }
    let console = rootfs::prepare(
        ctx.spec,
        ctx.rootfs,
        ctx.bundle,
        ctx.new_userns,
        proc.terminal,
        &ctx.cgroups,
    )?;
    rootfs::enter(ctx.rootfs, ctx.no_pivot)?;
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
        attach_console(pty, ctx.console.as_ref(), proc)?;
    }
    for r in &proc.rlimits {
        process::set_rlimit(r.resource, r.soft, r.hard)
            .with_context(|| format!("process.rlimits: set {} to {}/{}", r.name, r.soft, r.hard))?;
    }
    let env = environment(proc);
    // chdir before dropping privileges (the new user may not reach it through
    // the path), and again after if that failed.
    let early_cwd = rustix::process::chdir(proc.cwd.as_str());
    change_user(proc)?;
    if early_cwd.is_err() {
        rustix::process::chdir(proc.cwd.as_str())
            .with_context(|| format!("process.cwd: chdir {}", proc.cwd))?;
    }
    if proc.no_new_privileges {
        process::set_no_new_privs()?;
    }
    process::umask(proc.user.umask.unwrap_or(0o022));
    let path = find_executable(&proc.args[0], &env)?;
    process::cloexec_from(3 + ctx.preserve_fds as i32)?;
    for fd in 3..3 + ctx.preserve_fds as i32 {
        process::clear_cloexec(fd)?;
    }
    process::set_parent_death_signal(0)?;
    Ok(Exec {
        path,
        args: proc.args.clone(),
        env,
    })
}

fn write_oom_score_adj(adj: i32) -> Result<()> {
    std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EACCES) && adj < 0 {
            " (lowering it needs CAP_SYS_RESOURCE, which this host's root lacks)"
        } else {
            ""
        };
        Error::from(e).wrap(format!("process.oomScoreAdj: set {adj}{hint}"))
    })
}

/// Make the pty slave our stdio and controlling terminal, and hand the
/// master to whoever listens on the console socket.
fn attach_console(pty: rootfs::Console, socket: Option<&UnixStream>, proc: &Process) -> Result<()> {
    let socket = socket.ok_or_else(|| Error::new("terminal: no console socket"))?;
    if let Some((rows, cols)) = proc.console_size {
        pty::set_size(&pty.master, rows, cols)?;
    }
    sock::send_fd(socket, b"/dev/ptmx", pty.master.as_raw_fd())
        .context("send the pty master to the console socket")?;
    for fd in 0..3 {
        process::dup2(pty.slave.as_raw_fd(), fd)?;
    }
    pty::make_controlling(&pty.slave)?;
    Ok(())
}

/// process.env, plus HOME when the config does not set it (as runc does).
fn environment(proc: &Process) -> Vec<String> {
    let mut env = proc.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            home_of(proc.user.uid).unwrap_or_else(|| "/".into())
        ));
    }
    env
}

/// The home directory of `uid` in the container's /etc/passwd.
fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

fn change_user(proc: &Process) -> Result<()> {
    let u = &proc.user;
    if let Some(c) = &proc.capabilities {
        caps::limit_bounding(c.bounding).context("process.capabilities.bounding")?;
        caps::set_keep_caps(true)?;
    }
    // setgroups is refused in a user namespace whose setgroups is "deny";
    // an empty list there is what the kernel already has.
    if let Err(e) = user::set_groups(&u.additional_gids) {
        if !u.additional_gids.is_empty() {
            return Err(e.wrap("process.user.additionalGids"));
        }
    }
    user::set_gid(u.gid).context("process.user.gid")?;
    user::set_uid(u.uid).context("process.user.uid")?;
    if let Some(c) = &proc.capabilities {
        caps::set_keep_caps(false)?;
        caps::set(c.effective, c.permitted, c.inheritable).context("process.capabilities")?;
        caps::raise_ambient(c.ambient);
    }
    Ok(())
}

/// Find args[0] as execve would through the container's PATH, so a missing
/// binary fails `create`, not `start`.
fn find_executable(arg0: &str, env: &[String]) -> Result<String> {
    let not_found = || {
        Error::new(format!(
            "exec: {arg0:?}: executable file not found in $PATH"
        ))
    };
    let runnable = |p: &str| {
        rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok() && !Path::new(p).is_dir()
    };
    if arg0.contains('/') {
        return if runnable(arg0) {
            Ok(arg0.to_string())
        } else {
            Err(Error::new(format!(
                "exec: {arg0:?}: no such file, or not executable"
            )))
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| format!("{}/{arg0}", if dir.is_empty() { "." } else { dir }))
        .find(|p| runnable(p))
        .ok_or_else(not_found)
}
