//! Creating, replacing, waiting for and ending processes.

use super::{check, cstring, last_error};
use crate::error::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub type Pid = i32;

/// Which side of a clone we are on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// clone3(2) with namespace flags and fork semantics (the child continues
/// on a copy of the stack); given a cgroup v2 directory fd, also
/// CLONE_INTO_CGROUP: the child is born in that cgroup, which spares the
/// RCU grace period a later write to cgroup.procs would wait for. One call
/// makes every new namespace at once, the child being pid 1 of a new pid
/// namespace when asked. Returns whether the child was born in the cgroup.
///
/// The caller must be single-threaded. In the child, libc's cached thread
/// id is stale, so the child must leave only through [`exit_now`] or exec,
/// never through abort or a panic (see [`child_panics_exit`]).
pub fn clone_into_cgroup(ns_flags: u64, cgroup: Option<&OwnedFd>) -> Result<(Forked, bool)> {
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let clone3 = |flags: u64, cg: u64| -> libc::c_long {
        let args = CloneArgs {
            flags,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cg,
            ..CloneArgs::default()
        };
        // SAFETY: a zero stack gives fork semantics (the child runs on a
        // copy of our stack); args is a valid clone_args of the size we
        // pass; the caller is single-threaded.
        unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        }
    };
    let mut born_in_cgroup = cgroup.is_some();
    let mut ret = match cgroup {
        Some(cg) => clone3(ns_flags | CLONE_INTO_CGROUP, cg.as_raw_fd() as u64),
        None => clone3(ns_flags, 0),
    };
    if ret < 0 && cgroup.is_some() {
        let errno = std::io::Error::last_os_error().raw_os_error();
        if matches!(errno, Some(libc::EINVAL | libc::EOPNOTSUPP | libc::E2BIG)) {
            // Some cgroups refuse CLONE_INTO_CGROUP: join by writing instead.
            born_in_cgroup = false;
            ret = clone3(ns_flags, 0);
        }
    }
    if ret < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        return Ok((clone_legacy(ns_flags)?, false));
    }
    match check(ret).context("clone3")? {
        0 => Ok((Forked::Child, born_in_cgroup)),
        pid => Ok((Forked::Parent(pid as Pid), born_in_cgroup)),
    }
}

/// [`clone_into_cgroup`] without a cgroup.
pub fn clone_process(ns_flags: u64) -> Result<Forked> {
    clone_into_cgroup(ns_flags, None).map(|(f, _)| f)
}

/// clone(2), for kernels without clone3 (before 5.3).
fn clone_legacy(ns_flags: u64) -> Result<Forked> {
    // CLONE_NEWTIME shares clone(2)'s exit-signal byte: only clone3 has it.
    if ns_flags & 0xff != 0 {
        crate::bail!("clone: this kernel has no clone3, which a time namespace needs");
    }
    let flags = ns_flags as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a NULL stack makes clone behave like fork; the caller is
    // single-threaded (documented precondition).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match check(ret).context("clone")? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as Pid)),
    }
}

/// Plain fork(2); the caller must be single-threaded.
pub fn fork() -> Result<Forked> {
    // SAFETY: the caller is single-threaded, so the child inherits no lock
    // held by another thread.
    let ret = unsafe { libc::fork() };
    match check(ret as libc::c_long).context("fork")? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as Pid)),
    }
}

/// Make a panic in a cloned child end it at once with status 1 after
/// printing the message, instead of abort(), whose raise() would use the
/// parent's stale thread id.
pub fn child_panics_exit() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("skiff: internal error in container init: {info}");
        exit_now(1);
    }));
}

/// _exit(2): no atexit handlers, no stdio flush.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// execve(2). Returns only on failure.
pub fn execve(path: &str, args: &[String], env: &[String]) -> crate::Error {
    let to_c = |v: &[String]| -> Result<Vec<CString>> { v.iter().map(|s| cstring(s)).collect() };
    let (path_c, args_c, env_c) = match (cstring(path), to_c(args), to_c(env)) {
        (Ok(p), Ok(a), Ok(e)) => (p, a, e),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let mut argv: Vec<*const libc::c_char> = args_c.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env_c.iter().map(|s| s.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: all pointers point at NUL-terminated strings that outlive the
    // call, and both arrays end with NULL.
    unsafe { libc::execve(path_c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    last_error()
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention: the code, or 128 + the signal number.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }

    fn from_wait_status(status: libc::c_int) -> Self {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }
}

/// Wait for a child; `None` when `nohang` and it is still running.
pub fn wait_pid(pid: Pid, nohang: bool) -> Result<Option<Exit>> {
    let mut status: libc::c_int = 0;
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: status is a valid out-pointer.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret == -1 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(crate::Error::from(e).wrap(format!("wait for pid {pid}")));
        }
        if ret == 0 {
            return Ok(None);
        }
        return Ok(Some(Exit::from_wait_status(status)));
    }
}

/// Reap any child that has exited, without blocking: (pid, exit).
pub fn reap_any() -> Option<(Pid, Exit)> {
    let mut status: libc::c_int = 0;
    // SAFETY: status is a valid out-pointer.
    let ret = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (ret > 0).then(|| (ret, Exit::from_wait_status(status)))
}

/// kill(2).
pub fn kill(pid: Pid, sig: i32) -> std::io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    if unsafe { libc::kill(pid, sig) } == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Does a process with this pid exist (zombies included)?
pub fn alive(pid: Pid) -> bool {
    match kill(pid, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// Open a pidfd, which stays bound to this very process even if the pid is
/// reused later.
pub fn pidfd_open(pid: Pid) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success it returns a new fd that we own.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ret is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Send a signal through a pidfd.
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> std::io::Result<()> {
    // SAFETY: plain syscall on an fd we own; NULL siginfo is allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Wait until the process behind a pidfd has exited, up to `timeout_ms`
/// (-1: forever). Returns whether it exited.
pub fn pidfd_wait(pidfd: &OwnedFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ret == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return ret > 0;
    }
}

/// Mark every fd at or above `first` close-on-exec, so the container's
/// process inherits only stdio and the fds it was given.
///
/// close_range(2) does it in one call, but a seccomp filter we run under
/// (profiles older than close_range refuse it with EPERM) or an old kernel
/// (ENOSYS; EINVAL before CLOSE_RANGE_CLOEXEC, 5.11) may not have it: then
/// each fd listed in /proc/self/fd is marked by itself.
pub fn cloexec_from(first: RawFd) -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EPERM | libc::ENOSYS | libc::EINVAL) => cloexec_listed(first)
            .map_err(|walk| walk.wrap(format!("close_range: {e}; mark fds close-on-exec"))),
        _ => Err(crate::Error::from(e).wrap("close_range")),
    }
}

