//! Which file takes which resource, for cgroup v1 and v2.

use super::device_rules::{DeviceCgroup, Plan};
use super::Cgroup;
use crate::error::{Context, Result};
use crate::oci::resources::{DeviceRule, Resources, Throttle};
use std::path::Path;

fn write(dir: &Path, file: &str, value: impl std::fmt::Display) -> Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, value.to_string())
        .with_context(|| format!("write {value} to {}", path.display()))
}

fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// cgroup v1: the settings of one controller.
pub(super) fn apply_v1(
    controller: &str,
    dir: &Path,
    r: &Resources,
    devices: Option<&DevicePlan>,
) -> Result<()> {
    match controller {
        "memory" => v1_memory(dir, r),
        "cpu" => {
            if let Some(s) = r.cpu.shares.filter(|s| *s > 0) {
                write(dir, "cpu.shares", s)?;
            }
            if let Some(p) = r.cpu.period.filter(|p| *p > 0) {
                write(dir, "cpu.cfs_period_us", p)?;
            }
            if let Some(q) = r.cpu.quota.filter(|q| *q != 0) {
                write(dir, "cpu.cfs_quota_us", q)?;
            }
            if let Some(p) = r.cpu.realtime_period.filter(|p| *p > 0) {
                write(dir, "cpu.rt_period_us", p)?;
            }
            if let Some(rt) = r.cpu.realtime_runtime.filter(|q| *q != 0) {
                write(dir, "cpu.rt_runtime_us", rt)?;
            }
            Ok(())
        }
        "cpuset" => {
            if let Some(c) = &r.cpu.cpus {
                write(dir, "cpuset.cpus", c)?;
            }
            if let Some(m) = &r.cpu.mems {
                write(dir, "cpuset.mems", m)?;
            }
            Ok(())
        }
        "pids" => match r.pids_limit {
            Some(n) if n > 0 => write(dir, "pids.max", n),
            Some(_) => write(dir, "pids.max", "max"),
            None => Ok(()),
        },
        "blkio" => v1_blkio(dir, r),
        "hugetlb" => {
            for (size, limit) in &r.hugepage_limits {
                write(dir, &format!("hugetlb.{size}.limit_in_bytes"), limit).map_err(|e| {
                    e.wrap(format!("linux.resources.hugepageLimits: page size {size}"))
                })?;
            }
            Ok(())
        }
        "net_cls" => r
            .network_class_id
            .map_or(Ok(()), |id| write(dir, "net_cls.classid", id)),
        "net_prio" => {
            for (iface, prio) in &r.network_priorities {
                write(dir, "net_prio.ifpriomap", format!("{iface} {prio}"))?;
            }
            Ok(())
        }
        "devices" => devices.map_or(Ok(()), |plan| plan.carry_out(dir)),
        _ => Ok(()),
    }
}

/// What to write to a v1 devices cgroup to bring it to what the rules
/// allow: only what differs from what it allows now (so that `update`
/// never denies a running container its devices for a moment), worked out
/// and checked before anything of the update is written.
pub(super) struct DevicePlan {
    target: DeviceCgroup,
    plan: Plan,
}

fn devices_list(dir: &Path) -> Result<DeviceCgroup> {
    let path = dir.join("devices.list");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    DeviceCgroup::from_list(&text).map_err(|e| e.wrap(path.display()))
}

