//! The user's process, once its namespaces and filesystem are in place:
//! console, rlimits, user and capabilities, cwd, environment, and the
//! executable to run. Shared by the container's init and by `exec`.

use super::rootfs;
use crate::error::{Context, Error, Result};
use crate::oci::spec::Process;
use crate::sys::{caps, process, pty, sock, user};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use crate::fsutil::DEFAULT_PATH;

/// Which file to run, with what.
struct Target {
    path: String,
    args: Vec<String>,
    env: Vec<String>,
}

/// A process ready to run the user's program but for the last step that
/// closes the door behind the runtime: the seccomp filter, and dropping
/// the CAP_SYS_ADMIN kept to install it. Only [`Exec::lock_down`] turns it
/// into something that can exec, so no path can exec, or wait for `start`
/// (which needs a [`LockedExec`]), with the runtime's privileges still held.
pub(crate) struct Exec<'a> {
    target: Target,
    /// The seccomp filter to install.
    seccomp: Option<&'a crate::seccomp::Program>,
    /// The capabilities to end with, when CAP_SYS_ADMIN was kept only to
    /// install the filter.
    final_caps: Option<FinalCaps>,
}

/// effective, permitted, inheritable, and the kernel's last capability.
#[derive(Clone, Copy)]
struct FinalCaps {
    effective: caps::Set,
    permitted: caps::Set,
    inheritable: caps::Set,
    last_cap: u32,
}

/// A process with only the privileges the config gives it, under its
/// seccomp filter: what is left is execve (and, for the init, the start
/// handshake and startContainer hooks, which the config's profile must
/// allow as it allows the container's own process).
pub(crate) struct LockedExec(Target);

impl Exec<'_> {
    /// Install the seccomp filter, then drop the CAP_SYS_ADMIN kept for it.
    /// Nothing the runtime needs for itself may come after (a profile need
    /// only allow what the container's process needs, as profiles older
    /// than the runtime's syscalls do): reset signals before this.
    pub fn lock_down(self) -> Result<LockedExec> {
        if let Some(prog) = self.seccomp {
            crate::sys::seccomp::install(prog).context("linux.seccomp: install the filter")?;
        }
        if let Some(c) = self.final_caps {
            caps::set(c.effective, c.permitted, c.inheritable, c.last_cap)
                .context("process.capabilities")?;
        }
        Ok(LockedExec(self.target))
    }
}

impl LockedExec {
    /// execve. Returns only on failure.
    pub fn exec(self) -> Error {
        let t = &self.0;
        process::execve(&t.path, &t.args, &t.env).wrap(format!("exec {}", t.path))
    }
}

/// The container's seccomp filter, compiled (in the runtime, so that a bad
/// profile fails before any process is made).
pub(crate) fn compile_seccomp(
    spec: &crate::oci::spec::Spec,
) -> Result<Option<crate::seccomp::Program>> {
    spec.linux
        .seccomp
        .as_ref()
        .map(crate::seccomp::compile)
        .transpose()
        .map_err(|e| e.wrap("linux.seccomp"))
}

