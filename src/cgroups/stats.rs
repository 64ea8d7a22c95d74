//! Usage figures of a container's cgroup as runc's `events --stats` data
//! object: the same keys, read straight from the cgroup files (every key is
//! written, zero when the kernel has no such counter).

use super::Cgroup;
use crate::json::Writer;
use std::path::{Path, PathBuf};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A number file; "max" and missing files read as 0.
fn num(path: &Path) -> u64 {
    read(path).trim().parse().unwrap_or(0)
}

fn signed(path: &Path) -> i64 {
    read(path).trim().parse().unwrap_or(0)
}

fn nums(path: &Path) -> Vec<u64> {
    read(path)
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn keyed(path: &Path) -> Vec<(String, u64)> {
    read(path)
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

/// "0-2,4" as [0, 1, 2, 4].
fn cpu_list(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u64>().ok()),
        }
    }
    out
}

/// {usage, max, failcnt, limit} of a v1 memory counter family.
fn memory_entry(w: &mut Writer, key: &str, dir: &Path, prefix: &str) {
    w.key(key).object();
    w.key("limit")
        .num(num(&dir.join(format!("{prefix}.limit_in_bytes"))));
    w.key("usage")
        .num(num(&dir.join(format!("{prefix}.usage_in_bytes"))));
    w.key("max")
        .num(num(&dir.join(format!("{prefix}.max_usage_in_bytes"))));
    w.key("failcnt")
        .num(num(&dir.join(format!("{prefix}.failcnt"))));
    w.end_object();
}

/// blkio's "8:0 Read 4096" lines as [{major, minor, op, value}].
fn blkio_list(w: &mut Writer, key: &str, path: &Path) {
    w.key(key).array();
    for line in read(path).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((major, minor)) = f.first().and_then(|d| d.split_once(':')) else {
            continue;
        };
        if f.len() != 3 {
            continue;
        }
        w.object();
        w.key("major")
            .raw(major)
            .key("minor")
            .raw(minor)
            .key("op")
            .str(f[1]);
        w.key("value").num(f[2].parse::<u64>().unwrap_or(0));
        w.end_object();
    }
    w.end_array();
}

impl Cgroup {
    fn dir_with(&self, controller: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .find(|d| d.has(controller))
            .map(|d| PathBuf::from(&d.path))
    }

