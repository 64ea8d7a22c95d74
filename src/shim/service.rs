//! containerd's task service (`containerd.task.v2.Task`, and the same under
//! `containerd.task.v3.Task`): the handlers, and what happens when a
//! process exits. Errors carry the kind containerd branches on: NotFound
//! for an unknown container or exec id, AlreadyExists for a duplicate,
//! FailedPrecondition for the wrong state.

use super::container::{launch, own_pid_namespace, runtime_for, Container};
use super::events::Publisher;
use super::log::Log;
use super::process::{Ended, Process, State, Status};
use super::reaper::{Mark, Reaped, Reaper};
use super::rootfs::{self, RootfsMount};
use super::runtime::{CreateArgs, ExecArgs};
use super::stdio::StdioSpec;
use crate::error::{Context, Result};
use crate::proto::events as ev;
use crate::proto::options::ProcessDetails;
use crate::proto::task::{self as pb, status};
use crate::proto::types::{Empty, Timestamp};
use crate::sys::process::Pid;
use crate::ttrpc::{unary, Code, RequestContext, ShutdownHandle, Status as RpcStatus};
use crate::{err_kind, Kind};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long an exit waits for the process's output to be copied before it
/// is reported anyway (a process that escaped the container may hold the
/// pipe; the copy goes on after the report).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The shim's state, shared by all handlers.
pub struct Shim {
    namespace: String,
    /// Our own socket file.
    socket: Arc<super::address::SocketFile>,
    reaper: Reaper,
    events: Publisher,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    shutdown: Mutex<Option<ShutdownHandle>>,
    /// Ids whose Create is under way.
    creating: Mutex<std::collections::HashSet<String>>,
    /// Set (under the containers' lock) when Shutdown decided to leave:
    /// from then on a Create is refused, so containerd starts a new shim
    /// instead of handing the container to this dying one.
    closing: AtomicBool,
    log: Log,
}