/// Sub-cgroups of `dir` (made by the container, or by its systemd).
fn has_children(dir: &Path) -> Result<bool> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("list {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl DevicePlan {
    /// Refuses rules that a v1 cgroup cannot express, and a change that
    /// needs resetting the rules of a cgroup with children (the kernel
    /// would refuse it half-way).
    pub(super) fn new(dir: &Path, rules: &[DeviceRule]) -> Result<Self> {
        let what = "linux.resources.devices";
        let target = DeviceCgroup::from_rules(rules).map_err(|e| e.wrap(what))?;
        let current = devices_list(dir).map_err(|e| e.wrap(what))?;
        let plan = current.plan_to(&target);
        if plan.resets && has_children(dir).map_err(|e| e.wrap(what))? {
            crate::bail!(
                "{what}: {} has sub-cgroups, and going from {current} to {target} needs `{}` \
                 first, which the kernel refuses in a cgroup with children",
                dir.display(),
                plan.writes[0]
            );
        }
        Ok(DevicePlan { target, plan })
    }

    /// Write the plan, then check that the kernel holds the rules.
    fn carry_out(&self, dir: &Path) -> Result<()> {
        let what = "linux.resources.devices";
        for w in &self.plan.writes {
            write(dir, w.file, &w.line).map_err(|e| e.wrap(what))?;
        }
        let now = devices_list(dir).map_err(|e| e.wrap(what))?;
        // Under an allow policy only the policy shows.
        let holds = if self.target.is_listed_whole() {
            now == self.target
        } else {
            now.policy() == self.target.policy()
        };
        if !holds {
            crate::bail!(
                "{what}: {} does not hold the rules written",
                dir.join("devices.list").display()
            );
        }
        Ok(())
    }
}

fn v1_memory(dir: &Path, r: &Resources) -> Result<()> {
    let m = &r.memory;
    let has_swap_file = exists(dir, "memory.memsw.limit_in_bytes");
    // No limit on memory and nothing said of swap: no limit on either (as
    // runc), or the old memory+swap limit would refuse the new memory one.
    let swap = match (m.limit, m.swap) {
        (Some(-1), None) => Some(-1),
        (_, swap) => swap,
    };
    match (m.limit, swap.filter(|_| has_swap_file)) {
        (Some(limit), Some(swap)) => {
            // The kernel wants memory <= memory+swap at every moment: raise
            // the larger one first.
            if write(dir, "memory.limit_in_bytes", limit).is_err() {
                write(dir, "memory.memsw.limit_in_bytes", swap)?;
                write(dir, "memory.limit_in_bytes", limit)?;
            } else {
                write(dir, "memory.memsw.limit_in_bytes", swap)?;
            }
        }
        (Some(limit), None) => write(dir, "memory.limit_in_bytes", limit)?,
        (None, Some(swap)) => write(dir, "memory.memsw.limit_in_bytes", swap)?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation {
        write(dir, "memory.soft_limit_in_bytes", r)?;
    }
    if let Some(s) = m.swappiness {
        write(dir, "memory.swappiness", s)?;
    }
    if m.disable_oom_killer == Some(true) {
        write(dir, "memory.oom_control", 1)?;
    }
    Ok(())
}

fn throttle_lines(dir: &Path, file: &str, list: &[Throttle]) -> Result<()> {
    for t in list {
        write(dir, file, format!("{}:{} {}", t.major, t.minor, t.rate))?;
    }
    Ok(())
}

fn v1_blkio(dir: &Path, r: &Resources) -> Result<()> {
    let b = &r.block_io;
    // CFQ's blkio.weight is gone from current kernels; BFQ's takes its place.
    let weight_file = if exists(dir, "blkio.weight") {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    if let Some(w) = b.weight {
        if !exists(dir, weight_file) {
            crate::bail!("linux.resources.blockIO.weight: this kernel has no blkio weight control (no CFQ or BFQ)");
        }
        write(dir, weight_file, w)?;
    }
    if let Some(w) = b.leaf_weight {
        write(dir, "blkio.leaf_weight", w)?;
    }
    for (major, minor, weight, leaf) in &b.weight_device {
        if let Some(w) = weight {
            write(
                dir,
                &format!("{weight_file}_device"),
                format!("{major}:{minor} {w}"),
            )?;
        }
        if let Some(w) = leaf {
            write(
                dir,
                "blkio.leaf_weight_device",
                format!("{major}:{minor} {w}"),
            )?;
        }
    }
    throttle_lines(dir, "blkio.throttle.read_bps_device", &b.throttle_read_bps)?;
    throttle_lines(
        dir,
        "blkio.throttle.write_bps_device",
        &b.throttle_write_bps,
    )?;
    throttle_lines(
        dir,
        "blkio.throttle.read_iops_device",
        &b.throttle_read_iops,
    )?;
    throttle_lines(
        dir,
        "blkio.throttle.write_iops_device",
        &b.throttle_write_iops,
    )
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), as runc and the kernel
/// documentation map them.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// blkio weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990
}

/// The v2 `cpu.max` line, if quota or period is set.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    if quota.is_none() && period.is_none() {
        return None;
    }
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".to_string(),
    };
    Some(match period.filter(|p| *p > 0) {
        Some(p) => format!("{q} {p}"),
        None => q,
    })
}

