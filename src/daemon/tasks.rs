//! Tasks: each container's task runs under a shim started for its runtime;
//! the daemon keeps one ttrpc connection per shim and forwards the task
//! service's calls to it (`containerd.task.v2.Task`). The bundle lives at
//! `<state>/io.containerd.runtime.v2.task/<ns>/<id>` with the container's
//! spec as `config.json`; a restarted daemon finds the bundles again,
//! reconnects to the shims that live and cleans up after the others.

use super::api::{lock, missing, status, Ctx, Handler};
use super::events::Exchange;
use super::services::mount_to_proto;
use super::shim::{self, Invocation};
use super::shim_log;
use super::store::Stores;
use crate::error::{Context, Error, Result};
use crate::proto::events::{self as ev, Envelope};
use crate::proto::services::tasks as pt;
use crate::proto::task as st;
use crate::proto::types::{Empty, Timestamp};
use crate::ttrpc::{self, unary, unknown_method, Client, Code, Status};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TASK_DIR: &str = "io.containerd.runtime.v2.task";
/// The runtime a bundle's shim was started for (to run its `delete`).
const RUNTIME_FILE: &str = "runtime";
/// How long a shim may take to answer a short call.
const SHORT: Option<Duration> = Some(Duration::from_secs(10));

/// The bundle file holding the shim's pid (containerd's runc shim writes
/// it itself; for other shims the daemon writes what Connect reported).
const SHIM_PID_FILE: &str = "shim.pid";
/// The shim's start time (see [`process_start_time`]), by the daemon.
const SHIM_START_FILE: &str = "shim.start-time";

struct Task {
    ns: String,
    id: String,
    bundle: PathBuf,
    runtime: String,
    /// The shim's ttrpc address, to reconnect when the connection is lost
    /// or was never made (a shim that did not answer at recovery).
    address: String,
    client: Mutex<Option<Arc<Client>>>,
}

impl Task {
    fn new(ns: &str, id: &str, bundle: &Path, runtime: &str, address: &str) -> Task {
        Task {
            ns: ns.into(),
            id: id.into(),
            bundle: bundle.to_path_buf(),
            runtime: runtime.into(),
            address: address.into(),
            client: Mutex::new(None),
        }
    }

    fn with_client(self, client: Client) -> Task {
        *lock(&self.client) = Some(Arc::new(client));
        self
    }

    /// The connection to the shim, made now if there is none.
    fn client(&self) -> std::result::Result<Arc<Client>, Status> {
        let mut c = lock(&self.client);
        if let Some(c) = &*c {
            return Ok(c.clone());
        }
        let client = Arc::new(Client::connect(&self.address).map_err(|e| {
            Status::new(
                Code::Unavailable,
                format!("task {:?}: connect to shim {}: {e}", self.id, self.address),
            )
        })?);
        *c = Some(client.clone());
        Ok(client)
    }

    fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        req: &Req,
        timeout: Option<Duration>,
    ) -> std::result::Result<Resp, Status> {
        let client = self.client()?;
        let res = ttrpc::call(&client, st::SERVICE_V2, method, req, timeout);
        if matches!(&res, Err(e) if e.code == Code::Unavailable) {
            // The connection is gone: the next call dials again.
            *lock(&self.client) = None;
        }
        res
    }
}

pub struct Tasks {
    state: PathBuf,
    address: String,
    debug: bool,
    stores: Arc<Stores>,
    exchange: Arc<Exchange>,
    tasks: Mutex<Vec<Arc<Task>>>,
    /// While [`Tasks::recover`] runs (its events are a restart's).
    recovering: std::sync::atomic::AtomicBool,
    /// Deleted tasks' shim shutdowns and bundle removals in progress.
    background: Arc<Background>,
}

impl Tasks {
    pub fn new(
        state: &Path,
        address: &str,
        debug: bool,
        stores: Arc<Stores>,
        exchange: Arc<Exchange>,
    ) -> Tasks {
        Tasks {
            state: state.to_path_buf(),
            address: address.to_string(),
            debug,
            stores,
            exchange,
            tasks: Mutex::new(Vec::new()),
            recovering: Default::default(),
            background: Default::default(),
        }
    }

    /// Wait up to `limit` for the work deleted tasks left to threads (their
    /// shims told to leave, their bundles removed); false if some is still
    /// running then. The daemon calls it before it exits: what a daemon
    /// that dies first leaves, the next one's [`Tasks::recover`] finishes.
    pub fn finish_background(&self, limit: Duration) -> bool {
        self.background.wait(limit)
    }

    fn bundle(&self, ns: &str, id: &str) -> PathBuf {
        self.state.join(TASK_DIR).join(ns).join(id)
    }

    fn find(&self, ns: &str, id: &str) -> std::result::Result<Arc<Task>, Status> {
        lock(&self.tasks)
            .iter()
            .find(|t| t.ns == ns && t.id == id)
            .cloned()
            .ok_or_else(|| Status::new(Code::NotFound, format!("task {id:?}: not found")))
    }