/// A container id taken for a Create; given back when dropped.
struct Reservation<'a> {
    shim: &'a Shim,
    id: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.shim
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Shim {
    pub fn new(
        namespace: &str,
        socket: Arc<super::address::SocketFile>,
        reaper: Reaper,
        events: Publisher,
        log: Log,
    ) -> Arc<Shim> {
        Arc::new(Shim {
            namespace: namespace.to_string(),
            socket,
            reaper,
            events,
            containers: Mutex::new(HashMap::new()),
            shutdown: Mutex::new(None),
            creating: Mutex::new(Default::default()),
            closing: AtomicBool::new(false),
            log,
        })
    }

    /// What stops the server when the shim is done.
    pub fn set_shutdown(&self, h: ShutdownHandle) {
        *self.shutdown.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| err_kind!(NotFound, "container {id:?} does not exist in this shim"))
    }

    /// Take a container id for the time of its Create.
    fn reserve(&self, id: &str) -> Result<Reservation<'_>> {
        let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        let mut creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        if self.closing.load(Ordering::SeqCst) {
            return Err(err_kind!(
                FailedPrecondition,
                "create {id}: this shim is shutting down"
            ));
        }
        if containers.contains_key(id) || creating.contains(id) {
            return Err(err_kind!(
                AlreadyExists,
                "container {id:?} already exists in this shim"
            ));
        }
        creating.insert(id.to_string());
        Ok(Reservation {
            shim: self,
            id: id.to_string(),
        })
    }

    fn publish<M: prost::Message>(&self, topic: &str, type_name: &str, m: &M) {
        self.events.publish(topic, ev::any(type_name, m));
    }

    // ---- handlers ----

    fn create(self: &Arc<Self>, r: pb::CreateTaskRequest) -> Result<pb::CreateTaskResponse> {
        check_id("container id", &r.id)?;
        if !r.checkpoint.is_empty() {
            return Err(err_kind!(
                Unimplemented,
                "create {}: restoring a checkpoint is not supported",
                r.id
            ));
        }
        // The id is taken from now on, so a second Create of it (or a
        // Shutdown) cannot slip in while the runtime works.
        let _reserved = self.reserve(&r.id)?;
        let bundle = PathBuf::from(&r.bundle);
        let opts = super::options::from_any(r.options.as_ref())?;
        opts.save(&bundle)?;
        let runtime = runtime_for(&opts, &self.namespace, &self.reaper)?;
        let mounts: Vec<RootfsMount> = r
            .rootfs
            .iter()
            .map(|m| RootfsMount {
                kind: m.r#type.clone(),
                source: m.source.clone(),
                options: m.options.clone(),
            })
            .collect();
        rootfs::mount_rootfs(&bundle, &mounts, &self.log)?;
        let stdio = StdioSpec {
            stdin: r.stdin.clone(),
            stdout: r.stdout.clone(),
            stderr: r.stderr.clone(),
            terminal: r.terminal,
        };
        let mut c = Container {
            id: r.id.clone(),
            bundle: bundle.clone(),
            runtime,
            own_pid_ns: own_pid_namespace(&bundle),
            io_uid: (opts.io_uid != 0).then_some(opts.io_uid),
            io_gid: (opts.io_gid != 0).then_some(opts.io_gid),
            rootfs_mounted: !mounts.is_empty(),
            init: Arc::new(Process::new("", stdio)),
            execs: Mutex::new(HashMap::new()),
            oom: Mutex::new(None),
            cgroup: Mutex::new(None),
        };
        let pid_file = bundle.join("init.pid");
        let since = self.reaper.mark();
        let made = launch(
            &c,
            &c.init.stdio,
            &self.reaper,
            &self.namespace,
            |stdio, console| {
                c.runtime.create(
                    &CreateArgs {
                        id: &r.id,
                        bundle: &bundle,
                        pid_file: &pid_file,
                        console_socket: console,
                        no_pivot: opts.no_pivot_root,
                        no_new_keyring: opts.no_new_keyring,
                    },
                    stdio,
                )
            },
        );
        let (pid, io) = match made {
            Ok(x) => x,
            Err(e) => {
                let _ = c.runtime.delete(&r.id, true, &c.log());
                if c.rootfs_mounted {
                    rootfs::take_down_rootfs(&bundle, rootfs::Unmount::Now, &self.log);
                    c.rootfs_mounted = false;
                }
                return Err(e.wrap(format!("create container {}", r.id)));
            }
        };
        {
            let mut st = c.init.lock();
            st.pid = pid;
            st.io = Some(io);
        }
        let cgroup = super::oom::cgroup_of(&r.id, pid);
        if let Some(cg) = cgroup.clone() {
            let events = self.events.clone();
            let cid = r.id.clone();
            let watch = super::oom::watch(cg, move || {
                let oom = ev::TaskOom {
                    container_id: cid.clone(),
                };
                events.publish(ev::topic::TASK_OOM, ev::any(ev::TASK_OOM, &oom))
            });
            *c.oom.lock().unwrap_or_else(|e| e.into_inner()) = watch;
        }
        *c.cgroup.lock().unwrap_or_else(|e| e.into_inner()) = cgroup;
        let c = Arc::new(c);
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r.id.clone(), c.clone());
        self.publish(
            ev::topic::TASK_CREATE,
            ev::TASK_CREATE,
            &ev::TaskCreate {
                container_id: r.id.clone(),
                bundle: r.bundle.clone(),
                rootfs: r.rootfs.clone(),
                io: Some(ev::TaskIo {
                    stdin: r.stdin.clone(),
                    stdout: r.stdout.clone(),
                    stderr: r.stderr.clone(),
                    terminal: r.terminal,
                }),
                checkpoint: r.checkpoint.clone(),
                pid: pid as u32,
            },
        );
        // The init waits for `start`; its exit (a kill before start
        // included) is watched from now on.
        self.watch_exit(&c, &c.init, pid, since);
        Ok(pb::CreateTaskResponse { pid: pid as u32 })
    }

    fn start(self: &Arc<Self>, r: pb::StartRequest) -> Result<pb::StartResponse> {
        let c = self.container(&r.id)?;
        if r.exec_id.is_empty() {
            // Hold the record across `start`, so that the exit of a short
            // process is reported after its start, never before.
            let mut st = c.init.lock();
            if st.status != Status::Created || st.ended.is_some() {
                return Err(err_kind!(
                    FailedPrecondition,
                    "container {} is not in the created state",
                    c.id
                ));
            }
            c.runtime.start(&c.id, &c.log())?;
            st.status = Status::Running;
            let pid = st.pid;
            self.publish(
                ev::topic::TASK_START,
                ev::TASK_START,
                &ev::TaskStart {
                    container_id: c.id.clone(),
                    pid: pid as u32,
                },
            );
            return Ok(pb::StartResponse { pid: pid as u32 });
        }
        let p = c.exec(&r.exec_id)?;
        if c.init.lock().ended.is_some() {
            return Err(err_kind!(
                FailedPrecondition,
                "container {} has stopped",
                c.id
            ));
        }
        let spec = {
            let mut st = p.lock();
            match (st.status, st.exec_spec.take()) {
                (Status::Created, Some(spec)) => spec,
                _ => {
                    return Err(err_kind!(
                        FailedPrecondition,
                        "exec {} was started already",
                        r.exec_id
                    ))
                }
            }
        };
        let process_json = c.bundle.join(format!(".exec-{}.json", r.exec_id));
        let pid_file = c.bundle.join(format!(".exec-{}.pid", r.exec_id));
        let since = self.reaper.mark();
        std::fs::write(&process_json, &spec)
            .with_context(|| format!("write {}", process_json.display()))?;
        let made = launch(
            &c,
            &p.stdio,
            &self.reaper,
            &self.namespace,
            |stdio, console| {
                c.runtime.exec(
                    &ExecArgs {
                        id: &c.id,
                        process: &process_json,
                        pid_file: &pid_file,
                        console_socket: console,
                    },
                    &c.log(),
                    stdio,
                )
            },
        );
        let _ = std::fs::remove_file(&process_json);
        let _ = std::fs::remove_file(&pid_file);
        let (pid, io) = match made {
            Ok(x) => x,
            Err(e) => {
                // It never ran: it ends here, with runc's exit status for
                // a process that could not start.
                let mut st = p.lock();
                st.status = Status::Stopped;
                st.ended = Some(Ended {
                    status: 255,
                    at: std::time::SystemTime::now(),
                });
                drop(st);
                p.notify();
                return Err(e.wrap(format!("exec {} in container {}", r.exec_id, c.id)));
            }
        };
        {
            let mut st = p.lock();
            st.pid = pid;
            st.io = Some(io);
            st.status = Status::Running;
            p.notify();
            self.publish(
                ev::topic::TASK_EXEC_STARTED,
                ev::TASK_EXEC_STARTED,
                &ev::TaskExecStarted {
                    container_id: c.id.clone(),
                    exec_id: r.exec_id.clone(),
                    pid: pid as u32,
                },
            );
        }
        // Watched after the start event went out, so the exit comes after
        // it (the reaper keeps an exit that came first).
        self.watch_exit(&c, &p, pid, since);
        Ok(pb::StartResponse { pid: pid as u32 })
    }

    /// Report the exit of `pid` when it comes.
    fn watch_exit(self: &Arc<Self>, c: &Arc<Container>, p: &Arc<Process>, pid: Pid, since: Mark) {
        let (shim, c, p) = (self.clone(), c.clone(), p.clone());
        self.reaper.watch(pid, since, move |reaped| {
            p.reaped.store(true, Ordering::SeqCst);
            // Off the reaper's thread: what follows runs the runtime (whose
            // exit the reaper must see) and waits for the output.
            let (s2, c2, p2) = (shim.clone(), c.clone(), p.clone());
            let spawned = std::thread::Builder::new()
                .name("exit".into())
                .stack_size(super::SMALL_STACK)
                .spawn(move || {
                    s2.log.debug(&format!("pid {pid} exited"));
                    s2.end_the_rest(&c2, &p2);
                    s2.record_exit(&c2, &p2, pid, reaped, &mut p2.lock());
                    s2.log.debug(&format!("pid {pid}: exit reported"));
                });
            if spawned.is_err() {
                // Out of threads: record the exit right here, without the
                // steps that need the runtime or wait for output, unless a
                // handler holds the record (it may be waiting for us).
                shim.log
                    .error(&format!("exit of pid {pid}: no thread to finish it"));
                if let Some(mut st) = p.try_lock() {
                    shim.record_exit(&c, &p, pid, reaped, &mut st);
                }
            }
        });
    }

    /// Before an exit is reported: what is left of a container without a
    /// pid namespace of its own is killed, the output is drained.
    fn end_the_rest(&self, c: &Container, p: &Process) {
        if p.is_init() && !c.own_pid_ns {
            // Nothing else ends the rest of the container's processes. The
            // shim knows the container's cgroup, so it kills them itself:
            // the same for every runtime, and no runtime process to start.
            // A few rounds catch what was forked meanwhile.
            if let Some(cg) = c.cgroup.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                for _ in 0..10 {
                    let left = cg.procs();
                    if left.is_empty() {
                        break;
                    }
                    for pid in left {
                        let _ = crate::sys::process::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        let drain = p.lock().io.as_ref().map(|io| io.drain());
        if let Some(d) = drain {
            if !d.wait(DRAIN_TIMEOUT) {
                self.log.warn(&format!(
                    "{} {}: output not drained within {DRAIN_TIMEOUT:?}, exit reported anyway",
                    c.id, p.exec_id
                ));
            }
        }
    }

    /// Mark the process stopped, tell containerd, wake the waiters.
    fn record_exit(&self, c: &Container, p: &Process, pid: Pid, reaped: Reaped, st: &mut State) {
        let ended = Ended {
            status: reaped.exit.status() as u32,
            at: reaped.at,
        };
        st.status = Status::Stopped;
        st.ended = Some(ended);
        self.publish(
            ev::topic::TASK_EXIT,
            ev::TASK_EXIT,
            &ev::TaskExit {
                container_id: c.id.clone(),
                id: if p.is_init() {
                    c.id.clone()
                } else {
                    p.exec_id.clone()
                },
                pid: pid as u32,
                exit_status: ended.status,
                exited_at: Some(Timestamp::from(ended.at)),
            },
        );
        p.notify();
    }

    fn delete(&self, r: pb::DeleteRequest) -> Result<pb::DeleteResponse> {
        let c = self.container(&r.id)?;
        if !r.exec_id.is_empty() {
            let p = c.exec(&r.exec_id)?;
            let (pid, ended) = {
                let st = p.lock();
                if matches!(st.status, Status::Running | Status::Paused) {
                    return Err(err_kind!(
                        FailedPrecondition,
                        "exec {} is still running: kill it first",
                        r.exec_id
                    ));
                }
                (st.pid, st.ended)
            };
            c.execs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&r.exec_id);
            let resp = delete_response(pid, ended);
            if ended.is_none() {
                // Deleted before it ran: it ends here, so a Wait on it answers.
                let mut st = p.lock();
                st.status = Status::Stopped;
                st.ended.get_or_insert(Ended {
                    status: resp.exit_status,
                    at: std::time::SystemTime::now(),
                });
                drop(st);
                p.notify();
            }
            return Ok(resp);
        }
        let (status, pid) = {
            let st = c.init.lock();
            (st.status, st.pid)
        };
        if matches!(status, Status::Running | Status::Paused) {
            return Err(err_kind!(
                FailedPrecondition,
                "container {} is still running: kill it first",
                c.id
            ));
        }
        // Removes the runtime's state and cgroup; kills an init never started.
        let deleted = if status == Status::Stopped && c.init.reaped.load(Ordering::SeqCst) {
            c.runtime.delete_reaped(&c.id, &c.log())
        } else {
            c.runtime.delete(&c.id, true, &c.log())
        };
        match deleted {
            Err(e) if e.kind() != Kind::NotFound => {
                return Err(e.wrap(format!("delete container {}", c.id)))
            }
            _ => {}
        }
        let ended = if status == Status::Created {
            // The kill above ends it; its exit comes through the reaper.
            wait_ended(&c.init, Duration::from_secs(10))
        } else {
            c.init.lock().ended
        };
        c.oom.lock().unwrap_or_else(|e| e.into_inner()).take();
        if c.rootfs_mounted {
            // The release thread is not waited for, not even by Shutdown:
            // see `Shim::exit`.
            drop(rootfs::take_down_rootfs(
                &c.bundle,
                rootfs::Unmount::DeferSync,
                &self.log,
            ));
        }
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&c.id);
        let _ = std::fs::remove_file(c.bundle.join("init.pid"));
        let resp = delete_response(pid, ended);
        self.publish(
            ev::topic::TASK_DELETE,
            ev::TASK_DELETE,
            &ev::TaskDelete {
                container_id: c.id.clone(),
                pid: resp.pid,
                exit_status: resp.exit_status,
                exited_at: resp.exited_at,
                id: c.id.clone(),
            },
        );
        Ok(resp)
    }

    fn state(&self, r: pb::StateRequest) -> Result<pb::StateResponse> {
        let c = self.container(&r.id)?;
        let p = c.process(&r.exec_id)?;
        let st = p.lock();
        let status = match (st.status, st.ended) {
            (_, Some(_)) | (Status::Stopped, _) => status::STOPPED,
            (Status::Created, _) => status::CREATED,
            (Status::Running, _) => status::RUNNING,
            (Status::Paused, _) => status::PAUSED,
        };
        Ok(pb::StateResponse {
            id: if p.is_init() {
                c.id.clone()
            } else {
                p.exec_id.clone()
            },
            bundle: c.bundle.display().to_string(),
            pid: st.pid as u32,
            status,
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: st.ended.map(|e| e.status).unwrap_or(0),
            exited_at: st.ended.map(|e| Timestamp::from(e.at)),
            exec_id: p.exec_id.clone(),
        })
    }

    fn kill(&self, r: pb::KillRequest) -> Result<Empty> {
        /// How long a Kill waits for an exec's start under way.
        const EXEC_START_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
        let c = self.container(&r.id)?;
        let p = c.process(&r.exec_id)?;
        let (pid, ended, status) = {
            let st = p.settled(EXEC_START_WAIT);
            (st.pid, st.ended, st.status)
        };
        let finished = || err_kind!(NotFound, "process already finished");
        if ended.is_some() || p.reaped.load(Ordering::SeqCst) {
            return Err(finished());
        }
        let sig = r.signal as i32;
        if p.is_init() {
            match c.runtime.kill(&c.id, sig, r.all, &c.log()) {
                // Gone between our check and the runtime's (as the runc
                // shim, containerd is told NotFound).
                Err(e)
                    if e.message().contains("not running") || p.reaped.load(Ordering::SeqCst) =>
                {
                    return Err(finished())
                }
                other => other?,
            }
        } else {
            if status == Status::Created || pid <= 0 {
                return Err(err_kind!(
                    FailedPrecondition,
                    "exec {} has not been started",
                    r.exec_id
                ));
            }
            match crate::sys::process::kill(pid, sig) {
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(finished()),
                other => other.with_context(|| format!("kill exec {} (pid {pid})", r.exec_id))?,
            }
        }
        Ok(Empty {})
    }

    fn exec(&self, r: pb::ExecProcessRequest) -> Result<Empty> {
        check_id("exec id", &r.exec_id)?;
        let c = self.container(&r.id)?;
        if c.init.lock().ended.is_some() {
            return Err(err_kind!(
                FailedPrecondition,
                "container {} has stopped",
                c.id
            ));
        }
        let spec = r
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| err_kind!(InvalidArgument, "exec {}: no process spec", r.exec_id))?;
        {
            let mut execs = c.execs.lock().unwrap_or_else(|e| e.into_inner());
            if execs.contains_key(&r.exec_id) {
                return Err(err_kind!(
                    AlreadyExists,
                    "exec {:?} already exists in container {}",
                    r.exec_id,
                    c.id
                ));
            }
            let p = Process::new(
                &r.exec_id,
                StdioSpec {
                    stdin: r.stdin.clone(),
                    stdout: r.stdout.clone(),
                    stderr: r.stderr.clone(),
                    terminal: r.terminal,
                },
            );
            p.lock().exec_spec = Some(spec);
            execs.insert(r.exec_id.clone(), Arc::new(p));
        }
        self.publish(
            ev::topic::TASK_EXEC_ADDED,
            ev::TASK_EXEC_ADDED,
            &ev::TaskExecAdded {
                container_id: c.id.clone(),
                exec_id: r.exec_id.clone(),
            },
        );
        Ok(Empty {})
    }

    fn pids(&self, r: pb::PidsRequest) -> Result<pb::PidsResponse> {
        let c = self.container(&r.id)?;
        let pids = c.runtime.pids(&c.id, &c.log())?;
        let exec_pids: HashMap<Pid, String> = c
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|p| (p.lock().pid, p.exec_id.clone()))
            .collect();
        let processes = pids
            .into_iter()
            .map(|pid| pb::ProcessInfo {
                pid: pid as u32,
                info: exec_pids.get(&pid).map(|exec_id| {
                    ev::any(
                        "containerd.runc.v1.ProcessDetails",
                        &ProcessDetails {
                            exec_id: exec_id.clone(),
                        },
                    )
                }),
            })
            .collect();
        Ok(pb::PidsResponse { processes })
    }

    fn pause(&self, id: &str) -> Result<Empty> {
        let c = self.container(id)?;
        let mut st = c.init.lock();
        if st.status != Status::Running || st.ended.is_some() {
            return Err(err_kind!(
                FailedPrecondition,
                "container {id} is not running"
            ));
        }
        c.runtime.pause(id, &c.log())?;
        st.status = Status::Paused;
        self.publish(
            ev::topic::TASK_PAUSED,
            ev::TASK_PAUSED,
            &ev::TaskPaused {
                container_id: id.to_string(),
            },
        );
        Ok(Empty {})
    }

    fn resume(&self, id: &str) -> Result<Empty> {
        let c = self.container(id)?;
        let mut st = c.init.lock();
        if st.status != Status::Paused {
            return Err(err_kind!(
                FailedPrecondition,
                "container {id} is not paused"
            ));
        }
        c.runtime.resume(id, &c.log())?;
        if st.ended.is_none() {
            st.status = Status::Running;
        }
        self.publish(
            ev::topic::TASK_RESUMED,
            ev::TASK_RESUMED,
            &ev::TaskResumed {
                container_id: id.to_string(),
            },
        );
        Ok(Empty {})
    }

    fn close_io(&self, r: pb::CloseIoRequest) -> Result<Empty> {
        let c = self.container(&r.id)?;
        let p = c.process(&r.exec_id)?;
        if r.stdin {
            if let Some(io) = p.lock().io.as_ref() {
                io.close_stdin();
            }
        }
        Ok(Empty {})
    }

    fn resize_pty(&self, r: pb::ResizePtyRequest) -> Result<Empty> {
        let c = self.container(&r.id)?;
        let p = c.process(&r.exec_id)?;
        let st = p.lock();
        match st.io.as_ref() {
            Some(io) => io.resize(r.width, r.height)?,
            None => return Err(err_kind!(FailedPrecondition, "process has no terminal")),
        }
        Ok(Empty {})
    }

    fn update(&self, r: pb::UpdateTaskRequest) -> Result<Empty> {
        let c = self.container(&r.id)?;
        let res = r
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .ok_or_else(|| err_kind!(InvalidArgument, "update {}: no resources", r.id))?;
        c.runtime.update(&c.id, &res, &c.log())?;
        Ok(Empty {})
    }

    fn wait(&self, r: pb::WaitRequest, ctx: &RequestContext) -> Result<pb::WaitResponse> {
        let c = self.container(&r.id)?;
        let p = c.process(&r.exec_id)?;
        drop(c);
        let Some(ended) = p.wait(|| ctx.caller_gone()) else {
            // Nobody reads this answer; the thread just ends.
            return Err(crate::err!("wait {}: the caller is gone", r.id));
        };
        Ok(pb::WaitResponse {
            exit_status: ended.status,
            exited_at: Some(Timestamp::from(ended.at)),
        })
    }

    fn stats(&self, r: pb::StatsRequest) -> Result<pb::StatsResponse> {
        let c = self.container(&r.id)?;
        let cgroup = c.cgroup.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(cg) = cgroup else {
            return Err(crate::err_kind!(
                NotFound,
                "stats of {}: the container has no cgroup of its own",
                c.id
            ));
        };
        let metrics = super::metrics::from_cgroup(&c.id, &cg)?;
        Ok(pb::StatsResponse {
            stats: Some(metrics),
        })
    }

    fn connect(&self, r: pb::ConnectRequest) -> Result<pb::ConnectResponse> {
        let task_pid = self
            .container(&r.id)
            .map(|c| c.init.lock().pid as u32)
            .unwrap_or(0);
        Ok(pb::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: String::new(),
        })
    }

    fn shutdown(&self, r: pb::ShutdownRequest) -> Result<Empty> {
        let empty = {
            let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
            let creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
            let empty = containers.is_empty() && creating.is_empty();
            if empty || r.now {
                self.closing.store(true, Ordering::SeqCst);
            }
            empty
        };
        if !empty && !r.now {
            return Ok(Empty {});
        }
        self.exit();
        Ok(Empty {})
    }

    /// Leave: remove the socket (a `start` from now on makes a new shim),
    /// send what is queued, stop serving. Rootfs overlays still being
    /// released (written back: 3 ms to seconds, see `take_down_rootfs`)
    /// are not waited for: Shutdown's answer is on the path of every `ctr
    /// run --rm`, and nobody needs the write-back first. The server closes
    /// containerd's connections itself, and our exit finishes the release
    /// in the kernel (the process is gone when it is done).
    fn exit(&self) {
        self.socket.remove();
        self.events.flush(Duration::from_secs(2));
        if let Some(h) = self
            .shutdown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.shutdown();
        }
    }
}