/// The v2 `memory.swap.max` value: OCI's swap is memory+swap.
pub fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Option<String> {
    match (limit, swap) {
        // Memory unlimited and swap unsaid: swap unlimited too (runc's rule).
        (Some(-1), None) => Some("max".into()),
        (_, None) => None,
        (_, Some(-1)) => Some("max".into()),
        (Some(l), Some(s)) if l > 0 => Some((s - l).max(0).to_string()),
        (_, Some(s)) => Some(s.to_string()),
    }
}

fn limit_value(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Lines for io.max, one per device.
pub fn io_max_lines(r: &Resources) -> Vec<String> {
    let b = &r.block_io;
    let mut lines: Vec<((i64, i64), Vec<String>)> = Vec::new();
    for (list, key) in [
        (&b.throttle_read_bps, "rbps"),
        (&b.throttle_write_bps, "wbps"),
        (&b.throttle_read_iops, "riops"),
        (&b.throttle_write_iops, "wiops"),
    ] {
        for t in list {
            let dev = (t.major, t.minor);
            let entry = match lines.iter_mut().position(|(d, _)| *d == dev) {
                Some(i) => &mut lines[i].1,
                None => {
                    lines.push((dev, Vec::new()));
                    &mut lines.last_mut().expect("just pushed").1
                }
            };
            let rate = if t.rate == 0 {
                "max".to_string()
            } else {
                t.rate.to_string()
            };
            entry.push(format!("{key}={rate}"));
        }
    }
    lines
        .into_iter()
        .map(|((ma, mi), kv)| format!("{ma}:{mi} {}", kv.join(" ")))
        .collect()
}

/// cgroup v2: every setting whose controller this cgroup has. On a hybrid
/// host (`strict` false) the others are v1's business; on a unified host a
/// setting whose controller is missing is an error.
pub(super) fn apply_v2(dir: &Path, r: &Resources, strict: bool) -> Result<()> {
    let enabled = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let usable = |controller: &str, what: &str, asked: bool| -> Result<bool> {
        if !asked {
            return Ok(false);
        }
        if enabled.split_whitespace().any(|c| c == controller) {
            return Ok(true);
        }
        if strict {
            crate::bail!(
                "linux.resources.{what}: the {controller} controller is not available in cgroup {}",
                dir.display()
            );
        }
        Ok(false)
    };
    let m = &r.memory;
    if usable(
        "memory",
        "memory",
        m.limit.is_some() || m.swap.is_some() || m.reservation.is_some(),
    )? {
        if let Some(l) = m.limit {
            write(dir, "memory.max", limit_value(l))?;
        }
        if let Some(v) = swap_max(m.limit, m.swap) {
            if exists(dir, "memory.swap.max") {
                write(dir, "memory.swap.max", v)?;
            }
        }
        if let Some(res) = m.reservation {
            write(dir, "memory.low", limit_value(res))?;
        }
    }
    let cpu_max_line = cpu_max(r.cpu.quota, r.cpu.period);
    if usable(
        "cpu",
        "cpu",
        r.cpu.shares.is_some_and(|s| s > 0) || cpu_max_line.is_some(),
    )? {
        if let Some(s) = r.cpu.shares.filter(|s| *s > 0) {
            write(dir, "cpu.weight", shares_to_weight(s))?;
        }
        if let Some(line) = cpu_max_line {
            write(dir, "cpu.max", line)?;
        }
    }
    if usable(
        "cpuset",
        "cpu",
        r.cpu.cpus.is_some() || r.cpu.mems.is_some(),
    )? {
        if let Some(c) = &r.cpu.cpus {
            write(dir, "cpuset.cpus", c)?;
        }
        if let Some(mm) = &r.cpu.mems {
            write(dir, "cpuset.mems", mm)?;
        }
    }
    if usable("pids", "pids", r.pids_limit.is_some())? {
        match r.pids_limit {
            Some(n) if n > 0 => write(dir, "pids.max", n)?,
            _ => write(dir, "pids.max", "max")?,
        }
    }
    let io_lines = io_max_lines(r);
    if usable(
        "io",
        "blockIO",
        r.block_io.weight.is_some() || !io_lines.is_empty(),
    )? {
        if let Some(w) = r.block_io.weight {
            write(dir, "io.weight", blkio_to_io_weight(w))?;
        }
        for line in io_lines {
            write(dir, "io.max", line)?;
        }
    }
    if usable("hugetlb", "hugepageLimits", !r.hugepage_limits.is_empty())? {
        for (size, limit) in &r.hugepage_limits {
            write(dir, &format!("hugetlb.{size}.max"), limit)?;
        }
    }
    for (file, value) in &r.unified {
        if file.contains('/') {
            crate::bail!("linux.resources.unified: {file:?} is not a file name");
        }
        write(dir, file, value).map_err(|e| e.wrap("linux.resources.unified"))?;
    }
    Ok(())
}

/// Enable, from the root down to our parent, every controller the root has.
pub(super) fn v2_enable_controllers(dir: &Path) -> Result<()> {
    let mut chain = Vec::new();
    let mut p = dir.parent();
    while let Some(d) = p {
        if !d.join("cgroup.subtree_control").exists() {
            break;
        }
        chain.push(d.to_path_buf());
        p = d.parent();
    }
    for d in chain.iter().rev() {
        let available = std::fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
        let enabled = std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<String> = available
            .split_whitespace()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            // Some controllers cannot be delegated (e.g. with processes in
            // the parent); enable what the kernel lets us.
            for c in missing {
                let _ = std::fs::write(d.join("cgroup.subtree_control"), &c);
            }
        }
    }
    Ok(())
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..2000 {
        if done() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    crate::bail!("{what}: timed out")
}

pub(super) fn v1_freeze(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    write(dir, "freezer.state", want)?;
    wait_for(
        &format!(
            "{} {}",
            if frozen { "freeze" } else { "thaw" },
            dir.display()
        ),
        || {
            let state = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
            if state.trim() == "FREEZING" {
                // Writing again nudges a freeze that raced with a fork.
                let _ = std::fs::write(dir.join("freezer.state"), want);
            }
            state.trim() == want
        },
    )
}

pub(super) fn v2_freeze(dir: &Path, frozen: bool) -> Result<()> {
    write(dir, "cgroup.freeze", if frozen { 1 } else { 0 })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    wait_for(
        &format!(
            "{} {}",
            if frozen { "freeze" } else { "thaw" },
            dir.display()
        ),
        || {
            std::fs::read_to_string(dir.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l == want))
        },
    )
}

