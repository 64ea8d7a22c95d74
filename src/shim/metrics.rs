//! Task metrics for containerd: the container's cgroup read by the shim
//! itself (the library's reader, runc's `events --stats` shape, so any
//! runtime works, crun has no `events`, and no process is started per
//! call) turned into `io.containerd.cgroups.v1.Metrics`, the message
//! `ctr task metrics` and CRI decode (field numbers from containerd/cgroups
//! cgroup1/stats/metrics.proto). What the cgroup does not report stays
//! zero.

use crate::cgroups::Cgroup;
use crate::error::Result;
use crate::json::{self, Node, Writer};
use crate::proto::types::Any;

pub const METRICS_V1: &str = "io.containerd.cgroups.v1.Metrics";

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metrics {
    #[prost(message, optional, tag = "2")]
    pub pids: Option<PidsStat>,
    #[prost(message, optional, tag = "3")]
    pub cpu: Option<CpuStat>,
    #[prost(message, optional, tag = "4")]
    pub memory: Option<MemoryStat>,
    #[prost(message, optional, tag = "5")]
    pub blkio: Option<BlkIoStat>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PidsStat {
    #[prost(uint64, tag = "1")]
    pub current: u64,
    #[prost(uint64, tag = "2")]
    pub limit: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CpuStat {
    #[prost(message, optional, tag = "1")]
    pub usage: Option<CpuUsage>,
    #[prost(message, optional, tag = "2")]
    pub throttling: Option<Throttle>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CpuUsage {
    #[prost(uint64, tag = "1")]
    pub total: u64,
    #[prost(uint64, tag = "2")]
    pub kernel: u64,
    #[prost(uint64, tag = "3")]
    pub user: u64,
    #[prost(uint64, repeated, tag = "4")]
    pub per_cpu: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Throttle {
    #[prost(uint64, tag = "1")]
    pub periods: u64,
    #[prost(uint64, tag = "2")]
    pub throttled_periods: u64,
    #[prost(uint64, tag = "3")]
    pub throttled_time: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MemoryStat {
    #[prost(uint64, tag = "1")]
    pub cache: u64,
    #[prost(uint64, tag = "2")]
    pub rss: u64,
    #[prost(uint64, tag = "4")]
    pub mapped_file: u64,
    #[prost(uint64, tag = "9")]
    pub pg_fault: u64,
    #[prost(uint64, tag = "10")]
    pub pg_maj_fault: u64,
    #[prost(uint64, tag = "11")]
    pub inactive_anon: u64,
    #[prost(uint64, tag = "12")]
    pub active_anon: u64,
    #[prost(uint64, tag = "13")]
    pub inactive_file: u64,
    #[prost(uint64, tag = "14")]
    pub active_file: u64,
    #[prost(uint64, tag = "15")]
    pub unevictable: u64,
    #[prost(message, optional, tag = "33")]
    pub usage: Option<MemoryEntry>,
    #[prost(message, optional, tag = "34")]
    pub swap: Option<MemoryEntry>,
    #[prost(message, optional, tag = "35")]
    pub kernel: Option<MemoryEntry>,
    #[prost(message, optional, tag = "36")]
    pub kernel_tcp: Option<MemoryEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MemoryEntry {
    #[prost(uint64, tag = "1")]
    pub limit: u64,
    #[prost(uint64, tag = "2")]
    pub usage: u64,
    #[prost(uint64, tag = "3")]
    pub max: u64,
    #[prost(uint64, tag = "4")]
    pub failcnt: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlkIoStat {
    #[prost(message, repeated, tag = "1")]
    pub io_service_bytes_recursive: Vec<BlkIoEntry>,
    #[prost(message, repeated, tag = "2")]
    pub io_serviced_recursive: Vec<BlkIoEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlkIoEntry {
    #[prost(string, tag = "1")]
    pub op: String,
    #[prost(string, tag = "2")]
    pub device: String,
    #[prost(uint64, tag = "3")]
    pub major: u64,
    #[prost(uint64, tag = "4")]
    pub minor: u64,
    #[prost(uint64, tag = "5")]
    pub value: u64,
}

/// A number at `path` (dot-separated keys) or 0.
fn num(n: &Node, path: &str) -> u64 {
    let mut cur = Node::new(n.value, n.path.clone());
    for key in path.split('.') {
        match cur.get(key) {
            Ok(Some(next)) => cur = next,
            _ => return 0,
        }
    }
    cur.u64().unwrap_or(0)
}

fn entry(n: &Node, key: &str) -> Option<MemoryEntry> {
    let e = n.get(key).ok()??;
    Some(MemoryEntry {
        limit: num(&e, "limit"),
        usage: num(&e, "usage"),
        max: num(&e, "max"),
        failcnt: num(&e, "failcnt"),
    })
}

fn blkio_entries(n: &Node, key: &str) -> Vec<BlkIoEntry> {
    let Some(list) = n.get(key).ok().flatten().and_then(|l| l.items().ok()) else {
        return Vec::new();
    };
    list.iter()
        .map(|e| BlkIoEntry {
            op: e
                .get("op")
                .ok()
                .flatten()
                .and_then(|o| o.string().ok())
                .unwrap_or_default(),
            device: String::new(),
            major: num(e, "major"),
            minor: num(e, "minor"),
            value: num(e, "value"),
        })
        .collect()
}

/// The metrics of container `id` from its cgroup `cg`.
pub fn from_cgroup(id: &str, cg: &Cgroup) -> Result<Any> {
    let mut w = Writer::compact();
    w.begin_object();
    w.key("type").str("stats").key("id").str(id).key("data");
    cg.write_stats(&mut w);
    w.end_object();
    from_runtime_stats(&w.finish())
}

/// `{"type":"stats","id":..,"data":{...}}` → Any(v1 Metrics).
pub fn from_runtime_stats(text: &str) -> Result<Any> {
    let v = json::parse(text.trim(), "runtime stats")?;
    let doc = Node::new(&v, "stats");
    let data = doc.need("data")?;
    let mut m = Metrics::default();
    if data.get("pids")?.is_some() {
        m.pids = Some(PidsStat {
            current: num(&data, "pids.current"),
            limit: num(&data, "pids.limit"),
        });
    }
    if let Some(cpu) = data.get("cpu")? {
        let per_cpu = cpu
            .get("usage")?
            .and_then(|u| u.get("percpu").ok().flatten())
            .and_then(|p| p.items().ok())
            .map(|items| items.iter().map(|i| i.u64().unwrap_or(0)).collect())
            .unwrap_or_default();
        m.cpu = Some(CpuStat {
            usage: Some(CpuUsage {
                total: num(&cpu, "usage.total"),
                kernel: num(&cpu, "usage.kernel"),
                user: num(&cpu, "usage.user"),
                per_cpu,
            }),
            throttling: Some(Throttle {
                periods: num(&cpu, "throttling.periods"),
                throttled_periods: num(&cpu, "throttling.throttledPeriods"),
                throttled_time: num(&cpu, "throttling.throttledTime"),
            }),
        });
    }
    if let Some(mem) = data.get("memory")? {
        let raw = |k: &str| num(&mem, &format!("raw.{k}"));
        m.memory = Some(MemoryStat {
            cache: num(&mem, "cache"),
            rss: raw("rss"),
            mapped_file: raw("mapped_file"),
            pg_fault: raw("pgfault"),
            pg_maj_fault: raw("pgmajfault"),
            inactive_anon: raw("inactive_anon"),
            active_anon: raw("active_anon"),
            inactive_file: raw("inactive_file"),
            active_file: raw("active_file"),
            unevictable: raw("unevictable"),
            usage: entry(&mem, "usage"),
            swap: entry(&mem, "swap"),
            kernel: entry(&mem, "kernel"),
            kernel_tcp: entry(&mem, "kernelTCP"),
        });
    }
    if let Some(b) = data.get("blkio")? {
        m.blkio = Some(BlkIoStat {
            io_service_bytes_recursive: blkio_entries(&b, "ioServiceBytesRecursive"),
            io_serviced_recursive: blkio_entries(&b, "ioServicedRecursive"),
        });
    }
    Ok(crate::proto::events::any(METRICS_V1, &m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn runc_stats_become_v1_metrics() {
        let text = r#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":5000,"percpu":[2000,3000],"kernel":1000,"user":4000},"throttling":{"periods":3,"throttledPeriods":1,"throttledTime":7}},"memory":{"cache":11,"usage":{"limit":100,"usage":42,"max":50,"failcnt":0},"raw":{"rss":9,"pgfault":5}},"pids":{"current":2,"limit":10},"blkio":{"ioServiceBytesRecursive":[{"major":8,"minor":0,"op":"Read","value":4096}]}}}"#;
        let any = from_runtime_stats(text).unwrap();
        assert_eq!(any.type_url, METRICS_V1);
        let m = Metrics::decode(&any.value[..]).unwrap();
        assert_eq!(m.pids.unwrap().current, 2);
        let cpu = m.cpu.unwrap().usage.unwrap();
        assert_eq!((cpu.total, cpu.per_cpu), (5000, vec![2000, 3000]));
        let mem = m.memory.unwrap();
        assert_eq!((mem.cache, mem.rss, mem.usage.unwrap().usage), (11, 9, 42));
        assert_eq!(m.blkio.unwrap().io_service_bytes_recursive[0].value, 4096);
    }
}
