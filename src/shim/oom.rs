//! Watching a container's memory cgroup for OOM kills, to publish
//! /tasks/oom. cgroup v1 signals each OOM through an eventfd (and once more
//! when the cgroup goes away); cgroup v2 marks memory.events, which a
//! poll(POLLPRI) sees. One small thread per container, asleep until then.

use crate::cgroups::Cgroup;
use crate::sys::process::Pid;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Stops the watcher when dropped (it notices within a second, or at once
/// on cgroup v1 when the cgroup is removed).
pub struct OomWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for OomWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The memory cgroup path of `pid`, as /proc/PID/cgroup names it (v1
/// memory hierarchy first, else the v2 one).
fn memory_cgroup_of(pid: Pid) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut v2 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return Some(path.to_string());
        }
        if controllers.is_empty() {
            v2 = Some(path.to_string());
        }
    }
    v2
}

/// The cgroup `pid` is in (the runtime puts a container at the same path
/// in every hierarchy), seen from here. None for the root cgroup.
pub fn cgroup_of(id: &str, pid: Pid) -> Option<Cgroup> {
    let path = memory_cgroup_of(pid)?;
    if path == "/" {
        return None;
    }
    Cgroup::for_container(Some(&path), id).ok()
}

/// Watch the memory cgroup `cg` (of container `id`); call `on_oom` at each
/// OOM kill. None when there is nothing to watch (no memory cgroup).
pub fn watch(cg: Cgroup, on_oom: impl Fn() + Send + 'static) -> Option<OomWatch> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    if let Some(efd) = cg.oom_eventfd() {
        std::thread::Builder::new()
            .name("oom".into())
            .stack_size(super::SMALL_STACK)
            .spawn(move || {
                while crate::sys::eventfd::wait(&efd, -1) {
                    if stop2.load(Ordering::Relaxed) || !cg.memory_dir_exists() {
                        return;
                    }
                    on_oom();
                }
            })
            .ok()?;
        return Some(OomWatch { stop });
    }
    let events = PathBuf::from(&cg.v2_dir()?.path).join("memory.events");
    let file = std::fs::File::open(&events).ok()?;
    std::thread::Builder::new()
        .name("oom".into())
        .stack_size(super::SMALL_STACK)
        .spawn(move || {
            use rustix::event::{poll, PollFd, PollFlags, Timespec};
            let mut seen = cg.oom_kills();
            let tick = Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            while !stop2.load(Ordering::Relaxed) && events.exists() {
                let mut fds = [PollFd::new(&file, PollFlags::PRI)];
                if poll(&mut fds, Some(&tick)).is_err() {
                    std::thread::sleep(Duration::from_secs(1));
                }
                let now = cg.oom_kills();
                if now > seen {
                    seen = now;
                    on_oom();
                }
            }
        })
        .ok()?;
    Some(OomWatch { stop })
}
