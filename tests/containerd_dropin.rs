//! skiff's runc applet as a drop-in runtime for Debian's containerd 1.6
//! (its runc v2 shim runs `--runc-binary`): run, exec, pause/resume, kill,
//! delete through `ctr`, and nothing left behind.
//!
//! The test starts its own containerd (root, state and socket in the test
//! dir, the CRI plugin off), imports a busybox OCI image that it builds
//! from the fixture rootfs, and stops containerd again (by its pid).
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test containerd_dropin`.

mod common;
#[path = "common/containerd.rs"]
mod containerd;

use common::*;
use containerd::*;
use std::fs;
use std::path::PathBuf;

#[test]
fn containerd_runs_skiff_as_its_runc() {
    let ctx = Ctx::new("dropin");
    if !require(have_containerd(), "containerd") {
        return;
    }
    let runc = fs::canonicalize(runtime().path.parent().unwrap())
        .unwrap()
        .join(runtime().path.file_name().unwrap());
    let runc = runc.to_str().unwrap().to_string();
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    // Cgroups: containerd's default spec puts a container at /NS/ID.
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    let runc_root = ctd.runtime_root.clone();
    let runc_root_s = runc_root.display().to_string();

    ctd.import_busybox();
    ctd.track("c1");
    ctd.track("c2");

    // run --rm: output and exit status.
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        &runc,
        "--runc-root",
        &runc_root_s,
        IMAGE,
        "c1",
        "sh",
        "-c",
        "echo hello from the container; echo on-stderr >&2; exit 3",
    ]);
    assert_eq!(
        out.code(),
        Some(3),
        "exit status: {} {}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stdout.replace('\r', ""), "hello from the container\n");
    assert!(out.stderr.contains("on-stderr"), "{}", out.stderr);
    assert!(ctd.ctr(&["container", "ls", "-q"]).stdout.trim().is_empty());

    // run -d, then exec, pause, resume, kill, delete.
    ctd.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        &runc,
        "--runc-root",
        &runc_root_s,
        IMAGE,
        "c2",
        "sh",
        "-c",
        "exec sleep 1000",
    ])
    .ok();
    let pid = ctd.wait_task_status("c2", "RUNNING");
    assert!(pid > 0);
    let start = proc_starttime(pid).expect("task process");
    ctx.track_pid(pid);
    assert_eq!(proc_cmdline(pid), "sleep 1000");
    // The runtime's own state: it is the runtime under test that keeps it.
    let state = ctx.rt_noroot(&["--root", &format!("{runc_root_s}/{ns}"), "state", "c2"]);
    state.ok();
    assert!(state.stdout.contains("\"running\""), "{}", state.stdout);
    let cg = proc_cgroup(pid, "pids").expect("pids cgroup");
    assert_eq!(cg, format!("/{ns}/c2"));

    let out = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "c2",
        "sh",
        "-c",
        "echo in-exec $(cat /proc/1/cmdline | tr '\\0' ' '); exit 5",
    ]);
    assert_eq!(out.code(), Some(5), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout.replace('\r', ""), "in-exec sleep 1000\n");

    ctd.ctr(&["task", "pause", "c2"]).ok();
    ctd.wait_task_status("c2", "PAUSED");
    let freezer = cgroup_dir(pid, "freezer").unwrap();
    assert_eq!(
        fs::read_to_string(freezer.join("freezer.state"))
            .unwrap()
            .trim(),
        "FROZEN"
    );
    ctd.ctr(&["task", "resume", "c2"]).ok();
    ctd.wait_task_status("c2", "RUNNING");

    ctd.ctr(&["task", "kill", "-s", "KILL", "c2"]).ok();
    ctd.wait_task_status("c2", "STOPPED");
    assert!(wait_gone(pid, start, T), "task process gone");
    ctd.ctr(&["task", "delete", "c2"]).ok();
    assert!(ctd.task_status("c2").is_none());
    ctd.ctr(&["container", "delete", "c2"]).ok();
    assert!(ctd.ctr(&["container", "ls", "-q"]).stdout.trim().is_empty());

    // Nothing left: runtime state, cgroups, mounts, bundles.
    let left: Vec<PathBuf> = fs::read_dir(runc_root.join(&ns))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runtime state left: {left:?}");
    for id in ["c1", "c2"] {
        let dirs = CgroupDirs::existing(&format!("/{ns}/{id}"));
        assert!(dirs.is_empty(), "cgroups left: {dirs:?}");
    }
    // containerd's namespace parent (/NS) stays behind, as with runc:
    // remove it when empty (rmdir refuses otherwise).
    for hierarchy in cgroup_mounts() {
        let _ = fs::remove_dir(hierarchy.join(&ns));
    }
    let mounts: Vec<String> = mounts_under(&ctd.dir)
        .into_iter()
        .filter(|m| m.contains("/c1/") || m.contains("/c2/") || m.ends_with("/rootfs"))
        .collect();
    assert!(mounts.is_empty(), "rootfs mounts left: {mounts:?}");
    let left = ctd.stop();
    assert!(left.is_empty(), "left in containerd: {left:?}");
    assert!(
        mounts_under(&ctx.dir).is_empty(),
        "mounts under the test dir: {:?}",
        mounts_under(&ctx.dir)
    );
}