    /// Write the `data` object of a stats event.
    pub fn write_stats(&self, w: &mut Writer) {
        let v1 = self.dirs.iter().any(|d| !d.is_v2());
        let v2 = self
            .v2_dir()
            .map(|d| PathBuf::from(&d.path))
            .filter(|_| !v1);
        let nothing = PathBuf::from("/nonexistent");
        w.object();

        // cpu
        let acct = self.dir_with("cpuacct").unwrap_or_else(|| nothing.clone());
        let cpu = self
            .dir_with("cpu")
            .or_else(|| v2.clone())
            .unwrap_or_else(|| nothing.clone());
        let cpu_stat = keyed(&cpu.join("cpu.stat"));
        w.key("cpu").object();
        w.key("usage").object();
        if v2.is_some() {
            w.key("total").num(get(&cpu_stat, "usage_usec") * 1000);
            w.key("percpu").array().end_array();
            w.key("percpu_kernel").array().end_array();
            w.key("percpu_user").array().end_array();
            w.key("kernel").num(get(&cpu_stat, "system_usec") * 1000);
            w.key("user").num(get(&cpu_stat, "user_usec") * 1000);
        } else {
            w.key("total").num(num(&acct.join("cpuacct.usage")));
            for (key, file) in [
                ("percpu", "cpuacct.usage_percpu"),
                ("percpu_kernel", "cpuacct.usage_percpu_sys"),
                ("percpu_user", "cpuacct.usage_percpu_user"),
            ] {
                w.key(key).array();
                for n in nums(&acct.join(file)) {
                    w.num(n);
                }
                w.end_array();
            }
            w.key("kernel").num(num(&acct.join("cpuacct.usage_sys")));
            w.key("user").num(num(&acct.join("cpuacct.usage_user")));
        }
        w.end_object();
        w.key("throttling").object();
        w.key("periods").num(get(&cpu_stat, "nr_periods"));
        w.key("throttledPeriods")
            .num(get(&cpu_stat, "nr_throttled"));
        let throttled = if v2.is_some() {
            get(&cpu_stat, "throttled_usec") * 1000
        } else {
            get(&cpu_stat, "throttled_time")
        };
        w.key("throttledTime").num(throttled);
        w.end_object();
        w.end_object();

        // cpuset
        let cpuset = self
            .dir_with("cpuset")
            .or_else(|| v2.clone())
            .unwrap_or_else(|| nothing.clone());
        w.key("cpuset").object();
        for (key, file) in [("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")] {
            let effective = read(&cpuset.join(format!("{file}.effective")));
            let text = if effective.trim().is_empty() {
                read(&cpuset.join(file))
            } else {
                effective
            };
            w.key(key).array();
            for n in cpu_list(&text) {
                w.num(n);
            }
            w.end_array();
        }
        for key in [
            "cpu_exclusive",
            "mem_hardwall",
            "mem_exclusive",
            "memory_migrate",
            "memory_spread_page",
            "memory_spread_slab",
            "memory_pressure",
            "sched_load_balance",
        ] {
            w.key(key).num(num(&cpuset.join(format!("cpuset.{key}"))));
        }
        w.key("sched_relax_domain_level")
            .num(signed(&cpuset.join("cpuset.sched_relax_domain_level")));
        w.end_object();

        // memory
        w.key("memory").object();
        match (self.dir_with("memory"), &v2) {
            (Some(m), _) => {
                let stat = keyed(&m.join("memory.stat"));
                w.key("cache").num(get(&stat, "cache"));
                memory_entry(w, "usage", &m, "memory");
                memory_entry(w, "swap", &m, "memory.memsw");
                memory_entry(w, "kernel", &m, "memory.kmem");
                memory_entry(w, "kernelTCP", &m, "memory.kmem.tcp");
                w.key("raw").object();
                for (k, v) in &stat {
                    w.key(k).num(v);
                }
                w.end_object();
            }
            (None, Some(d)) => {
                let stat = keyed(&d.join("memory.stat"));
                w.key("cache").num(get(&stat, "file"));
                for (key, cur, max, peak) in [
                    ("usage", "memory.current", "memory.max", "memory.peak"),
                    (
                        "swap",
                        "memory.swap.current",
                        "memory.swap.max",
                        "memory.swap.peak",
                    ),
                ] {
                    w.key(key).object();
                    w.key("limit").num(num(&d.join(max)));
                    w.key("usage").num(num(&d.join(cur)));
                    w.key("max").num(num(&d.join(peak)));
                    w.key("failcnt").num(0);
                    w.end_object();
                }
                w.key("raw").object();
                for (k, v) in &stat {
                    w.key(k).num(v);
                }
                w.end_object();
            }
            (None, None) => {}
        }
        w.end_object();

        // pids
        let pids = self
            .dir_with("pids")
            .or_else(|| v2.clone())
            .unwrap_or_else(|| nothing.clone());
        w.key("pids").object();
        w.key("current").num(num(&pids.join("pids.current")));
        w.key("limit").num(num(&pids.join("pids.max")));
        w.end_object();

        // blkio
        w.key("blkio").object();
        if let Some(b) = self.dir_with("blkio") {
            blkio_list(
                w,
                "ioServiceBytesRecursive",
                &b.join("blkio.throttle.io_service_bytes_recursive"),
            );
            blkio_list(
                w,
                "ioServicedRecursive",
                &b.join("blkio.throttle.io_serviced_recursive"),
            );
        }
        w.end_object();

        // hugetlb: one entry per page size the kernel offers
        w.key("hugetlb").object();
        let (hdir, v2_files) = match (self.dir_with("hugetlb"), &v2) {
            (Some(h), _) => (Some(h), false),
            (None, Some(d)) => (Some(d.clone()), true),
            _ => (None, false),
        };
        if let Some(h) = hdir {
            let mut sizes: Vec<String> = std::fs::read_dir(&h)
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| {
                            let name = e.file_name().to_string_lossy().into_owned();
                            let size = name
                                .strip_prefix("hugetlb.")?
                                .split('.')
                                .next()?
                                .to_string();
                            Some(size)
                        })
                        .collect()
                })
                .unwrap_or_default();
            sizes.sort();
            sizes.dedup();
            for size in sizes {
                w.key(&size).object();
                if v2_files {
                    w.key("usage")
                        .num(num(&h.join(format!("hugetlb.{size}.current"))));
                    w.key("max").num(0);
                    w.key("failcnt").num(get(
                        &keyed(&h.join(format!("hugetlb.{size}.events"))),
                        "max",
                    ));
                } else {
                    w.key("usage")
                        .num(num(&h.join(format!("hugetlb.{size}.usage_in_bytes"))));
                    w.key("max")
                        .num(num(&h.join(format!("hugetlb.{size}.max_usage_in_bytes"))));
                    w.key("failcnt")
                        .num(num(&h.join(format!("hugetlb.{size}.failcnt"))));
                }
                w.end_object();
            }
        }
        w.end_object();
        w.end_object();
    }
}

#[cfg(test)]
mod tests {
    use super::cpu_list;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("0-2,4\n"), [0, 1, 2, 4]);
        assert_eq!(cpu_list(""), Vec::<u64>::new());
    }
}