/// A new pty from the devpts of the mount namespace we are in.
pub(crate) fn open_pty() -> Result<rootfs::Console> {
    let master = rustix::fs::open(
        "/dev/ptmx",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context("terminal: open /dev/ptmx")?;
    let slave = pty::open_peer(&master)?;
    Ok(rootfs::Console { master, slave })
}

/// Everything between a ready filesystem and exec but the seccomp filter
/// ([`Exec::lock_down`]): rlimits, user and capabilities, cwd, umask,
/// no_new_privs, which file to run, and fds from 3 on marked close-on-exec
/// except the `preserve_fds` first ones. `last_cap` is the kernel's highest
/// capability, read by the runtime before it cloned us.
///
/// Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: when the
/// process is not to have it, it stays effective until the filter is in.
pub(crate) fn finish<'a>(
    proc: &Process,
    preserve_fds: u32,
    seccomp: Option<&'a crate::seccomp::Program>,
    last_cap: u32,
) -> Result<Exec<'a>> {
    for r in &proc.rlimits {
        process::set_rlimit(r.resource, r.soft, r.hard)
            .with_context(|| format!("process.rlimits: set {} to {}/{}", r.name, r.soft, r.hard))?;
    }
    let env = environment(proc);
    // chdir before dropping privileges (the new user may not reach it through
    // the path), and again after if that failed.
    let early_cwd = rustix::process::chdir(proc.cwd.as_str());
    let keep_admin = seccomp.is_some() && !proc.no_new_privileges;
    let final_caps = change_user(proc, keep_admin, last_cap)?;
    if early_cwd.is_err() {
        rustix::process::chdir(proc.cwd.as_str())
            .with_context(|| format!("process.cwd: chdir {}", proc.cwd))?;
    }
    if proc.no_new_privileges {
        process::set_no_new_privs()?;
    }
    process::umask(proc.user.umask.unwrap_or(0o022));
    let path = find_executable(&proc.args[0], &env)?;
    process::cloexec_from(3 + preserve_fds as i32)?;
    for fd in 3..3 + preserve_fds as i32 {
        process::clear_cloexec(fd)?;
    }
    Ok(Exec {
        target: Target {
            path,
            args: proc.args.clone(),
            env,
        },
        seccomp,
        final_caps,
    })
}

pub(crate) fn write_oom_score_adj(adj: i32) -> Result<()> {
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
pub(crate) fn attach_console(
    pty: rootfs::Console,
    socket: Option<&UnixStream>,
    proc: &Process,
) -> Result<()> {
    let socket = socket.ok_or_else(|| Error::new("terminal: no console socket"))?;
    if let Some((rows, cols)) = proc.console_size {
        pty::set_size(&pty.master, rows, cols)?;
    }
    pty::give_to(&pty.slave, proc.user.uid)?;
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

/// Become the process's user with its capabilities. With `keep_admin`,
/// CAP_SYS_ADMIN stays effective (for the seccomp filter still to come) and
/// the capabilities to set once it is in are returned.
fn change_user(proc: &Process, keep_admin: bool, last_cap: u32) -> Result<Option<FinalCaps>> {
    let u = &proc.user;
    // No capabilities section means no capabilities (as runc and crun).
    let none = crate::oci::spec::Capabilities::default();
    let c = proc.capabilities.as_ref().unwrap_or(&none);
    caps::limit_bounding(c.bounding, last_cap).context("process.capabilities.bounding")?;
    caps::set_keep_caps(true)?;
    // setgroups is refused in a user namespace whose setgroups is "deny";
    // an empty list there is what the kernel already has.
    if let Err(e) = user::set_groups(&u.additional_gids) {
        if !u.additional_gids.is_empty() {
            return Err(e.wrap("process.user.additionalGids"));
        }
    }
    user::set_gid(u.gid).context("process.user.gid")?;
    user::set_uid(u.uid).context("process.user.uid")?;
    caps::set_keep_caps(false)?;
    let final_caps = FinalCaps {
        effective: c.effective,
        permitted: c.permitted,
        inheritable: c.inheritable,
        last_cap,
    };
    let (mut effective, mut permitted) = (c.effective, c.permitted);
    let admin = caps::CAP_SYS_ADMIN;
    let keep_admin = keep_admin && !(effective.contains(admin) && permitted.contains(admin));
    if keep_admin {
        effective.insert(admin);
        permitted.insert(admin);
    }
    caps::set(effective, permitted, c.inheritable, last_cap).context("process.capabilities")?;
    caps::raise_ambient(c.ambient);
    Ok(keep_admin.then_some(final_caps))
}

/// Find args[0] as execve would through the container's PATH, so a missing
/// binary fails `create`, not `start`.
fn find_executable(arg0: &str, env: &[String]) -> Result<String> {
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    crate::fsutil::find_executable(arg0, path).ok_or_else(|| {
        Error::new(if arg0.contains('/') {
            format!("exec: {arg0:?}: no such file, or not executable")
        } else {
            format!("exec: {arg0:?}: executable file not found in $PATH")
        })
    })
}
