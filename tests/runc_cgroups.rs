//! cgroups: where a container's cgroup goes (linux.cgroupsPath), that its
//! resources really hold (memory/OOM, pids, cpu quota, devices), the files
//! that carry the configured values, `update`, `pause`/`resume`, `events`,
//! and that nothing is left behind.
//!
//! The machines these run on are cgroup v1 (hybrid: a controller-less
//! cgroup2 at /sys/fs/cgroup/unified); hugetlb, net_cls,net_prio and
//! perf_event may or may not be mounted as v1 hierarchies, so the tests
//! check those only when they are there.
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test runc_cgroups`.

mod common;

use common::*;
use miniserde::json::{self, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn unique(tag: &str) -> String {
    format!(
        "skiff-test-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

/// `run -d` the config under `id`; the init is tracked for the leftover
/// check. Returns its pid.
#[track_caller]
fn run_detached(ctx: &Ctx, c: &Config, id: &str) -> i32 {
    ctx.write_config(c);
    let b = ctx.bundle_str();
    ctx.rt(&["run", "-d", "--bundle", &b, id]).ok();
    let pid = ctx.pid_of(id);
    ctx.track_pid(pid);
    pid
}

fn sleeper(ctx: &Ctx) -> Config {
    let mut c = ctx.config();
    c.sh("exec sleep 1000");
    c
}

#[track_caller]
fn read_trim(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// The v1 controllers that are mounted here and that every runtime puts a
/// container into.
const CORE: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
];

#[test]
fn cgroups_path_default_absolute_and_relative() {
    let ctx = Ctx::new("cgpath");
    let abs_parent = unique("abs");
    let rel_parent = unique("rel");
    let _guard = CgroupDirs {
        rel: vec![abs_parent.clone()],
    };
    // A relative path is taken from the runtime's own cgroup in each
    // hierarchy (ours, as the runtime is our child).
    let me = std::process::id() as i32;
    let own: Vec<(String, String)> = CORE
        .iter()
        .filter_map(|c| Some((c.to_string(), proc_cgroup(me, c)?)))
        .collect();
    let _guard_rel = CgroupDirs {
        rel: own
            .iter()
            .map(|(_, p)| format!("{}/{rel_parent}", p.trim_end_matches('/')))
            .collect(),
    };

    // The default: /<id> in every hierarchy for skiff; runc 1.1.5 takes
    // the id as a path relative to its own cgroup (which differs from /
    // only where the test runs in a non-root cgroup).
    let id = ctx.id();
    let pid = run_detached(&ctx, &sleeper(&ctx), &id);
    for (c, mine) in &own {
        let want = if is_skiff() {
            format!("/{id}")
        } else {
            format!("{}/{id}", mine.trim_end_matches('/'))
        };
        assert_eq!(proc_cgroup(pid, c), Some(want), "default cgroup in {c}");
    }
    let dirs: Vec<PathBuf> = own.iter().filter_map(|(c, _)| cgroup_dir(pid, c)).collect();
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    for d in dirs {
        assert!(!d.exists(), "{} removed", d.display());
    }

    // Absolute.
    let id = ctx.id();
    let abs = format!("/{abs_parent}/{id}");
    let mut c = sleeper(&ctx);
    c.set("linux.cgroupsPath", jstr(&abs));
    let pid = run_detached(&ctx, &c, &id);
    for (ctrl, _) in &own {
        assert_eq!(
            proc_cgroup(pid, ctrl).as_deref(),
            Some(abs.as_str()),
            "absolute cgroupsPath in {ctrl}"
        );
        let dir = cgroup_dir(pid, ctrl).unwrap();
        assert!(dir.is_dir(), "{} exists", dir.display());
    }
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    let left = CgroupDirs::existing(&abs);
    assert!(left.is_empty(), "cgroup dirs left after delete: {left:?}");

    // Relative.
    let id = ctx.id();
    let rel = format!("{rel_parent}/{id}");
    let mut c = sleeper(&ctx);
    c.set("linux.cgroupsPath", jstr(&rel));
    let pid = run_detached(&ctx, &c, &id);
    for (ctrl, mine) in &own {
        let want = format!("{}/{rel}", mine.trim_end_matches('/'));
        assert_eq!(
            proc_cgroup(pid, ctrl).as_deref(),
            Some(want.as_str()),
            "relative cgroupsPath in {ctrl} (runtime's own cgroup is {mine})"
        );
    }
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    for (ctrl, mine) in &own {
        let dir = cgroup_mount(ctrl)
            .unwrap()
            .join(mine.trim_start_matches('/'))
            .join(&rel);
        assert!(!dir.exists(), "{} left after delete", dir.display());
    }
}

/// Every value of linux.resources lands in its file.
#[test]
fn resource_files_hold_configured_values() {
    let ctx = Ctx::new("cgfiles");
    let id = ctx.id();
    let (major, minor) = root_disk();
    let mut c = sleeper(&ctx);
    c.set(
        "linux.resources.memory",
        js(r#"{"limit":100663296,"reservation":50331648}"#),
    )
    .set(
        "linux.resources.cpu",
        js(r#"{"shares":512,"quota":20000,"period":50000,"cpus":"0","mems":"0"}"#),
    )
    .set("linux.resources.pids", js(r#"{"limit":77}"#))
    .set(
        "linux.resources.blockIO",
        js(&format!(
            r#"{{"throttleReadBpsDevice":[{{"major":{major},"minor":{minor},"rate":1048576}}],
                "throttleWriteBpsDevice":[{{"major":{major},"minor":{minor},"rate":2097152}}],
                "throttleReadIOPSDevice":[{{"major":{major},"minor":{minor},"rate":300}}],
                "throttleWriteIOPSDevice":[{{"major":{major},"minor":{minor},"rate":400}}]}}"#
        )),
    );
    // The optional hierarchies: configured only when mounted as v1.
    let hugetlb = cgroup_mount("hugetlb").filter(|m| m.join("hugetlb.2MB.limit_in_bytes").exists());
    if hugetlb.is_some() {
        c.set(
            "linux.resources.hugepageLimits",
            js(r#"[{"pageSize":"2MB","limit":4194304}]"#),
        );
    } else {
        eprintln!("hugetlb is not a v1 hierarchy here: hugepageLimits not checked");
    }
    let net_cls = cgroup_mount("net_cls");
    let net_prio = cgroup_mount("net_prio");
    if net_cls.is_some() {
        c.set("linux.resources.network.classID", jnum(0x0010_0001));
    } else {
        eprintln!("net_cls is not mounted here: classID not checked");
    }
    if net_prio.is_some() {
        // The container's network namespace has only lo; the priority map
        // is per host interface name, lo is always there.
        c.set(
            "linux.resources.network.priorities",
            js(r#"[{"name":"lo","priority":5}]"#),
        );
    } else {
        eprintln!("net_prio is not mounted here: priorities not checked");
    }
    let pid = run_detached(&ctx, &c, &id);
    let file = |ctrl: &str, name: &str| -> String {
        let dir = cgroup_dir(pid, ctrl).unwrap_or_else(|| panic!("{ctrl} cgroup of {pid}"));
        assert!(
            dir.ends_with(&id),
            "{ctrl} cgroup {} is the container's",
            dir.display()
        );
        read_trim(&dir.join(name))
    };
    assert_eq!(file("memory", "memory.limit_in_bytes"), "100663296");
    assert_eq!(file("memory", "memory.soft_limit_in_bytes"), "50331648");
    assert_eq!(file("cpu", "cpu.shares"), "512");
    assert_eq!(file("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(file("cpu", "cpu.cfs_period_us"), "50000");
    assert_eq!(file("cpuset", "cpuset.cpus"), "0");
    assert_eq!(file("cpuset", "cpuset.mems"), "0");
    assert_eq!(file("pids", "pids.max"), "77");
    let dev = format!("{major}:{minor}");
    assert_eq!(
        file("blkio", "blkio.throttle.read_bps_device"),
        format!("{dev} 1048576")
    );
    assert_eq!(
        file("blkio", "blkio.throttle.write_bps_device"),
        format!("{dev} 2097152")
    );
    assert_eq!(
        file("blkio", "blkio.throttle.read_iops_device"),
        format!("{dev} 300")
    );
    assert_eq!(
        file("blkio", "blkio.throttle.write_iops_device"),
        format!("{dev} 400")
    );
    if hugetlb.is_some() {
        assert_eq!(file("hugetlb", "hugetlb.2MB.limit_in_bytes"), "4194304");
    }
    if net_cls.is_some() {
        // The kernel shows the class id in decimal.
        assert_eq!(file("net_cls", "net_cls.classid"), "1048577");
    }
    if net_prio.is_some() {
        let map = file("net_prio", "net_prio.ifpriomap");
        assert!(
            map.lines().any(|l| l.trim() == "lo 5"),
            "net_prio.ifpriomap has lo 5: {map:?}"
        );
    }
    // Seen from inside: the process runs on CPU 0 only.
    let out = ctx.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "grep Cpus_allowed_list /proc/self/status",
    ]);
    out.ok();
    assert_eq!(
        out.stdout.split_whitespace().nth(1),
        Some("0"),
        "cpuset inside: {:?}",
        out.stdout
    );
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

/// The (major, minor) of the block device holding the root filesystem
/// (the whole disk when / is on a partition).
fn root_disk() -> (u32, u32) {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dev = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(' ').nth(2))
        .expect("mountinfo line of /")
        .to_string();
    let (ma, mi) = dev.split_once(':').expect("major:minor");
    let (ma, mi): (u32, u32) = (ma.parse().unwrap(), mi.parse().unwrap());
    // A partition's dev dir has a "partition" file; its parent is the disk.
    let sys = fs::canonicalize(format!("/sys/dev/block/{ma}:{mi}")).expect("/sys/dev/block");
    if sys.join("partition").exists() {
        let disk = read_trim(&sys.parent().unwrap().join("dev"));
        let (a, b) = disk.split_once(':').unwrap();
        return (a.parse().unwrap(), b.parse().unwrap());
    }
    (ma, mi)
}

/// A config whose process waits for /dev/shm/go, then eats memory past a
/// 32 MiB limit (busybox tail buffers its whole newline-free input).
fn memory_hog(ctx: &Ctx) -> Config {
    let mut c = ctx.config();
    // No swap on these machines; set memory+swap too where the kernel has
    // swap accounting, so the hog cannot swap its way past the limit.
    let mut mem = js(r#"{"limit":33554432}"#);
    if cgroup_mount("memory").is_some_and(|m| m.join("memory.memsw.limit_in_bytes").exists()) {
        mem = js(r#"{"limit":33554432,"swap":33554432}"#);
    }
    c.set("linux.resources.memory", mem)
        .sh("while [ ! -e /dev/shm/go ]; do sleep 0.02; done; head -c 300m /dev/zero | tail");
    c
}

fn go(pid: i32) {
    fs::write(format!("/proc/{pid}/root/dev/shm/go"), "")
        .expect("write the go file into the container's /dev/shm");
}

fn has_oom_event(text: &str, id: &str) -> bool {
    text.lines().any(|l| {
        json::from_str::<Value>(l).is_ok_and(|v| {
            as_str(jget(&v, "type")) == Some("oom") && as_str(jget(&v, "id")) == Some(id)
        })
    })
}

/// Foreground `run` of the memory hog with `events` watching: `run`'s
/// result, what `events` printed and the id.
fn oom_in_foreground_run(ctx: &Ctx) -> (Out, String, String) {
    let id = ctx.id();
    ctx.write_config(&memory_hog(ctx));
    let b = ctx.bundle_str();
    let run = ctx.spawn(&["run", "--bundle", &b, &id]);
    assert!(
        wait_until(T, || ctx.rt(&["state", &id]).stdout.contains("running")),
        "container never ran"
    );
    let pid = ctx.pid_of(&id);
    ctx.track_pid(pid);
    let events = ctx.spawn(&["events", "--interval", "1s", &id]);
    // Give `events` time to start watching.
    std::thread::sleep(Duration::from_millis(500));
    go(pid);
    let out = run.wait(Duration::from_secs(30));
    wait_until(Duration::from_secs(3), || {
        has_oom_event(&events.stdout_so_far(), &id)
    });
    let text = events.stdout_so_far();
    drop(events);
    ctx.assert_gone(&id);
    (out, text, id)
}

/// Memory limit: a hog is OOM-killed, `run` exits 137.
#[test]
fn memory_limit_oom_kills() {
    let ctx = Ctx::new("oom");
    let id = ctx.id();
    ctx.write_config(&memory_hog(&ctx));
    let b = ctx.bundle_str();
    let run = ctx.spawn(&["run", "--bundle", &b, &id]);
    assert!(
        wait_until(T, || ctx.rt(&["state", &id]).stdout.contains("running")),
        "container never ran"
    );
    let pid = ctx.pid_of(&id);
    ctx.track_pid(pid);
    let memcg = cgroup_dir(pid, "memory").expect("memory cgroup");
    assert_eq!(read_trim(&memcg.join("memory.limit_in_bytes")), "33554432");
    go(pid);
    let out = run.wait(Duration::from_secs(30));
    // (which process the OOM killer picks, tail or the shell, may vary:
    // either way the container's status is 137)
    out.exit(137);
    ctx.assert_gone(&id);
}

/// `events` streams an OOM notice while the container lives on (detached:
/// nobody deletes it right away).
#[test]
fn events_reports_oom() {
    let ctx = Ctx::new("oomev");
    let id = ctx.id();
    let pid = run_detached(&ctx, &memory_hog(&ctx), &id);
    let memcg = cgroup_dir(pid, "memory").expect("memory cgroup");
    let events = ctx.spawn(&["events", "--interval", "1s", &id]);
    std::thread::sleep(Duration::from_millis(500));
    go(pid);
    assert!(
        wait_until(Duration::from_secs(20), || ctx.status(&id) == "stopped"),
        "the hog's container stops"
    );
    let saw = wait_until(Duration::from_secs(3), || {
        has_oom_event(&events.stdout_so_far(), &id)
    });
    let text = events.stdout_so_far();
    drop(events);
    assert!(
        saw,
        "no {{\"type\":\"oom\",\"id\":\"{id}\"}} event; events printed: {text:?}"
    );
    let oom = fs::read_to_string(memcg.join("memory.oom_control")).unwrap();
    let kills: u64 = oom
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0);
    assert!(kills >= 1, "memory.oom_control: {oom}");
    ctx.rt(&["delete", &id]).ok();
    ctx.assert_gone(&id);
}

/// The OOM event also when the container is deleted right after the kill
/// (a foreground `run`): runc is told through an eventfd at once.
#[test]
fn events_reports_oom_of_foreground_run() {
    let ctx = Ctx::new("oomrun");
    let (out, text, id) = oom_in_foreground_run(&ctx);
    out.exit(137);
    assert!(
        has_oom_event(&text, &id),
        "no {{\"type\":\"oom\"}} event; events printed: {text:?}"
    );
}

/// pids.limit: forks beyond it fail with EAGAIN ("can't fork").
#[test]
fn pids_limit_stops_forks() {
    let ctx = Ctx::new("pids");
    let mut c = ctx.config();
    c.set("linux.resources.pids", js(r#"{"limit":8}"#))
        // A subshell forks background sleeps until fork fails (and busybox
        // sh gives up); the init shell then reports how many it started
        // using builtins only (no fork left to spare).
        .sh("( i=0; while [ $i -lt 30 ]; do sleep 5 & i=$((i+1)); echo $i > /dev/shm/n; done ); \
             read n < /dev/shm/n; echo started=$n; read max < /sys/fs/cgroup/pids/pids.max; echo max=$max");
    let out = ctx.run_config(&c);
    out.ok();
    // init sh + subshell + 6 sleeps = 8.
    assert!(
        out.stdout.contains("started=6\n"),
        "six sleeps fit under pids.max=8: stdout {:?} stderr {:?}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("max=8\n"), "stdout {:?}", out.stdout);
    assert!(
        out.stderr.contains("can't fork"),
        "stderr: {:?}",
        out.stderr
    );
}

/// cpu quota: a busy loop gets throttled, and `events --stats` says so.
#[test]
fn cpu_quota_throttles() {
    let ctx = Ctx::new("cpuquota");
    let id = ctx.id();
    let mut c = ctx.config();
    c.set(
        "linux.resources.cpu",
        js(r#"{"quota":5000,"period":100000}"#),
    )
    .sh("while :; do :; done");
    let pid = run_detached(&ctx, &c, &id);
    assert_eq!(
        read_trim(&cgroup_dir(pid, "cpu").unwrap().join("cpu.cfs_quota_us")),
        "5000"
    );
    std::thread::sleep(Duration::from_millis(600));
    let out = ctx.rt(&["events", "--stats", &id]);
    out.ok();
    let v: Value = json::from_str(out.stdout.trim()).expect("events --stats JSON");
    let throttled = as_u64(jget(&v, "data.cpu.throttling.throttledPeriods"));
    let periods = as_u64(jget(&v, "data.cpu.throttling.periods"));
    assert!(
        throttled.is_some_and(|t| t > 0) && periods.is_some_and(|p| p > 0),
        "throttling reported: {}",
        out.stdout
    );
    // And the cgroup's own counters agree.
    let stat = fs::read_to_string(cgroup_dir(pid, "cpu").unwrap().join("cpu.stat")).unwrap();
    assert!(
        stat.lines()
            .any(|l| l.starts_with("nr_throttled ") && l[13..].trim() != "0"),
        "cpu.stat: {stat}"
    );
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

/// The device cgroup: the default rules allow /dev/null; a host device
/// bind-mounted in without a rule cannot be opened (EPERM); a device from
/// linux.devices with an allow rule can (containerd and docker always
/// write the rule; runc 1.1.5 adds none of its own for linux.devices).
#[test]
fn device_cgroup_allows_and_denies() {
    let ctx = Ctx::new("devices");
    let devices = Path::new("/dev/loop-control").exists() && Path::new("/dev/kmsg").exists();
    if !applies(devices, "needs /dev/loop-control and /dev/kmsg on the host") {
        return;
    }
    let mut c = ctx.config();
    c.mount("/dev/kmsg", "bind", "/dev/kmsg", &["bind"])
        .push(
            "linux.devices",
            js(r#"{"path":"/dev/loop-control","type":"c","major":10,"minor":237,"fileMode":384,"uid":0,"gid":0}"#),
        )
        .push(
            "linux.resources.devices",
            js(r#"{"allow":true,"type":"c","major":10,"minor":237,"access":"rwm"}"#),
        )
        .sh("echo x > /dev/null && echo null-ok; \
             (exec 3< /dev/kmsg) 2>&1; echo kmsg=$?; \
             (exec 3< /dev/loop-control) && echo loop-ok");
    let out = ctx.run_config(&c);
    out.ok();
    assert!(out.stdout.contains("null-ok\n"), "stdout: {:?}", out.stdout);
    assert!(
        out.stdout.contains("Operation not permitted") && out.stdout.contains("kmsg=1"),
        "opening a device without a cgroup rule fails with EPERM: {:?}",
        out.stdout
    );
    assert!(
        out.stdout.contains("loop-ok\n"),
        "a device from linux.devices with an allow rule can be opened: {:?} {:?}",
        out.stdout,
        out.stderr
    );

    // A deny rule after an allow-all rule wins for that device only.
    let mut c = ctx.config();
    c.mount("/dev/kmsg", "bind", "/dev/kmsg", &["bind"])
        .set(
            "linux.resources.devices",
            js(r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":11,"access":"rwm"}]"#),
        )
        .sh("(exec 3< /dev/kmsg) 2>&1; echo kmsg=$?; echo x > /dev/null && echo null-ok");
    let out = ctx.run_config(&c);
    out.ok();
    assert!(
        out.stdout.contains("Operation not permitted") && out.stdout.contains("kmsg=1"),
        "denied device: {:?}",
        out.stdout
    );
    assert!(out.stdout.contains("null-ok\n"), "stdout: {:?}", out.stdout);
}

/// A device the config creates (linux.devices) but whose access
/// linux.resources.devices denies cannot be opened: EPERM (runc 1.1.5).
#[test]
fn device_cgroup_deny_rule_for_created_device() {
    let ctx = Ctx::new("devdeny");
    let mut c = ctx.config();
    c.push(
        "linux.devices",
        js(r#"{"path":"/dev/loop-control","type":"c","major":10,"minor":237,"fileMode":384,"uid":0,"gid":0}"#),
    )
    .push(
        "linux.resources.devices",
        js(r#"{"allow":false,"type":"c","major":10,"minor":237,"access":"rwm"}"#),
    )
    .sh("ls -l /dev/loop-control; (exec 3< /dev/loop-control) 2>&1; echo open=$?");
    let out = ctx.run_config(&c);
    out.ok();
    assert!(
        out.stdout.contains("10,") && out.stdout.contains("237"),
        "the device node exists: {:?}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Operation not permitted") && out.stdout.contains("open=1"),
        "the deny rule holds: {:?}",
        out.stdout
    );
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let ctx = Ctx::new("update");
    let id = ctx.id();
    let mut c = sleeper(&ctx);
    c.set("linux.resources.memory", js(r#"{"limit":67108864}"#))
        .set("linux.resources.pids", js(r#"{"limit":100}"#))
        .set("linux.resources.cpu", js(r#"{"shares":1024}"#));
    let pid = run_detached(&ctx, &c, &id);
    let dir = |ctrl: &str| cgroup_dir(pid, ctrl).unwrap();

    ctx.rt(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "5",
        "--cpu-quota",
        "30000",
        &id,
    ])
    .ok();
    assert_eq!(
        read_trim(&dir("memory").join("memory.limit_in_bytes")),
        "134217728"
    );
    assert_eq!(read_trim(&dir("pids").join("pids.max")), "5");
    assert_eq!(read_trim(&dir("cpu").join("cpu.cfs_quota_us")), "30000");
    ctx.rt(&[
        "update",
        "--cpu-period",
        "60000",
        "--cpuset-cpus",
        "0",
        "--memory-reservation",
        "33554432",
        &id,
    ])
    .ok();
    assert_eq!(read_trim(&dir("cpu").join("cpu.cfs_period_us")), "60000");
    assert_eq!(read_trim(&dir("cpuset").join("cpuset.cpus")), "0");
    assert_eq!(
        read_trim(&dir("memory").join("memory.soft_limit_in_bytes")),
        "33554432"
    );

    // The new pids limit holds: init, the exec'd sh and its subshell leave
    // room for 2 sleeps.
    let out = ctx.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "( i=0; while [ $i -lt 20 ]; do sleep 3 & i=$((i+1)); echo $i > /dev/shm/n; done ); read n < /dev/shm/n; echo started=$n",
    ]);
    assert!(
        out.stdout.contains("started=2\n") && out.stderr.contains("can't fork"),
        "pids.max=5 enforced after update: {:?} {:?}",
        out.stdout,
        out.stderr
    );
    // --resources FILE
    let f = ctx.path("res.json");
    fs::write(&f, r#"{"pids":{"limit":20},"cpu":{"shares":256}}"#).unwrap();
    ctx.rt(&["update", "--resources", f.to_str().unwrap(), &id])
        .ok();
    assert_eq!(read_trim(&dir("pids").join("pids.max")), "20");
    assert_eq!(read_trim(&dir("cpu").join("cpu.shares")), "256");

    // --resources - (stdin)
    let f = ctx.path("res2.json");
    fs::write(&f, r#"{"memory":{"limit":100663296},"pids":{"limit":30}}"#).unwrap();
    ctx.rt_stdin(&f, &["update", "--resources", "-", &id]).ok();
    assert_eq!(
        read_trim(&dir("memory").join("memory.limit_in_bytes")),
        "100663296"
    );
    assert_eq!(read_trim(&dir("pids").join("pids.max")), "30");

    // Bad input: refused, nothing changes.
    let out = ctx.rt(&["update", "--memory", "lots", &id]);
    assert!(!out.status.success(), "--memory lots refused");
    let f = ctx.path("bad.json");
    fs::write(&f, "{not json").unwrap();
    let out = ctx.rt(&["update", "--resources", f.to_str().unwrap(), &id]);
    assert!(!out.status.success(), "bad JSON refused");
    assert_eq!(read_trim(&dir("pids").join("pids.max")), "30");

    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    // update of a container that is gone fails.
    let out = ctx.rt(&["update", "--pids-limit", "9", &id]);
    assert!(!out.status.success(), "update of a deleted container");
}

/// runc's flag for cpu shares is `--cpu-share` (singular).
#[test]
fn update_cpu_share_flag() {
    let ctx = Ctx::new("updateshare");
    let id = ctx.id();
    let pid = run_detached(&ctx, &sleeper(&ctx), &id);
    ctx.rt(&["update", "--cpu-share", "700", &id]).ok();
    assert_eq!(
        read_trim(&cgroup_dir(pid, "cpu").unwrap().join("cpu.shares")),
        "700"
    );
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

#[test]
fn pause_and_resume() {
    let ctx = Ctx::new("pause");
    let id = ctx.id();
    let mut c = ctx.config();
    c.sh("sleep 1000 & while :; do sleep 0.05; done");
    let pid = run_detached(&ctx, &c, &id);
    // The child sleep exists before we freeze.
    assert!(wait_until(T, || !proc_children(pid).is_empty()));
    ctx.rt(&["pause", &id]).ok();
    assert_eq!(ctx.status(&id), "paused");
    let freezer = cgroup_dir(pid, "freezer").expect("freezer cgroup");
    assert_eq!(read_trim(&freezer.join("freezer.state")), "FROZEN");
    let procs: Vec<i32> = read_trim(&freezer.join("cgroup.procs"))
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(procs.len() >= 2, "processes in the cgroup: {procs:?}");
    for p in &procs {
        // A frozen task sleeps uninterruptibly (D) or is stopped (T).
        let st = proc_state_of(*p);
        assert!(
            matches!(st, Some('D') | Some('T')),
            "process {p} is frozen: state {st:?}"
        );
    }

    // exec is refused while paused...
    let out = ctx.rt(&["exec", &id, "true"]);
    // exec's own failures exit 255, as runc's.
    out.exit(255);
    assert!(out.stderr.contains("paused"), "stderr: {}", out.stderr);
    // ...unless --ignore-paused: the process then waits, frozen, until
    // resume.
    let bg = ctx.spawn(&["exec", "--ignore-paused", &id, "echo", "after-resume"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        bg.stdout_so_far().is_empty(),
        "nothing runs while frozen: {:?}",
        bg.stdout_so_far()
    );
    ctx.rt(&["resume", &id]).ok();
    let out = bg.wait(T);
    out.ok();
    assert_eq!(out.stdout, "after-resume\n");
    assert_eq!(ctx.status(&id), "running");
    assert_eq!(read_trim(&freezer.join("freezer.state")), "THAWED");
    for p in &procs {
        assert!(
            // (a short-lived `sleep 0.05` may simply have exited)
            wait_until(T, || proc_state_of(*p).is_none_or(|s| s != 'D' && s != 'T')),
            "process {p} thawed"
        );
    }
    // resume of a running container is an error.
    ctx.rt(&["resume", &id]).fails();

    // delete --force of a paused container.
    ctx.rt(&["pause", &id]).ok();
    assert_eq!(ctx.status(&id), "paused");
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    assert!(!freezer.exists(), "freezer cgroup removed");
}

/// The keys of an object at `path` of `v`.
fn keys(v: &Value, path: &str) -> Vec<String> {
    match jget(v, path) {
        Some(Value::Object(o)) => o.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[track_caller]
fn check_stats_shape(v: &Value, id: &str, raw: &str) {
    assert_eq!(as_str(jget(v, "type")), Some("stats"), "{raw}");
    assert_eq!(as_str(jget(v, "id")), Some(id), "{raw}");
    assert!(
        as_u64(jget(v, "data.cpu.usage.total")).is_some_and(|n| n > 0),
        "data.cpu.usage.total: {raw}"
    );
    assert!(
        as_u64(jget(v, "data.memory.usage.usage")).is_some_and(|n| n > 0),
        "data.memory.usage.usage: {raw}"
    );
    assert!(
        as_u64(jget(v, "data.memory.usage.limit")).is_some(),
        "data.memory.usage.limit: {raw}"
    );
    assert!(
        as_u64(jget(v, "data.pids.current")).is_some_and(|n| n >= 1),
        "data.pids.current: {raw}"
    );
    assert_eq!(as_u64(jget(v, "data.pids.limit")), Some(50), "{raw}");
    for k in ["cpu", "memory", "pids"] {
        assert!(keys(v, "data").contains(&k.to_string()), "data.{k}: {raw}");
    }
}

/// `events --stats`: one JSON object with the keys runc prints.
#[test]
fn events_stats_shape() {
    let ctx = Ctx::new("stats");
    let id = ctx.id();
    let mut c = sleeper(&ctx);
    c.set("linux.resources.memory", js(r#"{"limit":67108864}"#))
        .set("linux.resources.pids", js(r#"{"limit":50}"#));
    run_detached(&ctx, &c, &id);
    let out = ctx.rt(&["events", "--stats", &id]);
    out.ok();
    assert_eq!(
        out.stdout.trim().lines().count(),
        1,
        "one line: {}",
        out.stdout
    );
    let ours: Value = json::from_str(out.stdout.trim()).expect("JSON");
    check_stats_shape(&ours, &id, &out.stdout);
    assert_eq!(
        as_u64(jget(&ours, "data.memory.usage.limit")),
        Some(67108864),
        "{}",
        out.stdout
    );
    // Without --stats: a stats line every interval.
    let bg = ctx.spawn(&["events", "--interval", "200ms", &id]);
    let stats_lines = |text: &str| {
        text.lines()
            .filter(|l| {
                json::from_str::<Value>(l).is_ok_and(|v| as_str(jget(&v, "type")) == Some("stats"))
            })
            .count()
    };
    let streamed = wait_until(T, || stats_lines(&bg.stdout_so_far()) >= 3);
    let text = bg.stdout_so_far();
    drop(bg);
    assert!(streamed, "three stats events within {T:?}: {text}");
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = json::from_str(l).unwrap_or_else(|_| panic!("a JSON line: {l}"));
        check_stats_shape(&v, &id, l);
    }
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    // events of a container that is gone fails.
    ctx.rt(&["events", "--stats", &id]).fails();
}

/// Every key path of a JSON value ("data.cpu.usage.total"), skipping the
/// free-form `raw` maps and empty objects/nulls (Go's omitempty).
fn key_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(o) = v {
        for (k, child) in o.iter() {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let empty = match child {
                Value::Null => true,
                Value::Object(c) => c.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if !empty {
                out.push(p.clone());
            }
            if k != "raw" {
                key_paths(child, &p, out);
            }
        }
    }
}

/// `events --stats` of skiff and of Debian's runc for the same config:
/// the keys of runc's object must all be in skiff's. Skiff checked alone
/// (compares with /usr/sbin/runc when installed).
#[test]
fn events_stats_keys_match_runc() {
    let runc = Path::new("/usr/sbin/runc");
    if !applies(is_skiff(), "compares skiff with /usr/sbin/runc")
        || !require(runc.exists(), "/usr/sbin/runc (package runc)")
    {
        return;
    }
    let ctx = Ctx::new("statsrunc");
    let mut c = sleeper(&ctx);
    c.set("linux.resources.memory", js(r#"{"limit":67108864}"#))
        .set("linux.resources.pids", js(r#"{"limit":50}"#));
    let id = ctx.id();
    run_detached(&ctx, &c, &id);
    // Some reads, so the blkio counters are not empty.
    ctx.rt(&["exec", &id, "sh", "-c", "cat /bin/busybox > /dev/null"]);
    let out = ctx.rt(&["events", "--stats", &id]);
    ctx.rt(&["delete", "--force", &id]).ok();
    out.ok();
    let ours: Value = json::from_str(out.stdout.trim()).expect("JSON");

    let rroot = ctx.path("runc-root");
    let rid = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt_at(runc, Some(&rroot), &["run", "-d", "--bundle", &b, &rid])
        .ok();
    ctx.rt_at(
        runc,
        Some(&rroot),
        &["exec", &rid, "sh", "-c", "cat /bin/busybox > /dev/null"],
    );
    let theirs_out = ctx.rt_at(runc, Some(&rroot), &["events", "--stats", &rid]);
    let del = ctx.rt_at(runc, Some(&rroot), &["delete", "--force", &rid]);
    theirs_out.ok();
    del.ok();
    let theirs: Value = json::from_str(theirs_out.stdout.trim()).expect("runc's JSON");
    check_stats_shape(&theirs, &rid, &theirs_out.stdout);

    let (mut a, mut b) = (Vec::new(), Vec::new());
    key_paths(&ours, "", &mut a);
    key_paths(&theirs, "", &mut b);
    // Not applicable here: no Intel RDT; runc reads no interfaces on v1.
    let missing: Vec<&String> = b
        .iter()
        .filter(|k| !a.contains(k))
        .filter(|k| !k.starts_with("data.intel_rdt") && !k.starts_with("data.network_interfaces"))
        .collect();
    assert!(
        missing.is_empty(),
        "skiff's events --stats lacks runc's keys {missing:?}\nskiff: {}\nrunc: {}",
        out.stdout,
        theirs_out.stdout
    );
}

/// The cgroup mount inside the container shows the container's own cgroup.
#[test]
fn cgroup_mount_shows_own_cgroup() {
    let ctx = Ctx::new("cgmount");
    let mut c = ctx.config();
    c.set("linux.resources.pids", js(r#"{"limit":33}"#))
        .set("linux.resources.memory", js(r#"{"limit":58720256}"#))
        .set("linux.resources.cpu", js(r#"{"shares":300}"#))
        .sh(
            "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes \
             /sys/fs/cgroup/cpu/cpu.shares; grep -c . /sys/fs/cgroup/pids/cgroup.procs; \
             touch /sys/fs/cgroup/pids/x 2>/dev/null && echo writable || echo read-only",
        );
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "33\n58720256\n300\n2\nread-only\n");
}

/// Without a cgroup v2 hierarchy with controllers there is nothing to test.
#[test]
fn cgroup_v2_resources() {
    let ctx = Ctx::new("cgv2");
    let v2 = cgroup_mount("");
    if !applies(v2.is_some(), "no cgroup2 hierarchy is mounted") {
        return;
    }
    let v2 = v2.unwrap();
    let controllers = fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    let why = format!(
        "the cgroup2 hierarchy at {} has controllers {:?}, not memory and pids \
         (a hybrid host with v1 controllers); nothing of linux.resources goes to v2 here",
        v2.display(),
        controllers.trim()
    );
    if !applies(has("memory") && has("pids"), &why) {
        return;
    }
    let id = ctx.id();
    let mut c = sleeper(&ctx);
    c.set("linux.resources.memory", js(r#"{"limit":67108864}"#))
        .set("linux.resources.pids", js(r#"{"limit":42}"#));
    let pid = run_detached(&ctx, &c, &id);
    let dir = cgroup_dir(pid, "").expect("v2 cgroup");
    assert_eq!(read_trim(&dir.join("memory.max")), "67108864");
    assert_eq!(read_trim(&dir.join("pids.max")), "42");
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    assert!(!dir.exists(), "v2 cgroup removed");
}

/// A create that fails after the cgroup was made removes it again.
#[test]
fn failed_create_removes_cgroup() {
    let ctx = Ctx::new("cgfail");
    let parent = unique("fail");
    let _guard = CgroupDirs {
        rel: vec![parent.clone()],
    };
    let id = ctx.id();
    let path = format!("/{parent}/{id}");
    let mut c = ctx.config();
    c.set("linux.cgroupsPath", jstr(&path))
        .args(&["/no/such/binary"]);
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    let out = ctx.rt(&["run", "--bundle", &b, &id]);
    assert_ne!(out.code(), Some(0));
    ctx.assert_gone(&id);
    let left: Vec<PathBuf> = CgroupDirs::existing(&path);
    assert!(left.is_empty(), "cgroup dirs left: {left:?}");
}
