//! Usage figures of a container's cgroup, for `runc events`.

use super::Cgroup;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub cpu_total_ns: u64,
    pub cpu_percpu_ns: Vec<u64>,
    pub cpu_user_ns: u64,
    pub cpu_kernel_ns: u64,
    pub throttled_periods: u64,
    pub throttled_time_ns: u64,
    pub periods: u64,
    pub memory_usage: u64,
    pub memory_max_usage: u64,
    pub memory_limit: u64,
    pub memory_failcnt: u64,
    pub swap_usage: u64,
    pub memory_stat: Vec<(String, u64)>,
    pub pids_current: u64,
    pub pids_limit: u64,
}

fn num(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn keyed(path: &std::path::Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn get(kv: &[(String, u64)], key: &str) -> u64 {
    kv.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
}

impl Cgroup {
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        // On a hybrid host the v2 hierarchy has no controllers: v1 counts.
        let hybrid = self.dirs.iter().any(|d| !d.is_v2());
        for d in &self.dirs {
            let p = std::path::Path::new(&d.path);
            if d.is_v2() {
                if hybrid {
                    continue;
                }
                let cpu = keyed(&p.join("cpu.stat"));
                s.cpu_total_ns = get(&cpu, "usage_usec") * 1000;
                s.cpu_user_ns = get(&cpu, "user_usec") * 1000;
                s.cpu_kernel_ns = get(&cpu, "system_usec") * 1000;
                s.periods = get(&cpu, "nr_periods");
                s.throttled_periods = get(&cpu, "nr_throttled");
                s.throttled_time_ns = get(&cpu, "throttled_usec") * 1000;
                s.memory_usage = num(&p.join("memory.current"));
                s.memory_max_usage = num(&p.join("memory.peak"));
                s.memory_limit = num(&p.join("memory.max"));
                s.swap_usage = num(&p.join("memory.swap.current"));
                s.memory_stat = keyed(&p.join("memory.stat"));
                s.pids_current = num(&p.join("pids.current"));
                s.pids_limit = num(&p.join("pids.max"));
                continue;
            }
            if d.has("cpuacct") {
                s.cpu_total_ns = num(&p.join("cpuacct.usage"));
                s.cpu_percpu_ns = std::fs::read_to_string(p.join("cpuacct.usage_percpu"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                let st = keyed(&p.join("cpuacct.stat"));
                // USER_HZ ticks to nanoseconds.
                s.cpu_user_ns = get(&st, "user") * 10_000_000;
                s.cpu_kernel_ns = get(&st, "system") * 10_000_000;
            }
            if d.has("cpu") {
                let st = keyed(&p.join("cpu.stat"));
                s.periods = get(&st, "nr_periods");
                s.throttled_periods = get(&st, "nr_throttled");
                s.throttled_time_ns = get(&st, "throttled_time");
            }
            if d.has("memory") {
                s.memory_usage = num(&p.join("memory.usage_in_bytes"));
                s.memory_max_usage = num(&p.join("memory.max_usage_in_bytes"));
                s.memory_limit = num(&p.join("memory.limit_in_bytes"));
                s.memory_failcnt = num(&p.join("memory.failcnt"));
                s.swap_usage =
                    num(&p.join("memory.memsw.usage_in_bytes")).saturating_sub(s.memory_usage);
                s.memory_stat = keyed(&p.join("memory.stat"));
            }
            if d.has("pids") {
                s.pids_current = num(&p.join("pids.current"));
                s.pids_limit = num(&p.join("pids.max"));
            }
        }
        s
    }
}
