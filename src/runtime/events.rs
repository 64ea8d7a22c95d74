//! `runc events`: stats and OOM notices as JSON lines, runc's shapes.

use super::container::{StateRoot, Status};
use crate::cgroups::stats::Stats;
use crate::error::Result;
use crate::json::Writer;
use std::time::Duration;

fn stats_json(id: &str, s: &Stats) -> String {
    let mut w = Writer::compact();
    w.begin_object();
    w.key("type").str("stats");
    w.key("id").str(id);
    w.key("data").object();
    w.key("cpu").object();
    w.key("usage").object();
    w.key("total").num(s.cpu_total_ns);
    w.key("percpu").array();
    for v in &s.cpu_percpu_ns {
        w.num(v);
    }
    w.end_array();
    w.key("kernel").num(s.cpu_kernel_ns);
    w.key("user").num(s.cpu_user_ns);
    w.end_object();
    w.key("throttling").object();
    w.key("periods").num(s.periods);
    w.key("throttledPeriods").num(s.throttled_periods);
    w.key("throttledTime").num(s.throttled_time_ns);
    w.end_object();
    w.end_object();
    w.key("memory").object();
    w.key("usage").object();
    w.key("limit")
        .num(s.memory_limit)
        .key("usage")
        .num(s.memory_usage);
    w.key("max")
        .num(s.memory_max_usage)
        .key("failcnt")
        .num(s.memory_failcnt);
    w.end_object();
    w.key("swap")
        .object()
        .key("usage")
        .num(s.swap_usage)
        .end_object();
    w.key("raw").object();
    for (k, v) in &s.memory_stat {
        w.key(k).num(v);
    }
    w.end_object();
    w.end_object();
    w.key("pids")
        .object()
        .key("current")
        .num(s.pids_current)
        .key("limit")
        .num(s.pids_limit)
        .end_object();
    w.key("blkio").object().end_object();
    w.key("hugetlb").object().end_object();
    w.end_object();
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
        emit(&stats_json(id, &cg.stats()));
        return Ok(());
    }
    let mut ooms = cg.oom_kills();
    let tick = Duration::from_millis(100).min(interval);
    let mut since_stats = Duration::ZERO;
    loop {
        std::thread::sleep(tick);
        since_stats += tick;
        let now = cg.oom_kills();
        if now > ooms {
            ooms = now;
            emit(&oom_json(id));
        }
        if !c.init_alive() {
            return Ok(());
        }
        if since_stats >= interval {
            since_stats = Duration::ZERO;
            emit(&stats_json(id, &cg.stats()));
        }
    }
}
