//! skiff's daemon under load and with another runtime: 50 containers run
//! at once through ctr (`run -d` from 50 threads, an exec, kill all, rm
//! all — all succeed, nothing left); List and Metrics with shims that do
//! not answer (asked together, not one after another); event subscribers
//! that leave take their thread with them; and containerd's own runc shim
//! (`--runtime io.containerd.runc.v2`) runs containers for skiff's daemon.

#![allow(dead_code)] // the shared harness has more than this file uses

#[path = "fetch_support/mod.rs"]
mod support;

use prost::Message;
use skiff::daemon::spec::{self, SpecOptions, SPEC_TYPE_URL};
use skiff::image::oci::{self, Document};
use skiff::proto::services::{
    containers as pc, content as pct, images as pi, pull as pp, snapshots as ps, tasks as pt,
};
use skiff::proto::task as st;
use skiff::proto::types::{Any, Empty};
use skiff::ttrpc::{Client, Code, Status};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

include!("common/daemon.rs");

/// `f(i)` for 0..n, each on its own thread, all started together; the
/// indexes for which it failed, with why.
fn all_at_once(n: usize, f: impl Fn(usize) -> Result<(), String> + Sync) -> Vec<String> {
    let go = std::sync::Barrier::new(n);
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for i in 0..n {
            let (go, failed, f) = (&go, &failed, &f);
            s.spawn(move || {
                go.wait();
                if let Err(e) = f(i) {
                    failed.lock().unwrap().push(format!("{i}: {e}"));
                }
            });
        }
    });
    failed.into_inner().unwrap()
}

fn ctr_ok(d: &Daemon, args: &[&str]) -> Result<(), String> {
    let o = d.ctr(args);
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("ctr {args:?}: {} {}", o.status, stderr(&o)))
    }
}

/// The ids in one Metrics call for every task of the namespace.
fn all_metrics(d: &Daemon) -> Vec<String> {
    let m: pt::MetricsResponse = call(
        &d.client(),
        &d.ns,
        pt::SERVICE,
        "Metrics",
        &pt::MetricsRequest::default(),
    )
    .expect("metrics");
    let mut ids: Vec<String> = m.metrics.into_iter().map(|m| m.id).collect();
    ids.sort();
    ids
}

fn thread_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).unwrap().count()
}

const N: usize = 50;

#[test]
fn fifty_containers_at_once() {
    let work = TempDir::new("scale");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    d.ok(&["i", "pull", "--plain-http", &r]);
    let id = |i: usize| format!("s{i:02}");

    let failed = all_at_once(N, |i| {
        ctr_ok(&d, &["run", "-d", &r, &id(i), "sleep", "1000"])
    });
    assert!(failed.is_empty(), "run -d failed: {failed:#?}\n{}", d.log());
    let ts = tasks(&d);
    assert_eq!(ts.len(), N);
    assert!(ts.iter().all(|t| t.2 == "RUNNING"), "{ts:?}");
    assert_eq!(d.ids("c").len(), N);
    assert_eq!(d.shims().len(), N, "one shim per container");

    assert_eq!(
        d.ok(&["t", "exec", "--exec-id", "e", &id(7), "echo", "from-7"]),
        "from-7\n"
    );
    // Metrics of all of them in one call (ctr asks for one task).
    assert_eq!(all_metrics(&d).len(), N);

    let failed = all_at_once(N, |i| ctr_ok(&d, &["t", "kill", "-s", "KILL", &id(i)]));
    assert!(failed.is_empty(), "t kill failed: {failed:#?}");
    d.wait_for(20, "all to stop", || {
        tasks(&d).iter().all(|t| t.2 == "STOPPED")
    });
    let failed = all_at_once(N, |i| {
        ctr_ok(&d, &["t", "rm", &id(i)])?;
        ctr_ok(&d, &["c", "rm", &id(i)])
    });
    assert!(failed.is_empty(), "rm failed: {failed:#?}\n{}", d.log());
    for (_, pid, _) in ts {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} still there"
        );
    }
    d.assert_clean(false);
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