/// The oom_kill counter of the memory controller.
pub(super) fn oom_kills(cg: &Cgroup) -> u64 {
    let read_key = |path: std::path::PathBuf, key: &str| -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
            })
            .unwrap_or(0)
    };
    if let Some(d) = cg.dirs.iter().find(|d| d.has("memory")) {
        return read_key(d.file("memory.oom_control"), "oom_kill ");
    }
    cg.v2_dir()
        .map_or(0, |d| read_key(d.file("memory.events"), "oom_kill "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::resources::BlockIo;

    /// A scratch directory standing in for a v2 cgroup with `controllers`.
    struct FakeCgroup(std::path::PathBuf);
    impl FakeCgroup {
        fn new(name: &str, controllers: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("skiff-fake-cg-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
            std::fs::write(dir.join("memory.swap.max"), "max").unwrap();
            FakeCgroup(dir)
        }
        fn read(&self, file: &str) -> String {
            std::fs::read_to_string(self.0.join(file)).unwrap_or_else(|_| "<none>".into())
        }
    }
    impl Drop for FakeCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn resources() -> Resources {
        let v = crate::json::parse(
            r#"{"memory":{"limit":104857600,"swap":209715200,"reservation":52428800},
                "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1","mems":"0"},
                "pids":{"limit":64},
                "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
                "hugepageLimits":[{"pageSize":"2MB","limit":0}],
                "unified":{"memory.high":"96M"}}"#,
            "r",
        )
        .unwrap();
        crate::oci::resources::parse(&crate::json::Node::new(&v, "linux.resources")).unwrap()
    }

    #[test]
    fn v2_files_written() {
        let cg = FakeCgroup::new("all", "cpuset cpu io memory hugetlb pids");
        apply_v2(&cg.0, &resources(), true).unwrap();
        for (file, want) in [
            ("memory.max", "104857600"),
            ("memory.swap.max", "104857600"),
            ("memory.low", "52428800"),
            ("cpu.weight", "39"),
            ("cpu.max", "50000 100000"),
            ("cpuset.cpus", "0-1"),
            ("cpuset.mems", "0"),
            ("pids.max", "64"),
            ("io.weight", "4950"),
            ("io.max", "8:0 rbps=1048576"),
            ("hugetlb.2MB.max", "0"),
            ("memory.high", "96M"),
        ] {
            assert_eq!(cg.read(file), want, "{file}");
        }
    }

    #[test]
    fn v2_missing_controllers() {
        // Hybrid host: the v1 hierarchies take what cgroup2 lacks.
        let cg = FakeCgroup::new("hybrid", "hugetlb");
        apply_v2(&cg.0, &resources(), false).unwrap();
        assert_eq!(cg.read("memory.max"), "<none>");
        assert_eq!(cg.read("pids.max"), "<none>");
        assert_eq!(cg.read("hugetlb.2MB.max"), "0");
        // Unified host: a limit the cgroup cannot enforce is an error.
        let cg = FakeCgroup::new("strict", "cpu pids");
        let e = apply_v2(&cg.0, &resources(), true).unwrap_err();
        assert!(
            e.message()
                .starts_with("linux.resources.memory: the memory controller is not available"),
            "{e}"
        );
    }

    #[test]
    fn v2_freeze_writes_and_waits() {
        let cg = FakeCgroup::new("freeze", "");
        std::fs::write(cg.0.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        v2_freeze(&cg.0, true).unwrap();
        assert_eq!(cg.read("cgroup.freeze"), "1");
        std::fs::write(cg.0.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        v2_freeze(&cg.0, false).unwrap();
        assert_eq!(cg.read("cgroup.freeze"), "0");
    }

    #[test]
    fn v2_mapping() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000)).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cpu_max(Some(-1), None).as_deref(), Some("max"));
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(swap_max(Some(100), Some(300)).as_deref(), Some("200"));
        assert_eq!(swap_max(Some(100), Some(-1)).as_deref(), Some("max"));
        assert_eq!(swap_max(Some(-1), None).as_deref(), Some("max"));
        assert_eq!(swap_max(Some(100), None), None);
        let r = Resources {
            block_io: BlockIo {
                throttle_read_bps: vec![Throttle {
                    major: 8,
                    minor: 0,
                    rate: 100,
                }],
                throttle_write_iops: vec![Throttle {
                    major: 8,
                    minor: 0,
                    rate: 5,
                }],
                ..BlockIo::default()
            },
            ..Resources::default()
        };
        assert_eq!(io_max_lines(&r), ["8:0 rbps=100 wiops=5"]);
    }
}