/// [`cloexec_from`] one fd at a time, as /proc/self/fd lists them. In
/// `exec` this runs in the container's mount namespace, whose /proc the
/// container may have covered with something else (CAP_SYS_ADMIN): a
/// listing that is not procfs's could leave fds unmarked, so it is refused.
fn cloexec_listed(first: RawFd) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd_dir = rustix::fs::open(
        "/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open /proc/self/fd")?;
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    let fs = rustix::fs::fstatfs(&fd_dir).context("statfs /proc/self/fd")?;
    if fs.f_type as i64 != PROC_SUPER_MAGIC {
        crate::bail!(
            "/proc/self/fd is not on procfs (filesystem type {:#x}): its list of fds cannot be trusted",
            fs.f_type
        );
    }
    // The directory's own fd is in the listing; it is close-on-exec already.
    let dir = rustix::fs::Dir::read_from(&fd_dir).context("list /proc/self/fd")?;
    for entry in dir {
        let entry = entry.context("list /proc/self/fd")?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .ok()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        if fd < first {
            continue;
        }
        // SAFETY: fcntl on an integer fd only reads or sets its flags;
        // failure is reported through errno.
        let ret = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags == -1 {
                -1
            } else {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC)
            }
        };
        // An fd closed since the listing (the directory's own) is fine.
        if ret == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EBADF) {
            return Err(super::last_error().wrap(format!("set close-on-exec on fd {fd}")));
        }
    }
    Ok(())
}

/// Clear close-on-exec on one fd (for --preserve-fds).
pub fn clear_cloexec(fd: RawFd) -> Result<()> {
    // SAFETY: fcntl on an integer fd; failure is reported through errno.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } as libc::c_long)
        .with_context(|| format!("clear close-on-exec on fd {fd}"))?;
    Ok(())
}

/// dup2(2).
pub fn dup2(from: RawFd, to: RawFd) -> Result<()> {
    // SAFETY: dup2 on integer fds; failure is reported through errno.
    check(unsafe { libc::dup2(from, to) } as libc::c_long)
        .with_context(|| format!("dup2 {from} to {to}"))?;
    Ok(())
}

/// Make `to` a close-on-exec duplicate of `from` (dup3 with O_CLOEXEC),
/// closing what `to` referred to before. For an fd this process owns whose
/// number others hold on to (the log sink).
pub fn dup_onto_cloexec(from: BorrowedFd, to: RawFd) -> Result<()> {
    // SAFETY: dup3 on integer fds; failure is reported through errno. The
    // caller owns `to`, which stays open (now naming `from`'s file).
    check(unsafe { libc::dup3(from.as_raw_fd(), to, libc::O_CLOEXEC) } as libc::c_long)
        .with_context(|| format!("dup3 {} onto {to}", from.as_raw_fd()))?;
    Ok(())
}

/// Become the reaper of orphaned descendants.
pub fn set_child_subreaper() -> Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("set child subreaper")
}

/// Ask the kernel to SIGKILL us when our parent dies.
pub fn set_parent_death_signal(sig: i32) -> Result<()> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) } as libc::c_long)
        .context("set parent death signal")?;
    Ok(())
}

/// Set no_new_privs.
pub fn set_no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true).context("set no_new_privs")
}

pub fn setsid() -> Result<()> {
    rustix::process::setsid().context("setsid")?;
    Ok(())
}

pub fn umask(mask: u32) {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
}

/// setrlimit for a resource by its number.
pub fn set_rlimit(resource: i32, soft: u64, hard: u64) -> std::io::Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: lim is a valid rlimit64; a NULL old-limit pointer is allowed.
    let ret = unsafe { libc::prlimit64(0, resource as _, &lim, std::ptr::null_mut()) };
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat): with the pid it names one process across pid reuse.
pub fn start_time(pid: Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The state letter of a process (R, S, D, Z, T, ...).
pub fn state_letter(pid: Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// personality(2).
pub fn set_personality(persona: u64) -> Result<()> {
    // SAFETY: personality takes one integer and changes only this process.
    check(unsafe { libc::personality(persona as libc::c_ulong) } as libc::c_long)
        .context("personality")?;
    Ok(())
}

/// Is `fd` an open descriptor of this process?
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on an integer only reads descriptor flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}