fn delete_response(pid: Pid, ended: Option<Ended>) -> pb::DeleteResponse {
    let ended = ended.unwrap_or(Ended {
        status: 128 + libc::SIGKILL as u32,
        at: std::time::SystemTime::now(),
    });
    pb::DeleteResponse {
        pid: pid as u32,
        exit_status: ended.status,
        exited_at: Some(Timestamp::from(ended.at)),
    }
}

fn wait_ended(p: &Process, timeout: Duration) -> Option<Ended> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(e) = p.lock().ended {
            return Some(e);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An id that is safe in a file name.
fn check_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.contains('/') || id.contains('\0') || id == "." || id == ".." {
        return Err(err_kind!(InvalidArgument, "{what} {id:?} is not valid"));
    }
    Ok(())
}

/// The task service, as ttrpc calls it.
pub struct TaskService(pub Arc<Shim>);

fn rpc<T>(r: Result<T>) -> Result<T, RpcStatus> {
    r.map_err(RpcStatus::from)
}

impl crate::ttrpc::Service for TaskService {
    fn call(
        &self,
        ctx: &RequestContext,
        method: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, RpcStatus> {
        let began = std::time::Instant::now();
        let answer = self.dispatch(ctx, method, payload);
        match &answer {
            Err(e) => self.0.log.debug(&format!("{method}: {e}")),
            Ok(_) => self
                .0
                .log
                .debug(&format!("{method}: done in {:?}", began.elapsed())),
        }
        answer
    }
}

impl TaskService {
    fn dispatch(
        &self,
        ctx: &RequestContext,
        method: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, RpcStatus> {
        let s = &self.0;
        match method {
            "State" => unary(payload, |r| rpc(s.state(r))),
            "Create" => unary(payload, |r| rpc(s.create(r))),
            "Start" => unary(payload, |r| rpc(s.start(r))),
            "Delete" => unary(payload, |r| rpc(s.delete(r))),
            "Pids" => unary(payload, |r| rpc(s.pids(r))),
            "Pause" => unary(payload, |r: pb::PauseRequest| rpc(s.pause(&r.id))),
            "Resume" => unary(payload, |r: pb::ResumeRequest| rpc(s.resume(&r.id))),
            "Checkpoint" => unary(
                payload,
                |_: pb::CheckpointTaskRequest| -> Result<Empty, RpcStatus> {
                    Err(RpcStatus::new(
                        Code::Unimplemented,
                        "checkpoint is not supported by this shim",
                    ))
                },
            ),
            "Kill" => unary(payload, |r| rpc(s.kill(r))),
            "Exec" => unary(payload, |r| rpc(s.exec(r))),
            "ResizePty" => unary(payload, |r| rpc(s.resize_pty(r))),
            "CloseIO" => unary(payload, |r| rpc(s.close_io(r))),
            "Update" => unary(payload, |r| rpc(s.update(r))),
            "Wait" => unary(payload, |r| rpc(s.wait(r, ctx))),
            "Stats" => unary(payload, |r| rpc(s.stats(r))),
            "Connect" => unary(payload, |r| rpc(s.connect(r))),
            "Shutdown" => unary(payload, |r| rpc(s.shutdown(r))),
            _ => Err(crate::ttrpc::unknown_method(method)),
        }
    }
}
