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

/// The namespaces we had before joining others, to come back to after a
/// clone: until then this process runs in the container's network, uts...
/// namespaces (hooks would too), and in a foreign pid namespace it cannot
/// even start a thread.
#[derive(Default)]
pub struct Return(Vec<(Kind, OwnedFd)>);

impl Return {
    /// Remember our own namespace of `kind` (before joining another).
    pub fn save(&mut self, kind: Kind) -> Result<()> {
        let path = format!("/proc/self/ns/{}", kind.proc_name());
        let fd = rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("open {path}"))?;
        self.0.push((kind, fd));
        Ok(())
    }

    /// Go back to every saved namespace.
    pub fn restore(&self) -> Result<()> {
        for (kind, fd) in &self.0 {
            enter(fd, *kind)?;
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
