//! Debian's `ctr` (containerd 1.6) drives the skiff daemon over gRPC
//! through the walkthrough a containerd user would: `images pull
//! --plain-http` from a local docker-registry (ctr's client-side fetch:
//! content writes, then unpack through diff and snapshots), `images
//! ls/tag/rm/export/import`, `run --rm` (output and exit code, with
//! Debian's default runtime io.containerd.runc.v2 and with
//! io.containerd.skiff.v2), `run -d` + `tasks exec` + `tasks ps` +
//! `tasks kill`, `run -t` under script(1), `containers rm` and `events`.
//!
//! Each test has its own daemon and registry (Drop guards stop them, and
//! the daemon harness kills shims and tasks left by a failure).

// The shared harness (included below) has helpers this file does not use.
#![allow(dead_code)]

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
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

include!("common/daemon.rs");

const CTR: &str = "/usr/bin/ctr";
const RUNC_SHIM: &str = "/usr/bin/containerd-shim-runc-v2";

/// Debian's ctr against the daemon in its namespace: (exit code, stdout,
/// stderr).
fn dctr(d: &Daemon, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(CTR)
        .args(["-a", &d.address(), "-n", &d.ns, "--timeout", "60s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ctr");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn dctr_ok(d: &Daemon, args: &[&str]) -> String {
    let (code, out, err) = dctr(d, args);
    assert_eq!(
        code,
        Some(0),
        "ctr {args:?}: {err}\nstdout: {out}\ndaemon log: {}",
        d.log()
    );
    out
}

fn prerequisites() -> bool {
    tool(CTR, "containerd")
        && tool("/usr/bin/script", "bsdutils")
        && tool("/bin/busybox", "busybox-static")
}

#[test]
fn debian_ctr_pulls_tags_exports_and_imports() {
    if !prerequisites() {
        return;
    }
    let work = TempDir::new("debian-ctr");
    let Some((_reg, image)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    let out = dctr_ok(&d, &["images", "pull", "--plain-http", &image]);
    assert!(out.contains("unpacking linux/"), "{out}");
    // Unpacked by ctr through diff Apply and snapshot Commit: the chain
    // is a committed snapshot of the default snapshotter.
    let snaps = dctr_ok(&d, &["snapshots", "ls"]);
    assert!(
        snaps
            .lines()
            .skip(1)
            .any(|l| l.ends_with("Committed ") || l.trim_end().ends_with("Committed")),
        "{snaps}"
    );
    let ls = dctr_ok(&d, &["images", "ls"]);
    let row = ls
        .lines()
        .find(|l| l.starts_with(&image))
        .unwrap_or_else(|| panic!("{image} not listed: {ls}"));
    assert!(
        row.contains("application/vnd.oci.image.manifest.v1+json"),
        "{row}"
    );
    assert!(row.contains("linux/amd64"), "{row}");

    dctr_ok(&d, &["images", "tag", &image, "example.test/bb:two"]);
    let q = dctr_ok(&d, &["images", "ls", "-q"]);
    let mut names: Vec<&str> = q.lines().collect();
    names.sort();
    let mut want = vec![image.as_str(), "example.test/bb:two"];
    want.sort();
    assert_eq!(names, want);

    // Export both names, drop them, import them back.
    let tar = d.dir.join("bb.tar");
    dctr_ok(
        &d,
        &[
            "images",
            "export",
            tar.to_str().unwrap(),
            &image,
            "example.test/bb:two",
        ],
    );
    dctr_ok(&d, &["images", "rm", &image, "example.test/bb:two"]);
    assert_eq!(dctr_ok(&d, &["images", "ls", "-q"]), "");
    let out = dctr_ok(&d, &["images", "import", tar.to_str().unwrap()]);
    assert!(out.contains("unpacking"), "{out}");
    let q = dctr_ok(&d, &["images", "ls", "-q"]);
    let mut names: Vec<&str> = q.lines().collect();
    names.sort();
    assert_eq!(names, want);
    // The imported image runs (its snapshot chain is there again).
    let (code, out, err) = dctr(
        &d,
        &[
            "run",
            "--rm",
            "--runtime",
            "io.containerd.skiff.v2",
            "example.test/bb:two",
            "imp",
            "echo",
            "imported",
        ],
    );
    assert_eq!(code, Some(0), "{err}\n{}", d.log());
    assert_eq!(out, "imported\n");
    dctr_ok(&d, &["images", "rm", &image, "example.test/bb:two"]);
    d.assert_clean(true);
}

/// `ctr run --rm` with `runtime`: the output and the exit code pass through.
fn run_rm(d: &Daemon, image: &str, runtime: Option<&str>, id: &str) {
    let mut args = vec!["run", "--rm"];
    if let Some(r) = runtime {
        args.extend(["--runtime", r]);
    }
    args.extend([image, id, "sh", "-c", "echo out-$0; echo err >&2; exit 7"]);
    let (code, out, err) = dctr(d, &args);
    assert_eq!(code, Some(7), "ctr {args:?}: {err}\n{}", d.log());
    assert_eq!(out, format!("out-sh\n"));
    assert!(err.contains("err\n"), "{err}");
    assert_eq!(dctr_ok(d, &["containers", "ls", "-q"]), "");
}

#[test]
fn debian_ctr_runs_execs_kills_and_removes() {
    if !prerequisites() || !tool(RUNC_SHIM, "containerd") {
        return;
    }
    let work = TempDir::new("debian-ctr");
    let Some((_reg, image)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    dctr_ok(&d, &["images", "pull", "--plain-http", &image]);

    // Debian's ctr asks for io.containerd.runc.v2 unless told otherwise:
    // the daemon runs containerd-shim-runc-v2 for it.
    run_rm(&d, &image, None, "rm-runc");
    run_rm(&d, &image, Some("io.containerd.skiff.v2"), "rm-skiff");

    // Events of the run, streamed while it happens.
    let mut events = Command::new(CTR)
        .args(["-a", &d.address(), "events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = events.stdout.take().unwrap();
    let events = Kill(events);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    dctr_ok(&d, &["run", "-d", &image, "bg", "sleep", "300"]);
    let ls = dctr_ok(&d, &["tasks", "ls"]);
    let row = ls
        .lines()
        .find(|l| l.starts_with("bg "))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(row.ends_with("RUNNING"), "{row}");
    let pid: i32 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    let (code, out, err) = dctr(
        &d,
        &[
            "tasks",
            "exec",
            "--exec-id",
            "e1",
            "bg",
            "sh",
            "-c",
            "echo in-$0; exit 5",
        ],
    );
    assert_eq!(code, Some(5), "{err}\n{}", d.log());
    assert_eq!(out, "in-sh\n");

    let ps = dctr_ok(&d, &["tasks", "ps", "bg"]);
    assert!(ps.starts_with("PID"), "{ps}");
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{ps}"
    );

    // sleep as pid 1 ignores SIGTERM (as under containerd): SIGKILL.
    dctr_ok(&d, &["tasks", "kill", "--signal", "SIGKILL", "bg"]);
    d.wait_for(10, "bg to stop", || {
        dctr_ok(&d, &["tasks", "ls"])
            .lines()
            .any(|l| l.starts_with("bg ") && l.trim_end().ends_with("STOPPED"))
    });
    // A container whose task is stopped but not deleted is refused, as
    // containerd refuses it; deleting the task first lets it go.
    dctr_ok(&d, &["tasks", "rm", "bg"]);
    dctr_ok(&d, &["containers", "rm", "bg"]);
    assert_eq!(dctr_ok(&d, &["containers", "ls", "-q"]), "");

    // The lifecycle as ctr events prints it: create, start, exec, exit,
    // delete of bg, in that order.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => seen.push(l),
            Err(_)
                if seen
                    .iter()
                    .any(|l| l.contains("/tasks/delete") && l.contains("\"bg\"")) =>
            {
                break
            }
            Err(_) => {}
        }
    }
    drop(events);
    let topics: Vec<&str> = seen
        .iter()
        .filter(|l| l.contains(&d.ns) && l.contains("\"bg\""))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
        .collect();
    let order = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/exit",
        "/tasks/delete",
    ];
    let mut at = 0;
    for t in &topics {
        if at < order.len() && *t == order[at] {
            at += 1;
        }
    }
    assert_eq!(at, order.len(), "events of bg: {topics:?}\nall: {seen:#?}");

    // A terminal: ctr run -t under script(1) gets a pty in the container.
    let cmd = format!(
        "{CTR} -a {} -n {} run --rm -t {image} tty sh -c '/bin/busybox tty; exit 6'",
        d.address(),
        d.ns
    );
    let out = Command::new("/usr/bin/script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{text}\n{}", d.log());
    // As under containerd: the pty echoes a NUL, then CR CR LF.
    assert!(text.contains("/dev/pts/0\r"), "{text:?}");

    dctr_ok(&d, &["images", "rm", &image]);
    d.assert_clean(true);
}
