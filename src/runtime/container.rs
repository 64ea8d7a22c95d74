//! A container's state directory: `<root>/<id>/state.json`, the lock that
//! serializes operations on it, and the live status.

use crate::error::{Context, Error, Result};
use crate::json;
use crate::sys::process::{self, Pid};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
/// The largest state.json we write or read. Ours are a few KiB, but
/// they copy the config's annotations and hooks, so a config at its own
/// bound must still fit: that bound plus room for the rest.
pub const MAX_STATE_BYTES: u64 = crate::oci::spec::MAX_CONFIG_BYTES + (1 << 20);
/// A copy of the config.json the container was created from.
pub const CONFIG_FILE: &str = "config.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What we keep on disk about a container. Our own format (not runc's).
#[derive(Debug, Clone, miniserde::Serialize, miniserde::Deserialize)]
pub struct State {
    pub id: String,
    pub pid: Pid,
    /// Start time of the init in clock ticks since boot: with `pid` it
    /// names one process, whatever pid reuse happens later.
    pub start_time: u64,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// The init has its own pid namespace (so killing it ends everything).
    pub own_pid_ns: bool,
    /// The container's cgroup, one directory per hierarchy.
    pub cgroup: Vec<crate::cgroups::Dir>,
    /// Hooks that run after create has returned.
    pub poststart: Vec<crate::oci::spec::Hook>,
    pub poststop: Vec<crate::oci::spec::Hook>,
    /// Without a mount namespace: the rootfs bind the container's mounts
    /// hang on, in the runtime's namespace, for delete to take away.
    pub rootfs_bind: Option<HostRootfsBind>,
}

/// A mount made in the runtime's mount namespace, by its mountinfo id (a
/// path alone could name a mount someone else put there).
#[derive(Debug, Clone, PartialEq, Eq, miniserde::Serialize, miniserde::Deserialize)]
pub struct HostRootfsBind {
    /// Canonical mount point.
    pub path: String,
    pub mount_id: u64,
}

/// The directory that holds every container's state (`--root`).
pub struct StateRoot {
    dir: PathBuf,
}

/// runc's rule: letters, digits, `_+-.`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(crate::err_kind!(
            InvalidArgument,
            "invalid container id {id:?}: use letters, digits and _+-. only"
        ))
    }
}

impl StateRoot {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateRoot { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Make the state dir of a new container. Exactly one of racing callers
    /// wins (mkdir is atomic); the loser hears that the id exists.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create state root {}", self.dir.display()))?;
        let dir = self.container_dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711));
                Ok(dir)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(crate::err_kind!(
                AlreadyExists,
                "container with id exists: {id}"
            )),
            Err(e) => Err(Error::from(e).wrap(format!("create state dir {}", dir.display()))),
        }
    }

    /// Ids of every container with a state dir, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(Error::from(e).wrap(format!("read {}", self.dir.display()))),
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if let Some(name) = entry.file_name().to_str() {
                    ids.push(name.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Load a container by id.
    pub fn load(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        let path = dir.join(STATE_FILE);
        // state.json is ours and small; a huge one is corrupt, not read.
        let text = match crate::fsutil::read_bounded(&path, MAX_STATE_BYTES) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(crate::err_kind!(NotFound, "container does not exist: {id}"))
            }
            Err(e) => return Err(Error::from(e).wrap(format!("read {}", path.display()))),
        };
        let state: State = miniserde::json::from_str(&text)
            .map_err(|_| Error::new(format!("{}: corrupt state file", path.display())))?;
        Ok(Container { dir, state })
    }
}

/// A container known to the state root.
pub struct Container {
    pub dir: PathBuf,
    pub state: State,
}

/// An exclusive lock on a container's state dir, held until dropped.
pub struct Lock {
    _fd: OwnedFd,
}

/// Take the exclusive lock on a state dir.
pub fn lock_dir(dir: &Path) -> Result<Lock> {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("open {}", dir.display()))?;
    rustix::fs::flock(fd.as_fd(), rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("lock {}", dir.display()))?;
    Ok(Lock { _fd: fd })
}

impl Container {
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The config the container was created from (its own copy; the
    /// bundle's for containers made before skiff kept one).
    pub fn spec(&self) -> Result<crate::oci::spec::Spec> {
        if self.dir.join(CONFIG_FILE).exists() {
            crate::oci::spec::load(&self.dir)
        } else {
            crate::oci::spec::load(Path::new(&self.state.bundle))
        }
    }

    pub fn cgroup(&self) -> crate::cgroups::Cgroup {
        crate::cgroups::Cgroup {
            dirs: self.state.cgroup.clone(),
        }
    }

    pub fn lock(&self) -> Result<Lock> {
        lock_dir(&self.dir)
    }

    /// Is the process recorded as init still that very process?
    pub fn init_alive(&self) -> bool {
        let pid = self.state.pid;
        pid > 0
            && process::start_time(pid) == Some(self.state.start_time)
            && process::state_letter(pid).is_some_and(|s| s != 'Z' && s != 'X')
    }

    pub fn status(&self) -> Status {
        if !self.init_alive() {
            Status::Stopped
        } else if self.dir.join(super::EXEC_SOCKET).exists() {
            Status::Created
        } else if !self.state.cgroup.is_empty() && self.cgroup().is_frozen() {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The pid to show: runc shows 0 for a stopped container.
    pub fn shown_pid(&self, status: Status) -> Pid {
        if status == Status::Stopped {
            0
        } else {
            self.state.pid
        }
    }

    /// Write state.json atomically. Not fsynced: runtime state lives in
    /// /run, which does not outlive the processes it describes, and an fsync
    /// on a disk-backed /run costs more than the rest of a container start.
    /// Write state.json; one that [`StateRoot::load`] would refuse is
    /// not written.
    pub fn save(&self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let text = miniserde::json::to_string(&self.state);
        if text.len() as u64 > MAX_STATE_BYTES {
            crate::bail!(
                "{}: state larger than {MAX_STATE_BYTES} bytes (the limit): annotations or hooks too large",
                path.display()
            );
        }
        write_replace(&path, text.as_bytes())
    }

    /// Remove the state dir.
    pub fn remove_dir(&self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).with_context(|| format!("remove {}", self.dir.display()))
    }

    /// runc's state JSON (`runc state`): two-space indent, annotations only
    /// when set. `owner` is empty for `state` and the user name for `list`.
    pub fn to_json(&self, status: Status, owner: &str, writer: &mut json::Writer) {
        writer.object();
        writer.key("ociVersion").str(super::OCI_VERSION);
        writer.key("id").str(&self.state.id);
        writer.key("pid").num(self.shown_pid(status));
        writer.key("status").str(status.as_str());
        writer.key("bundle").str(&self.state.bundle);
        writer.key("rootfs").str(&self.state.rootfs);
        writer.key("created").str(&self.state.created);
        writer.key("owner").str(owner);
        if !self.state.annotations.is_empty() {
            writer.key("annotations").object();
            for (k, v) in &self.state.annotations {
                writer.key(k).str(v);
            }
            writer.end_object();
        }
        writer.end_object();
    }
}

/// Replace a file so that readers see the old or the new contents, never a
/// torn one (write a temp file, rename it over). Not durable across a crash.
pub fn write_replace(path: &Path, data: &[u8]) -> Result<()> {
    // A hidden name beside it: `x.pid` must not clobber an `x.tmp`.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, data).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))
}