#[test]
fn list_and_metrics_ask_stuck_shims_together() {
    let work = TempDir::new("scale-stuck");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    d.ok(&["i", "pull", "--plain-http", &r]);
    let ids = ["a", "b", "c", "d"];
    for id in ids {
        d.ok(&["run", "-d", &r, id, "sleep", "1000"]);
    }
    let shims: Vec<i32> = ids
        .iter()
        .map(|id| {
            let f = d.bundle(id).join("shim.pid");
            fs::read_to_string(f).unwrap().trim().parse().unwrap()
        })
        .collect();
    // Three shims stop answering (each call to them waits for the
    // daemon's 10 s limit); the fourth still does.
    struct Cont(Vec<i32>);
    impl Drop for Cont {
        fn drop(&mut self) {
            for p in &self.0 {
                unsafe { libc::kill(*p, libc::SIGCONT) };
            }
        }
    }
    let stopped = Cont(shims[..3].to_vec());
    for p in &stopped.0 {
        unsafe { libc::kill(*p, libc::SIGSTOP) };
    }
    let t0 = Instant::now();
    let ts = tasks(&d);
    let list = t0.elapsed();
    assert_eq!(ts.len(), 4, "{ts:?}");
    assert_eq!(ts[3].2, "RUNNING", "{ts:?}");
    assert!(ts[..3].iter().all(|t| t.2 == "UNKNOWN"), "{ts:?}");
    let t0 = Instant::now();
    let m = all_metrics(&d);
    let metrics = t0.elapsed();
    // The one that answers is there; the others do not hide it.
    assert_eq!(m, ["d"]);
    assert!(
        list < Duration::from_secs(20) && metrics < Duration::from_secs(20),
        "one shim after the other: list {list:?}, metrics {metrics:?}"
    );
    drop(stopped);
    for id in ids {
        d.ok(&["t", "kill", "-s", "KILL", id]);
    }
    d.wait_for(10, "all to stop", || {
        tasks(&d).iter().all(|t| t.2 == "STOPPED")
    });
    for id in ids {
        d.ok(&["t", "rm", id]);
        d.ok(&["c", "rm", id]);
    }
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

#[test]
fn subscribers_that_leave_take_their_thread() {
    let d = Daemon::new();
    // The namespace exists once something was made in it.
    d.ok(&["ns", "create", &d.ns]);
    let pid = d.pid();
    let idle = thread_count(pid);
    // Filters nothing matches: no event would ever tell the daemon that
    // their clients are gone.
    let subs: Vec<_> = (0..5)
        .map(|i| d.subscribe(&[format!("topic==\"/never/{i}\"")]))
        .collect();
    d.wait_for(10, "the subscriptions to be served", || {
        thread_count(pid) >= idle + 5
    });
    drop(subs);
    d.wait_for(10, "the subscribers' threads to end", || {
        thread_count(pid) <= idle
    });
}

#[test]
fn containerds_runc_shim_runs_containers_for_skiff() {
    if !require(
        Path::new("/usr/bin/containerd-shim-runc-v2").exists(),
        "/usr/bin/containerd-shim-runc-v2 (package containerd)",
    ) || !require(
        Path::new("/usr/sbin/runc").exists(),
        "/usr/sbin/runc (package runc)",
    ) {
        return;
    }
    let work = TempDir::new("scale-runc");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::with(DaemonOpts {
        env: vec![(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        )],
        ..Default::default()
    });
    d.ok(&["i", "pull", "--plain-http", &r]);
    let runtime = "io.containerd.runc.v2";
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            &r,
            "once",
            "echo",
            "via runc"
        ]),
        "via runc\n"
    );
    d.ok(&["run", "-d", "--runtime", runtime, &r, "bg", "sleep", "1000"]);
    assert!(d.ok(&["c", "ls"]).contains(runtime));
    let shim = d.shims();
    assert_eq!(shim.len(), 1, "{shim:?}");
    assert_eq!(
        fs::read_link(format!("/proc/{}/exe", shim[0])).unwrap(),
        Path::new("/usr/bin/containerd-shim-runc-v2")
    );
    assert_eq!(
        d.ok(&[
            "t",
            "exec",
            "--exec-id",
            "e1",
            "bg",
            "sh",
            "-c",
            "echo in $(id -u)"
        ]),
        "in 0\n"
    );
    d.ok(&["t", "kill", "-s", "KILL", "bg"]);
    d.wait_for(10, "bg to stop", || tasks(&d)[0].2 == "STOPPED");
    d.ok(&["t", "rm", "bg"]);
    d.ok(&["c", "rm", "bg"]);
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}
