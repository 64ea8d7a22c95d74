//! Namespaces: their kinds, joining one by path, and making new ones.

use super::check;
use crate::error::{Context, Result};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pid,
    Network,
    Mount,
    Ipc,
    Uts,
    User,
    Cgroup,
    Time,
}

impl Kind {
    /// Parse the OCI `linux.namespaces[].type` value.
    pub fn from_oci(s: &str) -> Option<Self> {
        Some(match s {
            "pid" => Kind::Pid,
            "network" => Kind::Network,
            "mount" => Kind::Mount,
            "ipc" => Kind::Ipc,
            "uts" => Kind::Uts,
            "user" => Kind::User,
            "cgroup" => Kind::Cgroup,
            "time" => Kind::Time,
            _ => return None,
        })
    }

    pub fn oci_name(self) -> &'static str {
        match self {
            Kind::Pid => "pid",
            Kind::Network => "network",
            Kind::Mount => "mount",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::User => "user",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time",
        }
    }

    /// The file under /proc/PID/ns/.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::Network => "net",
            Kind::Mount => "mnt",
            other => other.oci_name(),
        }
    }

    pub fn clone_flag(self) -> u64 {
        (match self {
            Kind::Pid => libc::CLONE_NEWPID,
            Kind::Network => libc::CLONE_NEWNET,
            Kind::Mount => libc::CLONE_NEWNS,
            Kind::Ipc => libc::CLONE_NEWIPC,
            Kind::Uts => libc::CLONE_NEWUTS,
            Kind::User => libc::CLONE_NEWUSER,
            Kind::Cgroup => libc::CLONE_NEWCGROUP,
            Kind::Time => 0x80, // CLONE_NEWTIME
        }) as u64
    }
}

/// setns(2) into the namespace behind `fd`.
pub fn enter(fd: &OwnedFd, kind: Kind) -> Result<()> {
    // SAFETY: setns on an fd we own with a namespace type flag.
    let ret = unsafe { libc::setns(fd.as_raw_fd(), kind.clone_flag() as libc::c_int) };
    check(ret as libc::c_long).with_context(|| format!("join {} namespace", kind.oci_name()))?;
    Ok(())
}

/// unshare(2) with CLONE_NEW* flags.
pub fn unshare(flags: u64) -> Result<()> {
    // SAFETY: unshare with flags only changes this process's namespaces.
    check(unsafe { libc::unshare(flags as libc::c_int) } as libc::c_long).context("unshare")?;
    Ok(())
}

/// The calling thread's own namespaces, saved before it joins others: it
/// goes back to them on [`Return::restore`] or, on every other way out
/// (an early error, a panic), when the guard is dropped. Until then the
/// thread runs in the container's network, uts... namespaces (hooks would
/// too), and in a foreign pid namespace it cannot even start a thread; a
/// shim or daemon calling the runtime library must never keep a thread
/// there.
///
/// If the drop cannot take the thread back, it aborts the process: a
/// thread left in a container's namespaces must not go on (a shim or
/// daemon worker would open its next socket or file inside the
/// container), and a drop has no caller to report to. Call
/// [`Return::restore`] first to get an error instead.
///
/// Not `Send`: namespaces belong to the thread that joined them, so the
/// guard must be dropped on that thread.
///
/// A forked child that must stay in the joined namespaces leaves through
/// exec or `exit_now`, which run no destructors.
#[derive(Default)]
pub struct Return {
    saved: Vec<(Kind, OwnedFd)>,
    per_thread: std::marker::PhantomData<*const ()>,
}

impl Return {
    /// Remember this thread's own namespace of `kind` (before joining
    /// another). Per thread: /proc/thread-self, not /proc/self, which is
    /// the main thread's.
    pub fn save(&mut self, kind: Kind) -> Result<()> {
        let path = format!("/proc/thread-self/ns/{}", kind.proc_name());
        let fd = rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("open {path}"))?;
        self.saved.push((kind, fd));
        Ok(())
    }

    /// Save our namespace of `kind`, then join the one behind `fd`.
    pub fn enter(&mut self, fd: &OwnedFd, kind: Kind) -> Result<()> {
        self.save(kind)?;
        enter(fd, kind)
    }

    /// Go back to every saved namespace (the latest first). What could
    /// not be restored stays saved, for the drop to try again (and abort
    /// if it fails again).
    pub fn restore(&mut self) -> Result<()> {
        while let Some((kind, fd)) = self.saved.last() {
            enter(fd, *kind)
                .with_context(|| format!("return to our {} namespace", kind.oci_name()))?;
            self.saved.pop();
        }
        Ok(())
    }
}