    /// Drop `t` from the table; false when it was not there (another
    /// request forgot it first: that one cleans up after it).
    fn forget(&self, t: &Task) -> bool {
        let mut tasks = lock(&self.tasks);
        let before = tasks.len();
        // By identity: a task of the same id created since is another's.
        tasks.retain(|x| !std::ptr::eq(Arc::as_ptr(x), t));
        tasks.len() != before
    }

    fn invocation<'a>(&'a self, ns: &'a str, id: &'a str, bundle: &'a Path) -> Invocation<'a> {
        Invocation {
            namespace: ns,
            id,
            bundle,
            address: &self.address,
            debug: self.debug,
        }
    }

    /// Find the bundles a previous daemon left: reconnect to live shims,
    /// clean up after dead ones (`shim delete`, exit events published).
    pub fn recover(&self) -> Result<()> {
        let root = self.state.join(TASK_DIR);
        let Ok(namespaces) = std::fs::read_dir(&root) else {
            return Ok(());
        };
        let mut bundles = Vec::new();
        for ns in namespaces.flatten() {
            let ns_name = ns.file_name().to_string_lossy().into_owned();
            let Ok(ids) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            for id in ids.flatten() {
                let id_name = id.file_name().to_string_lossy().into_owned();
                if id_name.starts_with(RETIRED_PREFIX) {
                    // A deleted task's bundle whose removal the daemon did
                    // not live to finish (see Tasks::retire): its shim
                    // may not have been told to leave yet.
                    stop_retired_shim(&id.path());
                    if let Err(e) = remove_bundle(&id.path()) {
                        crate::log::warn!("{e}");
                    }
                    continue;
                }
                bundles.push((ns_name.clone(), id_name, id.path()));
            }
        }
        // Exits recovery publishes are replayed to the clients that come
        // back (see events.rs); a stuck shim costs its timeouts once, not
        // once per shim behind it.
        self.recovering
            .store(true, std::sync::atomic::Ordering::SeqCst);
        in_parallel(&bundles, RECOVER_AT_ONCE, |(ns, id, bundle)| {
            if let Err(e) = self.recover_one(ns, id, bundle) {
                crate::log::warn!("recover task {ns}/{id}: {e}");
            }
        });
        self.recovering
            .store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn recover_one(&self, ns: &str, id: &str, bundle: &Path) -> Result<()> {
        let runtime = std::fs::read_to_string(bundle.join(RUNTIME_FILE))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| shim::SKIFF_RUNTIME.to_string());
        let address = std::fs::read_to_string(bundle.join("address")).unwrap_or_default();
        let address = address.trim();
        if address.is_empty() {
            // The shim never got to serve (its start did not finish).
            return self
                .cleanup_dead(ns, id, bundle, &runtime, false)
                .map(|_| ());
        }
        let task = Task::new(ns, id, bundle, &runtime, address);
        let unreachable = match Client::connect(address) {
            Ok(client) => {
                let alive: std::result::Result<st::ConnectResponse, Status> = ttrpc::call(
                    &client,
                    st::SERVICE_V2,
                    "Connect",
                    &st::ConnectRequest { id: id.into() },
                    Some(Duration::from_secs(5)),
                );
                match alive {
                    Ok(r) => {
                        record_shim_pid(bundle, r.shim_pid);
                        let task = task.with_client(client);
                        if self.never_created(&task) {
                            // The daemon died between the shim's start and
                            // the task's Create: nothing runs there.
                            crate::log::warn!(
                                "recover task {ns}/{id}: shim holds no task; removed"
                            );
                            self.shutdown_shim(&task);
                            return self
                                .cleanup_dead(ns, id, bundle, &runtime, false)
                                .map(|_| ());
                        }
                        self.adopt(task);
                        return Ok(());
                    }
                    // Connected but closed at once: the pid decides.
                    Err(e) if e.code == Code::Unavailable => Some(Unreachable::Unclear),
                    // Slow or busy but there: keep the connection.
                    Err(e) => {
                        crate::log::warn!("recover task {ns}/{id}: shim slow to answer: {e}");
                        self.adopt(task.with_client(client));
                        return Ok(());
                    }
                }
            }
            Err(e) => unreachable_because(e.kind()),
        };
        let pid_alive = shim_pid_alive(bundle);
        let gone = match unreachable {
            Some(Unreachable::Refused) => true,
            Some(Unreachable::Unclear) => !pid_alive,
            None => false,
        };
        if gone {
            return self
                .cleanup_dead(ns, id, bundle, &runtime, true)
                .map(|_| ());
        }
        // Unknown: the shim may live. Keep the task; its first use dials
        // again, and only a dead shim's task gets cleaned up then.
        crate::log::warn!(
            "recover task {ns}/{id}: shim at {address} does not answer \
             ({unreachable:?}, pid alive: {pid_alive}); kept"
        );
        self.adopt(task);
        Ok(())
    }

