//! `runc events`: stats and OOM notices as JSON lines, runc's shapes.

use super::container::{StateRoot, Status};
use crate::error::Result;
use crate::json::Writer;
use std::time::Duration;

fn stats_json(id: &str, cg: &crate::cgroups::Cgroup) -> String {
    let mut w = Writer::compact();
    w.begin_object();
    w.key("type").str("stats");
    w.key("id").str(id);
    w.key("data");
    cg.write_stats(&mut w);
    w.end_object();
    w.finish()
}

fn oom_json(id: &str) -> String {
    let mut w = Writer::compact();
    w.begin_object();
    w.key("type").str("oom").key("id").str(id);
    w.end_object();
    w.finish()
}

/// Print one stats event (`--stats`), or stream stats every `interval`
/// and an OOM event whenever the OOM killer strikes, until the container
/// stops. `emit` gets each JSON line.
pub fn events(
    root: &StateRoot,
    id: &str,
    once: bool,
    interval: Duration,
    mut emit: impl FnMut(&str),
) -> Result<()> {
    let c = root.load(id)?;
    if c.status() == Status::Stopped {
        crate::bail!("container with id {id} is not running");
    }
    let cg = c.cgroup();
    if once {
        emit(&stats_json(id, &cg));
        return Ok(());
    }
    // cgroup v1 tells of each OOM through an eventfd at once (so an OOM
    // kill is reported even when the cgroup is removed right after);
    // elsewhere the oom_kill counter is polled.
    let oom_fd = cg.oom_eventfd();
    let mut ooms = cg.oom_kills();
    let tick = Duration::from_millis(100).min(interval);
    let mut since_stats = Duration::ZERO;
    let mut dead_since = None;
    loop {
        match &oom_fd {
            Some(fd) => {
                if crate::sys::eventfd::wait(fd, tick.as_millis() as i32) {
                    if !cg.memory_dir_exists() {
                        return Ok(());
                    }
                    emit(&oom_json(id));
                }
            }
            None => {
                std::thread::sleep(tick);
                let now = cg.oom_kills();
                if now > ooms {
                    ooms = now;
                    emit(&oom_json(id));
                }
            }
        }
        since_stats += tick;
        if !c.init_alive() {
            // A pending OOM notice is read within one tick of the death;
            // after that a stopped container has nothing more to tell.
            let since = *dead_since.get_or_insert_with(std::time::Instant::now);
            if oom_fd.is_none()
                || !cg.memory_dir_exists()
                || since.elapsed() > Duration::from_millis(500)
            {
                return Ok(());
            }
        }
        if since_stats >= interval && c.init_alive() {
            since_stats = Duration::ZERO;
            emit(&stats_json(id, &cg));
        }
    }
}