/// Run `f` on a thread of its own that has joined the mount namespace
/// behind `mnt_ns`: the thread first takes a private copy of the
/// filesystem context (root, cwd), which setns(2) of a mount namespace
/// needs in a process with other threads, so the caller's threads keep
/// theirs. Files `f` opens stay open for the whole process.
pub fn in_mount_ns<T: Send>(mnt_ns: &OwnedFd, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(libc::CLONE_FS as u64).context("unshare the filesystem context")?;
            enter(mnt_ns, Kind::Mount)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(crate::err!("mount namespace thread panicked")))
    })
}

/// Is the namespace behind `fd` the calling thread's namespace of `kind`?
pub fn is_own(fd: &OwnedFd, kind: Kind) -> Result<bool> {
    let path = format!("/proc/thread-self/ns/{}", kind.proc_name());
    let ours = rustix::fs::stat(path.as_str()).with_context(|| format!("stat {path}"))?;
    let theirs = rustix::fs::fstat(fd).context("stat namespace")?;
    Ok(ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino)
}

impl Drop for Return {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            // The one message this library writes itself: the process is
            // about to end and there is no caller left to tell.
            eprintln!("skiff: {e}: a thread cannot stay in a container's namespaces; aborting");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn own_net() -> u64 {
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    }

    /// A fresh network namespace, made by a thread of its own (unshare
    /// moves only the calling thread), as an fd.
    fn new_netns() -> OwnedFd {
        std::thread::spawn(|| {
            unshare(libc::CLONE_NEWNET as u64).unwrap();
            rustix::fs::open(
                "/proc/thread-self/ns/net",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .unwrap()
        })
        .join()
        .unwrap()
    }

    /// Compiles only while `Return` is not `Send` (two impls would apply
    /// to a `Send` type and the call below would be ambiguous).
    #[allow(dead_code)]
    fn return_is_not_send() {
        trait AmbiguousIfSend<A> {
            fn check() {}
        }
        impl<T: ?Sized> AmbiguousIfSend<()> for T {}
        impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
        <Return as AmbiguousIfSend<_>>::check();
    }

    /// Run in a child process by the test below: a guard whose saved
    /// "namespace" is /dev/null cannot return, so its drop must abort.
    #[test]
    fn failed_return_child() {
        if std::env::var_os("SKIFF_NS_ABORT_CHILD").is_none() {
            return;
        }
        let null = rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let mut back = Return::default();
        back.saved.push((Kind::Network, null));
        assert!(back.restore().is_err(), "setns into /dev/null fails");
        drop(back);
        // Reached only if the drop let the thread go on.
        std::process::exit(0);
    }

    #[test]
    fn a_failed_return_aborts_the_process() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sys::ns::tests::failed_return_child",
                "--nocapture",
            ])
            .env("SKIFF_NS_ABORT_CHILD", "1")
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "status {:?}, stderr: {stderr}",
            out.status
        );
        assert!(
            stderr.contains("return to our network namespace"),
            "{stderr}"
        );
    }

    fn join_then_fail(fd: &OwnedFd, joined: &mut u64) -> Result<()> {
        let mut back = Return::default();
        back.enter(fd, Kind::Network)?;
        *joined = own_net();
        crate::bail!("an early error, after the join")
    }

    #[test]
    fn a_thread_returns_to_its_namespace_on_every_exit_path() {
        if !rustix::process::geteuid().is_root() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "setns needs root (CI=true: not skipped)");
            eprintln!("skipped: setns needs root");
            return;
        }
        let target = new_netns();
        let target_ino = rustix::fs::fstat(&target).unwrap().st_ino;
        std::thread::spawn(move || {
            let home = own_net();
            assert_ne!(home, target_ino);
            // An early error.
            let mut joined = 0;
            assert!(join_then_fail(&target, &mut joined).is_err());
            assert_eq!(joined, target_ino, "the join happened");
            assert_eq!(own_net(), home, "back after an error");
            // A panic.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut back = Return::default();
                back.enter(&target, Kind::Network).unwrap();
                assert_eq!(own_net(), target_ino);
                panic!("inside the namespace");
            }));
            assert!(r.is_err());
            assert_eq!(own_net(), home, "back after a panic");
            // restore(), then the drop does nothing more.
            let mut back = Return::default();
            back.enter(&target, Kind::Network).unwrap();
            back.restore().unwrap();
            assert_eq!(own_net(), home);
            drop(back);
            assert_eq!(own_net(), home);
        })
        .join()
        .unwrap();
    }
}