    fn adopt(&self, t: Task) {
        if let Ok(log) = shim_log::open(&t.bundle) {
            shim_log::follow(log, format!("{}/{}", t.ns, t.id));
        }
        lock(&self.tasks).push(Arc::new(t));
    }

    /// Whether a shim that answers holds no task `t.id` (its State says
    /// NotFound): made by a daemon that died before the task's Create.
    fn never_created(&self, t: &Task) -> bool {
        let r: std::result::Result<st::StateResponse, Status> = t.call(
            "State",
            &st::StateRequest {
                id: t.id.clone(),
                exec_id: String::new(),
            },
            SHORT,
        );
        matches!(r, Err(e) if e.code == Code::NotFound)
    }

    /// A shim that is gone: its `delete` reaps what it left (and reports
    /// the exit, published as the shim would have when the task was
    /// created: `created`), then the bundle goes.
    fn cleanup_dead(
        &self,
        ns: &str,
        id: &str,
        bundle: &Path,
        runtime: &str,
        created: bool,
    ) -> Result<st::DeleteResponse> {
        let inv = self.invocation(ns, id, bundle);
        let res = shim::binary(runtime).and_then(|b| b.delete(&inv));
        let (pid, exit_status, exited_at) = match &res {
            Ok(r) => (r.pid, r.exit_status, r.exited_at),
            Err(_) => (0, 255, Some(Timestamp::now())),
        };
        if created {
            self.publish_exit(ns, id, pid, exit_status, exited_at);
        }
        remove_dead_socket(bundle);
        remove_bundle(bundle)?;
        res
    }

    /// The events of a task's end the shim could not send.
    fn publish_exit(
        &self,
        ns: &str,
        id: &str,
        pid: u32,
        exit_status: u32,
        exited_at: Option<Timestamp>,
    ) {
        self.publish(
            ns,
            ev::topic::TASK_EXIT,
            ev::TASK_EXIT,
            &ev::TaskExit {
                container_id: id.into(),
                id: id.into(),
                pid,
                exit_status,
                exited_at,
            },
        );
        self.publish(
            ns,
            ev::topic::TASK_DELETE,
            ev::TASK_DELETE,
            &ev::TaskDelete {
                container_id: id.into(),
                pid,
                exit_status,
                exited_at,
                id: String::new(),
            },
        );
    }

    fn publish<M: prost::Message>(&self, ns: &str, topic: &str, type_name: &str, m: &M) {
        let env = Envelope {
            timestamp: Some(Timestamp::now()),
            namespace: ns.into(),
            topic: topic.into(),
            event: Some(ev::any(type_name, m)),
        };
        if self.recovering.load(std::sync::atomic::Ordering::SeqCst) {
            self.exchange.publish_replayed(env);
        } else {
            self.exchange.publish(env);
        }
    }

