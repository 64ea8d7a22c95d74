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
/// A forked child that must stay in the joined namespaces leaves through
/// exec or `exit_now`, which run no destructors.
#[derive(Default)]
pub struct Return(Vec<(Kind, OwnedFd)>);

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
        self.0.push((kind, fd));
        Ok(())
    }

    /// Save our namespace of `kind`, then join the one behind `fd`.
    pub fn enter(&mut self, fd: &OwnedFd, kind: Kind) -> Result<()> {
        self.save(kind)?;
        enter(fd, kind)
    }

    /// Go back to every saved namespace (the latest first). What could
    /// not be restored stays saved, for the drop to try again.
    pub fn restore(&mut self) -> Result<()> {
        while let Some((kind, fd)) = self.0.last() {
            enter(fd, *kind)
                .with_context(|| format!("return to our {} namespace", kind.oci_name()))?;
            self.0.pop();
        }
        Ok(())
    }
}

impl Drop for Return {
    fn drop(&mut self) {
        // Nothing to report to: a failure here leaves the thread where it
        // is, which restore() would have reported.
        for (kind, fd) in self.0.iter().rev() {
            let _ = enter(fd, *kind);
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
