//! One container of the shim: its runtime, its processes, what it holds
//! (rootfs mount, cgroup, OOM watch), and how a process of it is launched
//! with its stdio made ready.

use super::console::ConsoleSocket;
use super::logger::LoggerEnv;
use super::options::ShimOptions;
use super::process::Process;
use super::reaper::Reaper;
use super::runtime::{self, Binary, ProcessStdio, Runtime};
use super::stdio::{ProcessIo, StdioSpec};
use crate::err_kind;
use crate::error::Result;
use crate::sys::process::Pid;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the runtime has to send a terminal's master.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

/// One container this shim holds.
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub(super) runtime: Runtime,
    /// Its own pid namespace: the kernel ends the rest when the init dies.
    pub(super) own_pid_ns: bool,
    pub(super) io_uid: Option<u32>,
    pub(super) io_gid: Option<u32>,
    pub(super) rootfs_mounted: bool,
    pub init: Arc<Process>,
    pub(super) execs: Mutex<HashMap<String, Arc<Process>>>,
    pub(super) oom: Mutex<Option<super::oom::OomWatch>>,
    /// The container's cgroup, read while its init lived: what is left in
    /// it is killed when the init of a container without its own pid
    /// namespace exits.
    pub(super) cgroup: Mutex<Option<crate::cgroups::Cgroup>>,
}

impl Container {
    pub(super) fn log(&self) -> PathBuf {
        self.bundle.join("log.json")
    }

    pub(super) fn exec(&self, exec_id: &str) -> Result<Arc<Process>> {
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(exec_id)
            .cloned()
            .ok_or_else(|| {
                err_kind!(
                    NotFound,
                    "exec {exec_id:?} of container {:?} does not exist",
                    self.id
                )
            })
    }

    pub(super) fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            Ok(self.init.clone())
        } else {
            self.exec(exec_id)
        }
    }
}

/// Run `run` (the runtime's create or exec) with the process's stdio made
/// ready: pipes, or a console socket whose master is received afterwards.
pub(super) fn launch(
    c: &Container,
    spec: &StdioSpec,
    reaper: &Reaper,
    namespace: &str,
    run: impl FnOnce(ProcessStdio, Option<&Path>) -> Result<Pid>,
) -> Result<(Pid, ProcessIo)> {
    if spec.terminal {
        let sock = ConsoleSocket::new()?;
        let pid = run(ProcessStdio::null(), Some(sock.path()))?;
        let master = match sock.receive(CONSOLE_TIMEOUT) {
            Ok(m) => m,
            Err(e) => {
                kill_made(pid);
                return Err(e);
            }
        };
        let io = ProcessIo::start_console(spec, master).inspect_err(|_| kill_made(pid))?;
        return Ok((pid, io));
    }
    let logger = LoggerEnv {
        reaper,
        container_id: &c.id,
        namespace,
    };
    let (ends, pipes) = ProcessIo::pipes(spec, c.io_uid, c.io_gid, &logger)?;
    let pid = run(ends, None)?;
    let io = ProcessIo::start_pipes(spec, pipes).inspect_err(|_| kill_made(pid))?;
    Ok((pid, io))
}

/// The runtime made a process but its launch failed after that: it must
/// not run on untracked (the caller deletes an init with the runtime).
fn kill_made(pid: Pid) {
    let _ = crate::sys::process::kill(pid, libc::SIGKILL);
}

pub(super) fn runtime_for(opts: &ShimOptions, namespace: &str, reaper: &Reaper) -> Result<Runtime> {
    let binary = if opts.binary_name.is_empty() {
        Binary::Own
    } else {
        Binary::Named(opts.binary_name.clone())
    };
    Runtime::new(
        binary,
        runtime::root_for(opts.root_or_default(), namespace),
        opts.systemd_cgroup,
        reaper.clone(),
    )
}

/// The runtime a bundle's saved options name (for `delete` after a crash).
pub fn runtime_of_bundle(bundle: &Path, namespace: &str, reaper: &Reaper) -> Result<Runtime> {
    runtime_for(&ShimOptions::load(bundle)?, namespace, reaper)
}

/// Does the config give the container a pid namespace of its own? (An
/// unreadable config: assume so; the runtime's create will say what is wrong.)
pub(super) fn own_pid_namespace(bundle: &Path) -> bool {
    let Ok(spec) = crate::oci::spec::load(bundle) else {
        return true;
    };
    spec.linux
        .namespace(crate::sys::ns::Kind::Pid)
        .is_some_and(|n| n.path.as_deref().is_none_or(str::is_empty))
}