    fn create(
        &self,
        ns: &str,
        r: pt::CreateTaskRequest,
    ) -> std::result::Result<pt::CreateTaskResponse, Status> {
        let id = r.container_id.clone();
        if lock(&self.tasks).iter().any(|t| t.ns == ns && t.id == id) {
            return Err(Status::new(
                Code::AlreadyExists,
                format!("task {id:?}: already exists"),
            ));
        }
        let db = self.stores.db().map_err(status)?;
        let c = db.container(ns, &id).map_err(status)?;
        let spec = c.spec.as_ref().ok_or_else(|| {
            Status::new(Code::InvalidArgument, format!("container {id:?}: no spec"))
        })?;
        let mut rootfs = r.rootfs.clone();
        if rootfs.is_empty() && !c.snapshot_key.is_empty() {
            rootfs = self
                .stores
                .mounts(&c.snapshotter, ns, &c.snapshot_key)
                .map_err(status)?
                .into_iter()
                .map(mount_to_proto)
                .collect();
        }
        let bundle = self.bundle(ns, &id);
        // Making the bundle directory claims the id: a concurrent create
        // of the same task fails here.
        if let Some(parent) = bundle.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| status(Error::from(e).wrap(format!("create {}", parent.display()))))?;
        }
        if let Err(e) = std::fs::create_dir(&bundle) {
            let kind = e.kind();
            let err =
                Error::from(e).wrap(format!("task {id:?}: create bundle {}", bundle.display()));
            return Err(status(if kind == std::io::ErrorKind::AlreadyExists {
                err.with_kind(crate::Kind::AlreadyExists)
            } else {
                err
            }));
        }
        let made = || -> Result<()> {
            std::fs::create_dir(bundle.join("rootfs")).context("create bundle rootfs")?;
            std::fs::write(bundle.join("config.json"), &spec.value).context("write config.json")?;
            std::fs::write(bundle.join(RUNTIME_FILE), &c.runtime.name).context("write runtime")?;
            Ok(())
        };
        let t0 = std::time::Instant::now();
        let started = made().and_then(|()| {
            let bin = shim::binary(&c.runtime.name)?;
            let log = shim_log::open(&bundle)?;
            let options =
                r.options
                    .clone()
                    .or(c.runtime.options.clone().map(|a| crate::proto::types::Any {
                        type_url: a.type_url,
                        value: a.value,
                    }));
            let address = bin.start(&self.invocation(ns, &id, &bundle), options.as_ref())?;
            shim_log::follow(log, format!("{ns}/{id}"));
            Ok((address, options))
        });
        let (address, options) = match started {
            Ok(x) => x,
            Err(e) => {
                // A failed start may still have left a shim (e.g. one that
                // timed out): its delete and a kill stop it.
                self.stop_orphan(ns, &id, &bundle, &c.runtime.name);
                let _ = remove_bundle(&bundle);
                return Err(status(e));
            }
        };
        let t_started = t0.elapsed();
        let task = Task::new(ns, &id, &bundle, &c.runtime.name, &address);
        let connected = Client::connect(&address)
            .with_context(|| format!("connect to shim {address}"))
            .and_then(|client| {
                let r: st::ConnectResponse = ttrpc::call(
                    &client,
                    st::SERVICE_V2,
                    "Connect",
                    &st::ConnectRequest { id: id.clone() },
                    SHORT,
                )
                .map_err(|e| Error::new(format!("shim {address}: Connect: {}", e.message)))?;
                record_shim_pid(&bundle, r.shim_pid);
                Ok(client)
            });
        let task = match connected {
            Ok(client) => Arc::new(task.with_client(client)),
            Err(e) => {
                self.stop_orphan(ns, &id, &bundle, &c.runtime.name);
                let _ = remove_bundle(&bundle);
                return Err(status(e));
            }
        };
        let t_connected = t0.elapsed();
        super::faults::point("task-shim-started");
        let req = st::CreateTaskRequest {
            id: id.clone(),
            bundle: bundle.to_string_lossy().into_owned(),
            rootfs,
            terminal: r.terminal,
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
            checkpoint: String::new(),
            parent_checkpoint: String::new(),
            options,
        };
        let created = task.call::<_, st::CreateTaskResponse>("Create", &req, None);
        // Where a task's create spends its time (the shim's own start and
        // Create dominate a `ctr run`).
        crate::log::debug!(
            "task {ns}/{id}: bundle + shim start {:.2} ms, connect {:.2} ms, shim Create {:.2} ms",
            t_started.as_secs_f64() * 1e3,
            (t_connected - t_started).as_secs_f64() * 1e3,
            (t0.elapsed() - t_connected).as_secs_f64() * 1e3
        );
        match created {
            Ok(resp) => {
                lock(&self.tasks).push(task);
                Ok(pt::CreateTaskResponse {
                    container_id: id,
                    pid: resp.pid,
                })
            }
            Err(e) => {
                self.shutdown_shim(&task);
                let _ = self.cleanup_dead(ns, &id, &bundle, &task.runtime, false);
                Err(e)
            }
        }
    }

    /// After a failed create: the shim binary's delete cleans up what the
    /// shim made, and the shim itself (if its pid is known) is killed.
    fn stop_orphan(&self, ns: &str, id: &str, bundle: &Path, runtime: &str) {
        let inv = self.invocation(ns, id, bundle);
        let _ = shim::binary(runtime).and_then(|b| b.delete(&inv));
        if let Some(pid) = read_shim_pid(bundle) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        remove_dead_socket(bundle);
    }

    fn shutdown_shim(&self, t: &Task) {
        shutdown_shim(t);
    }

    fn delete(&self, ns: &str, id: &str) -> std::result::Result<pt::DeleteResponse, Status> {
        let t = self.find(ns, id)?;
        let req = st::DeleteRequest {
            id: id.into(),
            exec_id: String::new(),
        };
        let mut answer = t.call::<_, st::DeleteResponse>("Delete", &req, SHORT);
        if matches!(&answer, Err(e) if e.code == Code::Unavailable) && !shim_gone(&t) {
            // The connection broke but the shim lives: dial it again.
            answer = t.call("Delete", &req, SHORT);
        }
        let resp = match answer {
            Ok(r) => r,
            Err(e) if e.code == Code::Unavailable && shim_gone(&t) => {
                // The shim died: its binary's delete reports what it can,
                // once (a concurrent Delete that forgot it first does).
                if !self.forget(&t) {
                    return Err(Status::new(
                        Code::NotFound,
                        format!("task {id:?}: not found"),
                    ));
                }
                let r = self
                    .cleanup_dead(ns, id, &t.bundle, &t.runtime, true)
                    .map_err(status)?;
                return Ok(pt::DeleteResponse {
                    id: id.into(),
                    pid: r.pid,
                    exit_status: r.exit_status,
                    exited_at: r.exited_at,
                });
            }
            Err(e) if e.code == Code::Unavailable => {
                // Alive but out of reach (its socket gone, say): deleting
                // its bundle now would orphan a running shim. Kept; a
                // later Delete tries again.
                return Err(Status::new(
                    Code::Unavailable,
                    format!(
                        "task {id:?}: shim is alive but does not answer ({}); task kept",
                        e.message
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        super::faults::point("task-shim-deleted");
        self.forget(&t);
        self.retire(t).map_err(status)?;
        Ok(pt::DeleteResponse {
            id: id.into(),
            pid: resp.pid,
            exit_status: resp.exit_status,
            exited_at: resp.exited_at,
        })
    }

    fn process(&self, t: &Task, exec_id: &str) -> std::result::Result<pt::Process, Status> {
        let s: st::StateResponse = t.call(
            "State",
            &st::StateRequest {
                id: t.id.clone(),
                exec_id: exec_id.into(),
            },
            SHORT,
        )?;
        Ok(pt::Process {
            container_id: t.id.clone(),
            id: if exec_id.is_empty() {
                t.id.clone()
            } else {
                exec_id.into()
            },
            pid: s.pid,
            status: s.status,
            stdin: s.stdin,
            stdout: s.stdout,
            stderr: s.stderr,
            terminal: s.terminal,
            exit_status: s.exit_status,
            exited_at: s.exited_at,
        })
    }

    fn in_namespace(&self, ns: &str) -> Vec<Arc<Task>> {
        lock(&self.tasks)
            .iter()
            .filter(|t| t.ns == ns)
            .cloned()
            .collect()
    }
}

/// How many shims one List or Metrics asks at once.
const SHIM_CALLS_AT_ONCE: usize = 16;

/// `f` of every task, asked of up to [`SHIM_CALLS_AT_ONCE`] shims at a
/// time (a slow shim costs one call's timeout, not one per shim behind
/// it); answers in the order of `tasks`.
fn each_shim<T: Send>(tasks: &[Arc<Task>], f: impl Fn(&Task) -> T + Sync) -> Vec<T> {
    in_parallel(tasks, SHIM_CALLS_AT_ONCE, |t| f(t))
}

/// How many bundles recovery handles at once.
const RECOVER_AT_ONCE: usize = 8;

/// `f` of every item on up to `at_once` threads; answers in order.
fn in_parallel<I: Sync, T: Send>(
    tasks: &[I],
    at_once: usize,
    f: impl Fn(&I) -> T + Sync,
) -> Vec<T> {
    if tasks.len() <= 1 {
        return tasks.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let answers: Mutex<Vec<Option<T>>> = Mutex::new(tasks.iter().map(|_| None).collect());
    let work = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(t) = tasks.get(i) else { break };
        let a = f(t);
        lock(&answers)[i] = Some(a);
    };
    std::thread::scope(|s| {
        for _ in 1..tasks.len().min(at_once) {
            // A worker that cannot start leaves its share to the others.
            let _ = std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn_scoped(s, work);
        }
        work();
    });
    answers
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|a| a.expect("every task was asked"))
        .collect()
}

/// Ask a task's shim to leave (it stays while it holds other tasks).
fn shutdown_shim(t: &Task) {
    let _ = t.call::<_, Empty>(
        "Shutdown",
        &st::ShutdownRequest {
            id: t.id.clone(),
            now: false,
        },
        Some(Duration::from_secs(3)),
    );
}

/// A dead shim leaves its socket (named in the bundle's `address`):
/// remove it when nothing answers there.
fn remove_dead_socket(bundle: &Path) {
    let Ok(addr) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = addr.trim().trim_start_matches("unix://");
    if path.starts_with('/') && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// Remember the shim's pid in its bundle (unless the shim wrote it), and
/// its start time next to it: a pid can be reused once the shim is gone.
fn record_shim_pid(bundle: &Path, pid: u32) {
    let file = bundle.join(SHIM_PID_FILE);
    if pid != 0 && !file.exists() {
        let _ = std::fs::write(file, pid.to_string());
    }
    let start = bundle.join(SHIM_START_FILE);
    if !start.exists() {
        if let Some(t) = read_shim_pid(bundle).and_then(process_start_time) {
            let _ = std::fs::write(start, t.to_string());
        }
    }
}

fn read_shim_pid(bundle: &Path) -> Option<rustix::process::Pid> {
    let text = std::fs::read_to_string(bundle.join(SHIM_PID_FILE)).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    rustix::process::Pid::from_raw(pid).filter(|p| !p.is_init())
}

/// A process's start time (clock ticks since boot, field 22 of
/// /proc/PID/stat): with the pid, it names one process for good.
fn process_start_time(pid: rustix::process::Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).ok()?;
    // Fields after the command name's closing parenthesis start at 3.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether the shim may still run: its pid exists, is no zombie and (when
/// recorded) started when the shim did. False when the pid is unknown.
fn shim_pid_alive(bundle: &Path) -> bool {
    let Some(pid) = read_shim_pid(bundle) else {
        return false;
    };
    if rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH) || is_zombie(pid) {
        return false;
    }
    let recorded = std::fs::read_to_string(bundle.join(SHIM_START_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    match (recorded, process_start_time(pid)) {
        (Some(then), Some(now)) => then == now,
        _ => true,
    }
}

/// Why a shim's socket could not be dialled, when that says something.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unreachable {
    /// The socket file is there and nothing listens: the shim is gone.
    Refused,
    /// No socket file (or a connection closed at once): only the pid can
    /// tell whether the shim lives.
    Unclear,
}

/// What a failed dial of a shim's socket says (the errno itself is
/// wrapped away; its kind stays).
fn unreachable_because(kind: std::io::ErrorKind) -> Option<Unreachable> {
    match kind {
        std::io::ErrorKind::ConnectionRefused => Some(Unreachable::Refused),
        std::io::ErrorKind::NotFound => Some(Unreachable::Unclear),
        _ => None,
    }
}

/// Whether a task's shim is gone for good, as recovery decides it:
/// nothing listens on its socket, or the socket is missing and its pid is
/// dead (or unknown). A shim that merely broke a connection lives.
fn shim_gone(t: &Task) -> bool {
    let Err(e) = ttrpc::connect_stream(&t.address) else {
        return false;
    };
    match unreachable_because(e.kind()) {
        Some(Unreachable::Refused) => true,
        Some(Unreachable::Unclear) => !shim_pid_alive(&t.bundle),
        None => false,
    }
}

/// A shim killed while its reaper (a subreaper) has not waited for it.
fn is_zombie(pid: rustix::process::Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())) else {
        return false;
    };
    // The state follows the command name's closing parenthesis.
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// Whether `path` is a mount point: on another device than its parent, or
/// listed in mountinfo (a bind mount of the same filesystem).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(m), Some(Ok(pm))) = (
        std::fs::symlink_metadata(path),
        path.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    if m.dev() != pm.dev() {
        return true;
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == want)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Name prefix of a deleted task's bundle on its way out (ids never start
/// with a dot).
const RETIRED_PREFIX: &str = ".retired-";

impl Tasks {
    /// After the shim answered Delete: the bundle is renamed out of the way
    /// at once (the id is free again for Containers.Delete and a new task),
    /// and the shim's Shutdown and the bundle's removal happen on a
    /// thread, off the request path. Shutdown was most of a `ctr run
    /// --rm`'s time: the shim answers it once its detached rootfs overlay
    /// is released, and that release syncs the host's disk (up to its
    /// 2 s bound under load); the removal is a dozen metadata writes. A
    /// daemon that dies first leaves the renamed bundle (with the shim
    /// still in it, maybe) to [`Tasks::recover`]. A rootfs still mounted
    /// takes the careful path, here and now ([`remove_bundle`]).
    fn retire(&self, t: Arc<Task>) -> Result<()> {
        let retired = match (t.bundle.parent(), t.bundle.file_name()) {
            (Some(parent), Some(name)) if !is_mount_point(&t.bundle.join("rootfs")) => {
                parent.join(format!(
                    "{RETIRED_PREFIX}{}-{}",
                    name.to_string_lossy(),
                    crate::record::now_nanos()
                ))
            }
            _ => {
                self.shutdown_shim(&t);
                return remove_bundle(&t.bundle);
            }
        };
        if std::fs::rename(&t.bundle, &retired).is_err() {
            self.shutdown_shim(&t);
            return remove_bundle(&t.bundle);
        }
        super::faults::point("task-bundle-retired");
        let job = move || {
            shutdown_shim(&t);
            if let Err(e) = remove_bundle(&retired) {
                crate::log::warn!("{e}");
            }
        };
        if let Err(job) = self.background.spawn("retire-task", job) {
            job();
        }
        Ok(())
    }
}

/// Stop a retired bundle's shim if it still runs (a daemon died between
/// [`Tasks::retire`]'s rename and the shim's Shutdown). Its task was
/// deleted: nothing of it is left to lose, so it is killed. Only a pid
/// whose recorded start time matches is taken for it: a retired bundle
/// may be half removed (its start time gone) and its shim long dead, the
/// pid since reused by another process. Not through the shim's socket:
/// a new task of the same id has a shim at the same address.
fn stop_retired_shim(bundle: &Path) {
    let recorded = std::fs::read_to_string(bundle.join(SHIM_START_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let Some(pid) = read_shim_pid(bundle) else {
        return;
    };
    if recorded.is_none() || is_zombie(pid) || process_start_time(pid) != recorded {
        return;
    }
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    // Its socket goes once it is dead (see remove_dead_socket).
    for _ in 0..100 {
        if rustix::process::test_kill_process(pid).is_err() || is_zombie(pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    remove_dead_socket(bundle);
}

/// Work requests leave to threads, counted so the daemon can wait for it
/// before it exits.
#[derive(Default)]
struct Background {
    running: Mutex<usize>,
    idle: std::sync::Condvar,
}

/// Counts one job out when it ends, even by a panic.
struct Running(Arc<Background>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut n = lock(&self.0.running);
        *n -= 1;
        if *n == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl Background {
    /// Run `job` on a thread of its own; the job back when no thread can
    /// be made (the caller runs it then).
    fn spawn<F: FnOnce() + Send + 'static>(
        self: &Arc<Self>,
        name: &str,
        job: F,
    ) -> std::result::Result<(), F> {
        *lock(&self.running) += 1;
        let running = Running(self.clone());
        let slot = Arc::new(Mutex::new(Some(job)));
        let theirs = slot.clone();
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .stack_size(256 << 10)
            .spawn(move || {
                let _running = running;
                if let Some(job) = lock(&theirs).take() {
                    job();
                }
            });
        match spawned {
            Ok(_) => Ok(()),
            // The closure (and `running` with it) is gone: counted out.
            Err(_) => Err(lock(&slot).take().expect("the thread never ran")),
        }
    }

    /// Wait up to `limit` for every job to end; whether they did.
    fn wait(&self, limit: Duration) -> bool {
        let n = lock(&self.running);
        let (n, _) = self
            .idle
            .wait_timeout_while(n, limit, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *n == 0
    }
}

fn remove_bundle(bundle: &Path) -> Result<()> {
    let rootfs = bundle.join("rootfs");
    // The shim unmounts the rootfs on Delete; a shim that died may not have.
    // Stacked mounts each need their own (lazy) unmount.
    for _ in 0..8 {
        if !is_mount_point(&rootfs) || crate::snapshot::mount::unmount(&rootfs).is_err() {
            break;
        }
    }
    // Removing through a mount would delete the container's files (the
    // overlay's upper dir or a snapshot): keep the bundle instead.
    if is_mount_point(&rootfs) {
        return Err(crate::err_kind!(
            FailedPrecondition,
            "remove bundle {}: rootfs is still mounted",
            bundle.display()
        ));
    }
    match std::fs::remove_dir_all(bundle) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::from(e).wrap(format!("remove bundle {}", bundle.display()))),
    }
}

/// `containerd.services.tasks.v1.Tasks`.
pub struct TaskService(pub Arc<Tasks>);

impl Handler for TaskService {
    fn call(
        &self,
        ctx: &Ctx,
        method: &str,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, Status> {
        let ns = ctx.namespace.as_str();
        let tasks = &self.0;
        match method {
            "Create" => unary(payload, |r: pt::CreateTaskRequest| {
                if r.container_id.is_empty() {
                    return Err(missing("container_id"));
                }
                tasks.create(ns, r)
            }),
            "Start" => unary(payload, |r: pt::StartRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                let s: st::StartResponse = t.call(
                    "Start",
                    &st::StartRequest {
                        id: r.container_id,
                        exec_id: r.exec_id,
                    },
                    None,
                )?;
                Ok(pt::StartResponse { pid: s.pid })
            }),
            "Delete" => unary(payload, |r: pt::DeleteTaskRequest| {
                tasks.delete(ns, &r.container_id)
            }),
            "DeleteProcess" => unary(payload, |r: pt::DeleteProcessRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                let d: st::DeleteResponse = t.call(
                    "Delete",
                    &st::DeleteRequest {
                        id: r.container_id,
                        exec_id: r.exec_id.clone(),
                    },
                    SHORT,
                )?;
                Ok(pt::DeleteResponse {
                    id: r.exec_id,
                    pid: d.pid,
                    exit_status: d.exit_status,
                    exited_at: d.exited_at,
                })
            }),
            "Get" => unary(payload, |r: pt::GetRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                Ok(pt::GetResponse {
                    process: Some(tasks.process(&t, &r.exec_id)?),
                })
            }),
            "List" => unary(payload, |_: pt::ListTasksRequest| {
                let out = each_shim(&tasks.in_namespace(ns), |t| {
                    tasks.process(t, "").unwrap_or_else(|_| pt::Process {
                        // A shim that does not answer still has a task.
                        container_id: t.id.clone(),
                        id: t.id.clone(),
                        status: pt::status::UNKNOWN,
                        ..Default::default()
                    })
                });
                Ok(pt::ListTasksResponse { tasks: out })
            }),
            "Kill" => unary(payload, |r: pt::KillRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                t.call::<_, Empty>(
                    "Kill",
                    &st::KillRequest {
                        id: r.container_id,
                        exec_id: r.exec_id,
                        signal: r.signal,
                        all: r.all,
                    },
                    SHORT,
                )
            }),
            "Exec" => unary(payload, |r: pt::ExecProcessRequest| {
                if r.exec_id.is_empty() {
                    return Err(missing("exec_id"));
                }
                let t = tasks.find(ns, &r.container_id)?;
                t.call::<_, Empty>(
                    "Exec",
                    &st::ExecProcessRequest {
                        id: r.container_id,
                        exec_id: r.exec_id,
                        terminal: r.terminal,
                        stdin: r.stdin,
                        stdout: r.stdout,
                        stderr: r.stderr,
                        spec: r.spec,
                    },
                    SHORT,
                )
            }),
            "ResizePty" => unary(payload, |r: pt::ResizePtyRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                t.call::<_, Empty>(
                    "ResizePty",
                    &st::ResizePtyRequest {
                        id: r.container_id,
                        exec_id: r.exec_id,
                        width: r.width,
                        height: r.height,
                    },
                    SHORT,
                )
            }),
            "CloseIO" => unary(payload, |r: pt::CloseIoRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                t.call::<_, Empty>(
                    "CloseIO",
                    &st::CloseIoRequest {
                        id: r.container_id,
                        exec_id: r.exec_id,
                        stdin: r.stdin,
                    },
                    SHORT,
                )
            }),
            "Pause" => unary(payload, |r: pt::PauseTaskRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                t.call::<_, Empty>("Pause", &st::PauseRequest { id: r.container_id }, SHORT)
            }),
            "Resume" => unary(payload, |r: pt::ResumeTaskRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                t.call::<_, Empty>("Resume", &st::ResumeRequest { id: r.container_id }, SHORT)
            }),
            "ListPids" => unary(payload, |r: pt::ListPidsRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                let p: st::PidsResponse =
                    t.call("Pids", &st::PidsRequest { id: r.container_id }, SHORT)?;
                Ok(pt::ListPidsResponse {
                    processes: p
                        .processes
                        .into_iter()
                        .map(|p| pt::ProcessInfo {
                            pid: p.pid,
                            info: p.info,
                        })
                        .collect(),
                })
            }),
            "Update" => unary(payload, |r: pt::UpdateTaskRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                t.call::<_, Empty>(
                    "Update",
                    &st::UpdateTaskRequest {
                        id: r.container_id,
                        resources: r.resources,
                        annotations: r.annotations,
                    },
                    SHORT,
                )
            }),
            "Metrics" => unary(payload, |r: pt::MetricsRequest| {
                let filters = super::services::parse_filters(&r.filters, 1)?;
                let wanted: Vec<Arc<Task>> = tasks
                    .in_namespace(ns)
                    .into_iter()
                    .filter(|t| {
                        // containerd 1.6 filters on no `runtime` (its
                        // line is commented out).
                        let fields = [("id", &*t.id), ("namespace", &*t.ns)];
                        filters.matches(&crate::filter::Record {
                            fields: &fields,
                            labels: &Default::default(),
                        })
                    })
                    .collect();
                let stats = each_shim(&wanted, |t| {
                    t.call::<_, st::StatsResponse>(
                        "Stats",
                        &st::StatsRequest { id: t.id.clone() },
                        SHORT,
                    )
                });
                let mut metrics = Vec::new();
                for (t, s) in wanted.iter().zip(stats) {
                    match s {
                        Ok(s) => metrics.push(pt::Metric {
                            timestamp: Some(Timestamp::now()),
                            id: t.id.clone(),
                            data: s.stats,
                        }),
                        // One shim that does not answer does not hide the
                        // others' metrics (containerd skips it too).
                        Err(e) => crate::log::warn!("metrics of task {ns}/{}: {e}", t.id),
                    }
                }
                Ok(pt::MetricsResponse { metrics })
            }),
            "Wait" => unary(payload, |r: pt::WaitRequest| {
                let t = tasks.find(ns, &r.container_id)?;
                let w: st::WaitResponse = t.call(
                    "Wait",
                    &st::WaitRequest {
                        id: r.container_id,
                        exec_id: r.exec_id,
                    },
                    None,
                )?;
                Ok(pt::WaitResponse {
                    exit_status: w.exit_status,
                    exited_at: w.exited_at,
                })
            }),
            _ => Err(unknown_method(method)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_mount_point, unescape_mountinfo};
    use std::path::Path;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape_mountinfo(r"/plain\04"), r"/plain\04");
    }

    #[test]
    fn mount_points_are_told_from_plain_dirs() {
        assert!(is_mount_point(Path::new("/proc")));
        let dir = std::env::temp_dir().join(format!("skiff-mp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_mount_point(&dir));
        std::fs::remove_dir(&dir).unwrap();
    }
}
