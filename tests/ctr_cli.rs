//! The `ctr` applet: containerd's ctr command line against skiff's daemon.
//!
//! First what needs no daemon (help, bad flags, unknown commands, a dead
//! address: ctr's messages and exit codes), then the README walkthrough
//! against a daemon the test starts (own root, state and socket) pulling
//! busybox from a docker-registry on 127.0.0.1: pull, `run --rm` output
//! and exit status, `run -d` + `t exec` + `t kill` + `t rm` + `c rm`,
//! `i export`, `i tag`, `i rm`, `i import`, `run -t` under script(1) — and nothing left behind.
//!
//! Shapes recorded from containerd 1.6.20's ctr (Debian 12):
//! - `ctr bogus`: stdout `No help topic for 'bogus'`, exit 3.
//! - `ctr i ls --bogus`: stdout `Incorrect Usage: flag provided but not
//!   defined: -bogus` + the command's help; stderr `ctr: flag provided but
//!   not defined: -bogus`; exit 1.
//! - `ctr t exec ID CMD` without --exec-id: help, then `ctr: Required flag
//!   "exec-id" not set`, exit 1.
//! - `ctr c ls`: `CONTAINER    IMAGE    RUNTIME    ` (tabwriter 4/8/4).
//! - `ctr t ls`: `TASK    PID      STATUS    ` then `ID      PID      RUNNING`.
//! - missing image: `ctr: image "x": not found`; missing container:
//!   `ctr: container "x" in namespace "NS": not found`; `i tag` onto an
//!   existing name: `ctr: image "x": already exists`; `i rm` of a missing
//!   name: a warning, exit 0. All errors exit 1.

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
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn ctr_at(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin.join("ctr"))
        .args(args)
        .env_remove("CONTAINERD_ADDRESS")
        .env_remove("CONTAINERD_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .expect("run ctr")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn help_lists_the_commands() {
    let dir = TempDir::new("ctr-help");
    let bin = applet_links(&dir);
    let o = ctr_at(&bin, &["--help"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    for c in [
        "containers, c, container",
        "images, image, i",
        "tasks, t, task",
        "namespaces, namespace, ns",
        "run ",
        "--address value, -a value",
        "--namespace value, -n value",
    ] {
        assert!(out.contains(c), "help lacks {c:?}:\n{out}");
    }
    // A group's help lists its subcommands.
    let o = ctr_at(&bin, &["tasks", "--help"]);
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).contains("delete, del, remove, rm"),
        "{}",
        stdout(&o)
    );
    // A command's help lists its flags (Go's single-dash forms accepted).
    let o = ctr_at(&bin, &["run", "-help"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("--mount value"), "{}", stdout(&o));
}

#[test]
fn usage_errors_as_ctr() {
    let dir = TempDir::new("ctr-usage");
    let bin = applet_links(&dir);

    let o = ctr_at(&bin, &["bogus"]);
    assert_eq!(code(&o), 3);
    assert_eq!(stdout(&o), "No help topic for 'bogus'\n");

    let o = ctr_at(&bin, &["i", "bogus"]);
    assert_eq!(code(&o), 3);
    assert_eq!(stdout(&o), "No help topic for 'bogus'\n");

    let o = ctr_at(&bin, &["i", "ls", "--bogus"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).starts_with("Incorrect Usage: flag provided but not defined: -bogus\n"));
    assert!(stdout(&o).contains("ctr images list - list images known to containerd"));
    assert_eq!(stderr(&o), "ctr: flag provided but not defined: -bogus\n");

    let o = ctr_at(&bin, &["--bogus", "ls"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "ctr: flag provided but not defined: -bogus\n");

    let o = ctr_at(&bin, &["t", "exec", "c1", "true"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("--exec-id value"), "{}", stdout(&o));
    assert_eq!(stderr(&o), "ctr: Required flag \"exec-id\" not set\n");

    let o = ctr_at(&bin, &["run", "--rm", "-d", "img", "id"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("cannot be specified together"),
        "{}",
        stderr(&o)
    );

    let o = ctr_at(&bin, &["--timeout", "soon", "version"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("-timeout"), "{}", stderr(&o));

    let o = ctr_at(&bin, &["run", "--memory-limit"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "ctr: flag needs an argument: -memory-limit\n");
}

#[test]
fn dead_address_names_it() {
    let dir = TempDir::new("ctr-dial");
    let bin = applet_links(&dir);
    let sock = dir.s("none.sock");
    // Both flag forms Go accepts, and the environment variable.
    let eq = format!("--address={sock}");
    for args in [
        vec!["-a", sock.as_str(), "c", "ls"],
        vec![eq.as_str(), "c", "ls"],
    ] {
        let o = ctr_at(&bin, &args);
        assert_eq!(code(&o), 1);
        assert_eq!(stdout(&o), "");
        let e = stderr(&o);
        assert!(
            e.starts_with(&format!("ctr: failed to dial \"{sock}\"")),
            "{e}"
        );
        assert!(e.contains("no such file or directory"), "{e}");
    }
    let o = Command::new(bin.join("ctr"))
        .args(["t", "ls"])
        .env("CONTAINERD_ADDRESS", &sock)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains(&sock), "{}", stderr(&o));
}

// ---- against a daemon ---------------------------------------------------

// The daemon under test (tests/common/daemon.rs): its own root, state,
// socket and namespace; dropping it kills every task left in its
// namespace, stops it by pid and removes what it left (shims, mounts,
// cgroups), also after a failed assertion.
include!("common/daemon.rs");

/// A busybox image with `sleep` too, pushed as `REPO:latest`.
fn publish_busybox(reg: &Registry, work: &TempDir) -> String {
    let mut entries = busybox_entries();
    entries.push(hardlink("bin/sleep", "bin/busybox"));
    entries.push(hardlink("bin/stty", "bin/busybox"));
    let img = ImageSpec::new(vec![Layer {
        entries,
        comp: Comp::Gzip,
    }]);
    let layout = work.join("layout");
    write_layout(&layout, "latest", &[img]);
    let reference = format!("{}/library/busybox:latest", reg.host());
    push(&layout, "latest", &reference, &[]);
    reference
}

/// Fifo directories under ctr's default root holding fifos of `ids` (other
/// tests may have their own there at the same time).
fn fifo_leftovers(ids: &[&str]) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for dir in fs::read_dir("/run/skiff/fifo")
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if ids.iter().any(|id| name.starts_with(&format!("{id}-std"))) {
                left.push(f.path());
            }
        }
    }
    left
}

#[test]
fn walkthrough_against_the_daemon() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    if !tool("/usr/bin/script", "bsdutils") {
        return;
    }
    let work = TempDir::new("ctr-walk-src");
    let r = publish_busybox(&reg, &work);
    let d = Daemon::in_dir(TempDir::new("ctr-walk"), DaemonOpts::default());

    // Pull: plain lines when not on a terminal, then the final table.
    let out = d.ok(&["images", "pull", "--plain-http", &r]);
    assert!(out.contains(&format!("{r}:")), "{out}");
    assert!(out.contains("layer-sha256:"), "{out}");
    assert!(out.contains("elapsed: "), "{out}");
    assert!(out.contains("unpacking linux/amd64 sha256:"), "{out}");

    let ls = d.ok(&["i", "ls"]);
    let mut lines = ls.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("REF                                    TYPE"),
        "{ls}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], r);
    assert_eq!(row[1], "application/vnd.oci.image.manifest.v1+json");
    assert!(row[2].starts_with("sha256:"), "{ls}");
    assert_eq!(row[4], "MiB");
    assert_eq!(row[5], "linux/amd64");
    assert_eq!(d.ok(&["i", "ls", "-q"]), format!("{r}\n"));

    // The store's tables, shaped as ctr's (tabwriter layouts recorded).
    let snaps = d.ok(&["snapshots", "ls"]);
    let mut lines = snaps.lines();
    assert_eq!(
        lines.next(),
        Some(format!("KEY{}PARENT KIND      ", " ".repeat(69)).as_str()),
        "{snaps}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("sha256:") && row.ends_with("        Committed "),
        "{snaps}"
    );
    let content = d.ok(&["content", "ls"]);
    // Tab padding (tabwriter 1/8/1/'\t'): the digest column is 72 wide.
    assert!(
        content.starts_with("DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t"),
        "{content}"
    );
    assert_eq!(
        content.lines().count(),
        4,
        "manifest, config, layer: {content}"
    );
    for row in content.lines().skip(1) {
        let cells: Vec<&str> = row.split('\t').filter(|c| !c.is_empty()).collect();
        assert!(
            cells[0].starts_with("sha256:") && cells[1].ends_with('B'),
            "{row}"
        );
    }
    assert!(d
        .ok(&["leases", "ls"])
        .starts_with("ID CREATED AT LABELS \n"));
    let v = d.ok(&["version"]);
    assert!(
        v.starts_with("Client:\n  Version:  ") && v.contains("\nServer:\n  Version:  "),
        "{v}"
    );
    let extra = format!("{}-extra", d.ns);
    assert_eq!(d.ok(&["ns", "create", &extra, "a=b"]), "");
    d.fails(
        &["ns", "create", &extra],
        1,
        &format!("ctr: namespace \"{extra}\": already exists\n"),
    );
    let nsl = d.ok(&["ns", "ls"]);
    assert!(nsl.starts_with("NAME"), "{nsl}");
    assert!(
        nsl.lines()
            .any(|l| l.starts_with(&extra) && l.trim_end().ends_with("a=b")),
        "{nsl}"
    );
    assert_eq!(d.ok(&["ns", "rm", &extra]), format!("{extra}\n"));
    assert!(!d.ok(&["ns", "ls", "-q"]).lines().any(|l| l == extra));

    // run --rm: output and exit status through, nothing kept; `events`
    // sees the task's life as ctr prints it.
    let mut events = d
        .ctr_cmd(&["events"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Subscribe has no "subscribed" answer: give it time.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(d.ok(&["run", "--rm", &r, "r1", "echo", "hi"]), "hi\n");
    std::thread::sleep(Duration::from_millis(300));
    let _ = events.kill();
    let seen = stdout(&events.wait_with_output().unwrap());
    for topic in [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
    ] {
        let line = seen
            .lines()
            .find(|l| l.contains(topic))
            .unwrap_or_else(|| panic!("no {topic} event in:\n{seen}"));
        assert!(
            line.contains(&format!(
                " +0000 UTC {} {topic} {{\"container_id\":\"r1\"",
                d.ns
            )),
            "{line}"
        );
    }
    let o = d.ctr(&[
        "run",
        "--rm",
        &r,
        "r2",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    assert_eq!(d.ok(&["c", "ls"]), "CONTAINER    IMAGE    RUNTIME    \n");
    // Options reach the spec: env, cwd, user.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--env",
            "A=b",
            "--cwd=/tmp",
            "--user",
            "33:34",
            &r,
            "r3",
            "sh",
            "-c",
            "echo $A $(pwd) $(id -u):$(id -g)"
        ]),
        "b /tmp 33:34\n"
    );

    // Signals to ctr reach the process (ctr forwards them), once its
    // trap is set (it says "ready").
    let mut child = d
        .ctr_cmd(&[
            "run",
            "--rm",
            &r,
            "sig1",
            "sh",
            "-c",
            "trap 'echo got; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let first = rx.recv_timeout(Duration::from_secs(30));
    if first.as_deref() != Ok("ready") {
        let _ = child.kill();
        panic!("sig1 did not get ready: {first:?}");
    }
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    assert_eq!(reader.join().unwrap(), "ready\ngot\n");

    // c create + t start: attached, exit status through, task deleted.
    d.ok(&["c", "create", &r, "s1", "sh", "-c", "echo started; exit 2"]);
    let o = d.ctr(&["t", "start", "s1"]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (2, "started\n"),
        "{}",
        stderr(&o)
    );
    assert!(d.ids("t").is_empty());
    d.ok(&["c", "rm", "s1"]);

    // Bad input: a missing image, a duplicate id, a bad mount; nothing made.
    d.fails(
        &["run", "--rm", "nosuch:latest", "x", "true"],
        1,
        "ctr: image \"nosuch:latest\": not found\n",
    );
    d.fails(
        &["run", "--rm", &r],
        1,
        "ctr: container id must be provided\n",
    );
    let o = d.ctr(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,src=/tmp",
        &r,
        "m1",
        "true",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("dst"), "{}", stderr(&o));
    assert!(d.ids("c").is_empty());

    // run -d, then exec, ps, kill, rm.
    assert_eq!(d.ok(&["run", "-d", &r, "d1", "sleep", "1000"]), "");
    let o = d.ctr(&["run", "-d", &r, "d1", "sleep", "1000"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("\"d1\": already exists"),
        "{}",
        stderr(&o)
    );
    let cls = d.ok(&["c", "ls"]);
    assert_eq!(
        cls,
        format!(
            "CONTAINER    IMAGE{}RUNTIME                   \nd1           {r}    io.containerd.skiff.v2    \n",
            " ".repeat(r.len() - 1)
        )
    );
    let tls = d.ok(&["t", "ls"]);
    let task: Vec<&str> = tls.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((task[0], task[2]), ("d1", "RUNNING"), "{tls}");
    let pid: i32 = task[1].parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(d.ok(&["t", "ps", "d1"]).contains(&pid.to_string()));
    assert_eq!(
        d.ok(&["t", "exec", "--exec-id", "e1", "d1", "echo", "hello"]),
        "hello\n"
    );
    assert_eq!(
        d.ok(&[
            "t",
            "exec",
            "--exec-id",
            "e3",
            "--cwd",
            "/etc",
            "--user",
            "33:34",
            "d1",
            "sh",
            "-c",
            "echo $(pwd) $(id -u):$(id -g)"
        ]),
        "/etc 33:34\n"
    );
    let o = d.ctr(&["t", "exec", "--exec-id", "e2", "d1", "sh", "-c", "exit 4"]);
    assert_eq!(code(&o), 4);
    d.fails(
        &["t", "kill", "nosuch"],
        1,
        &format!(
            "ctr: container \"nosuch\" in namespace \"{}\": not found\n",
            d.ns
        ),
    );
    let o = d.ctr(&["t", "rm", "d1"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("task must be stopped before deletion: running"),
        "{}",
        stderr(&o)
    );
    let o = d.ctr(&["c", "rm", "d1"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("cannot delete a non stopped container"),
        "{}",
        stderr(&o)
    );
    // Metrics: ctr's two tables, the cgroup v1 rows.
    let m = d.ok(&["t", "metrics", "d1"]);
    let lines: Vec<&str> = m.lines().collect();
    assert!(lines[0].starts_with("ID    TIMESTAMP "), "{m}");
    assert!(
        lines[1].starts_with("d1    ") && lines[1].contains(" +0000 UTC"),
        "{m}"
    );
    assert_eq!(lines[2], "", "{m}");
    assert!(
        lines[3].starts_with("METRIC                   VALUE"),
        "{m}"
    );
    for row in [
        "memory.usage_in_bytes",
        "cpuacct.usage_percpu",
        "pids.current             1 ",
    ] {
        assert!(m.contains(row), "{row:?} missing:\n{m}");
    }
    d.ok(&["t", "kill", "-s", "KILL", "d1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.ok(&["t", "ls"]).contains("STOPPED") {
        assert!(Instant::now() < deadline, "d1 did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
    );
    let o = d.ctr(&["t", "rm", "d1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("exit with non-zero exit code 137"),
        "{}",
        stderr(&o)
    );
    d.ok(&["c", "rm", "d1"]);
    assert!(d.ids("c").is_empty() && d.ids("t").is_empty());

    // run -t under script(1): a real terminal, its size, the exit status.
    let log = work.join("typescript");
    let ctr_cmd = format!(
        "stty cols 91 rows 33; {} -a {} -n {} run --rm -t {r} tt sh",
        d.dir.join("bin/ctr").display(),
        d.address(),
        d.ns
    );
    let mut child = Command::new("script")
        .args(["-qec", &ctr_cmd])
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stdin
            .write_all(b"stty size; [ -t 0 ] && echo tty-yes; exit 5\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("run -t hung: {}", read(&log));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let typescript = read(&log);
    assert_eq!(status.code(), Some(5), "{typescript}");
    assert!(typescript.contains("33 91"), "{typescript}");
    assert!(typescript.contains("tty-yes"), "{typescript}");

    // Export: an OCI archive skopeo reads (and Docker's manifest.json).
    let archive = work.s("export.tar");
    assert_eq!(d.ok(&["i", "export", &archive, &r]), "");
    let digest = d
        .ok(&["i", "ls"])
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let inspect = run(Command::new("skopeo").args(["inspect", &format!("oci-archive:{archive}")]));
    assert!(inspect.contains(&digest), "{inspect}");
    let inspect =
        run(Command::new("skopeo").args(["inspect", &format!("docker-archive:{archive}")]));
    assert!(inspect.contains("\"Layers\""), "{inspect}");
    d.fails(
        &["i", "export", &work.s("x.tar"), "nosuch:1"],
        1,
        "ctr: image \"nosuch:1\": not found\n",
    );

    // Tags.
    let t2 = format!("{}/library/busybox:t2", reg.host());
    assert_eq!(d.ok(&["i", "tag", &r, &t2]), format!("{t2}\n"));
    d.fails(
        &["i", "tag", &r, &t2],
        1,
        &format!("ctr: image \"{t2}\": already exists\n"),
    );
    assert_eq!(d.ok(&["i", "ls", "-q"]), format!("{r}\n{t2}\n"));
    let o = d.ctr(&["i", "rm", &t2, "nosuch"]);
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o), format!("{t2}\n"));
    assert!(
        stderr(&o).contains("level=warning msg=\"nosuch: image not found\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.ok(&["i", "rm", "--sync", &r]), format!("{r}\n"));
    assert_eq!(d.ok(&["i", "ls", "-q"]), "");
    // With --sync the image's blobs and snapshots are collected too.
    assert_eq!(d.ok(&["content", "ls", "-q"]), "");
    assert_eq!(d.ok(&["snapshots", "ls"]).lines().count(), 1);

    // Import what was exported into the emptied store: the blobs go in
    // through Content.Write, the image runs again.
    let o = d.ok(&["i", "import", &archive]);
    assert_eq!(o, format!("unpacking {r} ({digest})...done\n"));
    assert_eq!(d.ok(&["i", "ls", "-q"]), format!("{r}\n"));
    assert_eq!(d.ok(&["content", "ls", "-q"]).lines().count(), 3);
    assert_eq!(
        d.ok(&["run", "--rm", &r, "imp1", "echo", "imported"]),
        "imported\n"
    );
    let o = d.ctr(&["i", "import", &work.s("none.tar")]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("none.tar"), "{}", stderr(&o));
    d.ok(&["i", "rm", "--sync", &r]);
    assert_eq!(d.ok(&["content", "ls", "-q"]), "");

    // Nothing left: containers, tasks, fifos.
    assert!(d.ids("c").is_empty() && d.ids("t").is_empty());
    let left = fifo_leftovers(&[
        "imp1", "r1", "r2", "r3", "m1", "sig1", "s1", "tt", "e1", "e2", "e3",
    ]);
    assert!(left.is_empty(), "fifos left: {left:?}");
    let left: Vec<u32> = processes_naming(&d.address())
        .into_iter()
        .filter(|&p| Some(p) != d.child.as_ref().map(|c| c.id()))
        .collect();
    assert!(
        left.is_empty(),
        "processes left naming the daemon: {left:?}"
    );
}

// ---- archives, users, attach, ^C (no registry needed) ----------------------

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The busybox layer of these tests (with sleep), uncompressed.
fn busybox_layer() -> Vec<u8> {
    let mut entries = busybox_entries();
    entries.push(hardlink("bin/sleep", "bin/busybox"));
    tar(&entries)
}

fn image_config(layer: &[u8]) -> String {
    format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        sha256_hex(layer)
    )
}

fn put(b: &mut tar::Builder<fs::File>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).unwrap();
}

/// The old `docker save` layout (docker < 25): manifest.json,
/// `<config id>.json`, `<layer id>/layer.tar` (+ VERSION, json), no
/// index.json. The second image's layer is a symlink to the first's, as
/// docker writes shared layers. Returns the manifest digest containerd's
/// import makes of the first image (Docker schema 2, Go's field order).
fn docker_save_archive(path: &Path) -> String {
    let layer = busybox_layer();
    let config = image_config(&layer);
    let (cid, lid) = (sha256_hex(config.as_bytes()), sha256_hex(&layer));
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    put(&mut b, &format!("{cid}.json"), config.as_bytes());
    put(&mut b, &format!("{lid}/VERSION"), b"1.0");
    put(&mut b, &format!("{lid}/json"), b"{}");
    put(&mut b, &format!("{lid}/layer.tar"), &layer);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "shared/layer.tar", format!("../{lid}/layer.tar"))
        .unwrap();
    put(
        &mut b,
        "manifest.json",
        format!(
            r#"[{{"Config":"{cid}.json","RepoTags":["oldbb:v1"],"Layers":["{lid}/layer.tar"]}},{{"Config":"{cid}.json","RepoTags":null,"Layers":["shared/layer.tar"]}}]"#
        )
        .as_bytes(),
    );
    b.into_inner().unwrap();
    // Recorded from containerd 1.6.20's `ctr i import` of such an archive.
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:{cid}","size":{}}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":"sha256:{lid}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    format!("sha256:{}", sha256_hex(manifest.as_bytes()))
}

/// An OCI archive (its store holding a zero-size blob too if asked), the image
/// named only by its OCI ref name (a bare tag).
fn oci_archive(path: &Path, with_empty_blob: bool) -> String {
    let layer = busybox_layer();
    let config = image_config(&layer);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{}","size":{}}}]}}"#,
        sha256_hex(config.as_bytes()),
        config.len(),
        sha256_hex(&layer),
        layer.len()
    );
    let md = sha256_hex(manifest.as_bytes());
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    put(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    if with_empty_blob {
        put(&mut b, &format!("blobs/sha256/{}", sha256_hex(b"")), b"");
    }
    put(
        &mut b,
        &format!("blobs/sha256/{}", sha256_hex(config.as_bytes())),
        config.as_bytes(),
    );
    put(
        &mut b,
        &format!("blobs/sha256/{}", sha256_hex(&layer)),
        &layer,
    );
    put(&mut b, &format!("blobs/sha256/{md}"), manifest.as_bytes());
    put(
        &mut b,
        "index.json",
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{md}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v2"}}}}]}}"#,
            manifest.len()
        )
        .as_bytes(),
    );
    b.into_inner().unwrap();
    format!("sha256:{md}")
}

#[test]
fn import_docker_save_layout_and_empty_blobs() {
    let work = TempDir::new("ctr-import-src");
    let d = Daemon::in_dir(TempDir::new("ctr-import"), DaemonOpts::default());
    let old = work.join("old.tar");
    let digest = docker_save_archive(&old);
    // RepoTags are normalized; the untagged image gets only a digest name.
    let out = d.ok(&["i", "import", "--digests", old.to_str().unwrap()]);
    let date = {
        let o = Command::new("date")
            .args(["-u", "+%Y-%m-%d"])
            .output()
            .unwrap();
        stdout(&o).trim().to_string()
    };
    assert_eq!(
        out,
        format!(
            "unpacking docker.io/library/oldbb:v1 ({digest})...done\n\
             unpacking import-{date}@{digest} ({digest})...done\n\
             unpacking import-{date}@{digest} ({digest})...done\n"
        )
    );
    let ls = d.ok(&["i", "ls", "-q"]);
    assert_eq!(
        ls,
        format!("docker.io/library/oldbb:v1\nimport-{date}@{digest}\n")
    );
    // The lease the import held is gone; the image runs.
    assert_eq!(d.ok(&["leases", "ls", "-q"]), "");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "docker.io/library/oldbb:v1",
            "imp1",
            "echo",
            "old layout"
        ]),
        "old layout\n"
    );
    // An OCI archive with a zero-size blob; the bare tag gets the base name.
    let oci = work.join("oci.tar");
    let digest = oci_archive(&oci, true);
    let out = d.ok(&[
        "i",
        "import",
        "--base-name",
        "example.com/bb",
        oci.to_str().unwrap(),
    ]);
    assert_eq!(
        out,
        format!("unpacking example.com/bb:v2 ({digest})...done\n")
    );
    assert!(d
        .ok(&["content", "ls", "-q"])
        .contains("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    // Without a base name a bare tag is prefixed import-DATE, as ctr does.
    let out = d.ok(&["i", "import", oci.to_str().unwrap()]);
    assert_eq!(
        out,
        format!("unpacking import-{date}:v2 ({digest})...done\n")
    );
    // Not an archive of either layout: ctr's message, nothing recorded.
    let junk = work.join("junk.tar");
    let mut b = tar::Builder::new(fs::File::create(&junk).unwrap());
    put(&mut b, "hello", b"x");
    b.into_inner().unwrap();
    let o = d.ctr(&["i", "import", junk.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).ends_with("unrecognized image format\n"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.ok(&["leases", "ls", "-q"]), "");
}

/// Import the busybox image (OCI layout) as `example.com/bb:v2`.
fn import_busybox(d: &Daemon, work: &TempDir) -> &'static str {
    let oci = work.join("oci.tar");
    oci_archive(&oci, false);
    d.ok(&[
        "i",
        "import",
        "--base-name",
        "example.com/bb",
        oci.to_str().unwrap(),
    ]);
    "example.com/bb:v2"
}

#[test]
fn user_names_resolve_in_the_container() {
    let work = TempDir::new("ctr-user-src");
    let d = Daemon::in_dir(TempDir::new("ctr-user"), DaemonOpts::default());
    let img = import_busybox(&d, &work);
    // busybox_entries: www is 33:34; group wheel (10) lists www.
    assert_eq!(
        d.ok(&["run", "--rm", "--user", "www", img, "u1", "id"]),
        "uid=33(www) gid=34(web) groups=10(wheel),34(web)\n"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "--user", "33:wheel", img, "u2", "id"]),
        "uid=33(www) gid=10(wheel) groups=10(wheel)\n"
    );
    // An unknown name: ctr's message, and no container left behind.
    d.fails(
        &["run", "--rm", "--user", "nobody", img, "u3", "id"],
        1,
        "ctr: no users found\n",
    );
    assert_eq!(d.ids("c"), Vec::<String>::new());
    d.ok(&["run", "-d", img, "u4", "sleep", "30"]);
    // exec --user as ctr 1.6: the user's group only (no supplementary).
    assert_eq!(
        d.ok(&["t", "exec", "--exec-id", "e1", "--user", "www", "u4", "id"]),
        "uid=33(www) gid=34(web) groups=34(web)\n"
    );
    d.fails(
        &[
            "t",
            "exec",
            "--exec-id",
            "e2",
            "--user",
            "www:nogroup",
            "u4",
            "id",
        ],
        1,
        "ctr: no groups found\n",
    );
    d.ok(&["t", "kill", "-s", "KILL", "u4"]);
}

#[test]
fn attach_to_a_detached_run() {
    let work = TempDir::new("ctr-attach-src");
    let d = Daemon::in_dir(TempDir::new("ctr-attach"), DaemonOpts::default());
    let img = import_busybox(&d, &work);
    // run -d keeps the client-made fifos (as ctr): attach copies from them.
    d.ok(&[
        "run",
        "-d",
        img,
        "a1",
        "sh",
        "-c",
        "sleep 1; echo out; echo err >&2; exit 3",
    ]);
    let o = d.ctr(&["t", "attach", "a1"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    // As ctr: the task is deleted once attach saw it exit, its fifos too.
    assert_eq!(d.ids("t"), Vec::<String>::new());
    assert_eq!(fifo_leftovers(&["a1"]), Vec::<PathBuf>::new());
    // With --null-io there is nothing to copy: attach waits, exit passed on.
    d.ok(&[
        "run",
        "-d",
        "--null-io",
        img,
        "a2",
        "sh",
        "-c",
        "echo gone; exit 4",
    ]);
    let o = d.ctr(&["t", "attach", "a2"]);
    assert_eq!((code(&o), stdout(&o).as_str()), (4, ""));
    d.ok(&["c", "rm", "a1", "a2"]);
}

#[test]
fn interrupt_before_the_task_runs_leaves_nothing() {
    let work = TempDir::new("ctr-int-src");
    let d = Daemon::in_dir(TempDir::new("ctr-int"), DaemonOpts::default());
    let img = import_busybox(&d, &work);
    let mut cancelled = 0;
    for (i, delay_ms) in [0u64, 5, 10, 20, 30, 40, 60, 80, 120, 200, 400, 800]
        .into_iter()
        .enumerate()
    {
        let id = format!("int{i}");
        let mut child = d
            .ctr_cmd(&["run", img, &id, "sleep", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let started = Instant::now();
        let status = child.wait().unwrap();
        match status.code() {
            // Cancelled before the task ran: at once, nothing left.
            Some(130) => {
                cancelled += 1;
                // Generous: the box may be loaded; a hang is what matters.
                assert!(started.elapsed() < Duration::from_secs(15));
                assert!(!d.ids("c").contains(&id), "{id} left after ^C");
            }
            // The task was running: sleep (pid 1) ignores the forwarded
            // SIGINT and ends normally; the container stays, as ctr's.
            Some(0) => {
                d.ok(&["c", "rm", &id]);
            }
            // ^C came before ctr took signals: it died of it, quietly.
            None => assert!(!d.ids("c").contains(&id), "{id} left"),
            other => panic!("{id}: exit {other:?}"),
        }
        assert_eq!(d.ids("t"), Vec::<String>::new());
        assert_eq!(fifo_leftovers(&[&id]), Vec::<PathBuf>::new());
    }
    // Before the fix the ^C waited for the task and never cancelled.
    assert!(cancelled > 0, "no run was cancelled by ^C");
    assert_eq!(d.ids("c"), Vec::<String>::new());
}

/// Debian's containerd on a private socket and root, for answers to
/// compare with; stopped by pid and its directory removed when dropped.
struct DebianContainerd {
    child: Child,
    sock: String,
    dir: TempDir,
}

impl DebianContainerd {
    fn start() -> Option<DebianContainerd> {
        if !tool("/usr/bin/containerd", "containerd") || !tool("/usr/bin/ctr", "containerd") {
            return None;
        }
        let dir = TempDir::new("ctr-debian");
        let sock = dir.s("c.sock");
        let config = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{sock}\"\n",
            dir.s("root"),
            dir.s("state")
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("/usr/bin/containerd")
            .args(["--config", &dir.s("config.toml")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = DebianContainerd { child, sock, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while code(&c.ctr(&["version"])) != 0 {
            assert!(
                Instant::now() < deadline,
                "Debian's containerd did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(c)
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/ctr")
            .args(["-a", &self.sock, "-n", "skiff-filters"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for DebianContainerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Mounts its snapshotter may have left under its root.
        let root = self.dir.path().display().to_string();
        for m in fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
        {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

#[test]
fn filters_answer_as_debian_ctr() {
    let Some(deb) = DebianContainerd::start() else {
        return;
    };
    let work = TempDir::new("ctr-filter-src");
    let d = Daemon::in_dir(TempDir::new("ctr-filter"), DaemonOpts::default());
    let oci = work.join("oci.tar");
    oci_archive(&oci, false);
    let old = work.join("old.tar");
    docker_save_archive(&old);
    for args in [
        vec![
            "i",
            "import",
            "--base-name",
            "example.com/bb",
            oci.to_str().unwrap(),
        ],
        vec!["i", "import", old.to_str().unwrap()],
        vec!["i", "tag", "example.com/bb:v2", "example.com/other:v10"],
        vec!["i", "tag", "example.com/bb:v2", "example.com/bb:latest"],
    ] {
        assert_eq!(code(&deb.ctr(&args)), 0, "{}", stderr(&deb.ctr(&args)));
        d.ok(&args);
    }
    for f in [
        "name~=/.*/",
        "name~=bb",
        "name~=^example",
        "name~=|v[0-9]+$|",
        "name~=/:v[0-9]{2}$/",
        "name~=/v[0-9]{1}$/",
        "name~=/(bb){1}:/",
        "name~=/\\\\d$/",
        "name~=/(bb|other):(v2|latest)$/",
        "name~=/^docker\\\\.io/",
        "name~=/[^a-z]latest/",
        "name~=/^$/",
        "name~=(a",
        "name==example.com/bb:v2,name~=v2",
        "name!=example.com/bb:v2,name~=bb",
        "labels.x",
        "name~=.*",
        "name=x",
        "name==/x/",
    ] {
        let (want, got) = (deb.ctr(&["i", "ls", "-q", f]), d.ctr(&["i", "ls", "-q", f]));
        assert_eq!(
            (code(&got), stdout(&got), stderr(&got)),
            (code(&want), stdout(&want), stderr(&want)),
            "filter {f}"
        );
    }
    let _ = deb.ctr(&["i", "rm", "example.com/bb:v2"]);
}

#[test]
fn interrupted_pull_records_no_image() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("ctr-pullint-src");
    let r = publish_busybox(&reg, &work);
    let d = Daemon::in_dir(TempDir::new("ctr-pullint"), DaemonOpts::default());
    let mut interrupted = 0;
    for delay_ms in [0u64, 10, 20, 40, 60, 100, 150, 250] {
        let mut child = d
            .ctr_cmd(&["i", "pull", "--plain-http", &r])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        if child.wait().unwrap().success() {
            // The pull was done before the ^C.
            d.ok(&["i", "rm", &r]);
            continue;
        }
        // The daemon notices the client is gone: its pull ends (its lease
        // goes) and no image is recorded, as with containerd's ctr.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.ok(&["leases", "ls", "-q"]).is_empty() {
            assert!(Instant::now() < deadline, "the pull's lease stayed");
            std::thread::sleep(Duration::from_millis(50));
        }
        if d.ok(&["i", "ls", "-q"]).is_empty() {
            interrupted += 1;
        } else {
            // The daemon had recorded it just before ctr died reading the
            // last message: then it is whole, as ctr's own create would be.
            let check = d.ok(&["i", "check"]);
            assert!(
                check.contains("complete"),
                "^C after {delay_ms} ms: {check}"
            );
            d.ok(&["i", "rm", &r]);
        }
    }
    // Before the fix every interrupted pull still recorded its image.
    assert!(interrupted > 0, "no interrupted pull was cancelled");
}

#[test]
fn pull_all_platforms_fetches_every_platform() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("ctr-allplat-src");
    let mut entries = busybox_entries();
    entries.push(hardlink("bin/sleep", "bin/busybox"));
    let amd64 = ImageSpec::new(vec![Layer {
        entries,
        comp: Comp::Gzip,
    }]);
    let mut arm64 = ImageSpec::new(vec![Layer {
        entries: vec![file("arm64-only", "x")],
        comp: Comp::Gzip,
    }]);
    arm64.arch = "arm64".into();
    let layout = work.join("layout");
    let layers = write_layout(&layout, "multi", &[amd64, arm64]);
    let (amd_layer, arm_layer) = (layers[0].to_string(), layers[1].to_string());
    let r = format!("{}/library/multi:latest", reg.host());
    push(&layout, "multi", &r, &["--all"]);
    let d = Daemon::in_dir(TempDir::new("ctr-allplat"), DaemonOpts::default());

    // Without the flag: the host's platform only, recorded as its manifest.
    d.ok(&["i", "pull", "--plain-http", &r]);
    let content = d.ok(&["content", "ls", "-q"]);
    assert!(
        content.contains(&amd_layer) && !content.contains(&arm_layer),
        "{content}"
    );
    d.ok(&["i", "rm", "--sync", &r]);

    // With it: every platform's blobs, the index as the image.
    d.ok(&["i", "pull", "--plain-http", "--all-platforms", &r]);
    let content = d.ok(&["content", "ls", "-q"]);
    assert!(
        content.contains(&amd_layer) && content.contains(&arm_layer),
        "{content}"
    );
    let ls = d.ok(&["i", "ls"]);
    let row: Vec<&str> = ls.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[1], "application/vnd.oci.image.index.v1+json", "{ls}");
    assert_eq!(row[5], "linux/amd64,linux/arm64", "{ls}");
    assert_eq!(d.ok(&["run", "--rm", &r, "ap1", "echo", "host"]), "host\n");
    // The image's removal takes every platform's blobs with it.
    d.ok(&["i", "rm", "--sync", &r]);
    assert_eq!(d.ok(&["content", "ls", "-q"]), "");
}

/// `ctr version` shows the daemon's uuid (containerd's introspection
/// Server): made once in the root, the same on every call and to
/// Debian's ctr.
#[test]
fn version_shows_the_daemons_uuid() {
    let d = Daemon::in_dir(TempDir::new("ctr-uuid"), DaemonOpts::default());
    let uuid_of = |v: &str| {
        v.lines()
            .find_map(|l| l.strip_prefix("  UUID: "))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no UUID line: {v}"))
    };
    let u = uuid_of(&d.ok(&["version"]));
    assert_eq!(u.len(), 36, "{u}");
    assert_eq!(
        fs::read_to_string(
            d.dir
                .join("root/io.containerd.service.v1.introspection-service/uuid")
        )
        .unwrap(),
        u
    );
    assert_eq!(uuid_of(&d.ok(&["version"])), u);
    if tool("/usr/bin/ctr", "containerd") {
        let o = Command::new("/usr/bin/ctr")
            .args(["-a", &d.address(), "version"])
            .output()
            .unwrap();
        assert_eq!(uuid_of(&stdout(&o)), u, "{}", stderr(&o));
    }
}

/// `tasks attach` to a task with a terminal forwards no signals, as ctr
/// (its attach only resizes then): a SIGTERM ends ctr, the task (which
/// traps TERM) keeps running.
#[test]
fn attach_with_a_tty_forwards_no_signals() {
    if !tool("/usr/bin/script", "bsdutils") {
        return;
    }
    let work = TempDir::new("ctr-attach-tty-src");
    let d = Daemon::in_dir(TempDir::new("ctr-attach-tty"), DaemonOpts::default());
    let img = import_busybox(&d, &work);
    d.ok(&[
        "run",
        "-d",
        "-t",
        img,
        "tty1",
        "sh",
        "-c",
        "trap 'echo got-term; exit 7' TERM; while :; do sleep 0.2; done",
    ]);
    let marker = format!("attach-tty-{}", std::process::id());
    let ctr_cmd = format!(
        "exec {} -a {} -n {} t attach tty1 # {marker}",
        d.dir.join("bin/ctr").display(),
        d.address(),
        d.ns
    );
    let log = work.join("typescript");
    let mut child = Command::new("script")
        .args(["-qec", &ctr_cmd])
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The ctr process (script runs it through sh -c, which execs it).
    let deadline = Instant::now() + Duration::from_secs(10);
    let ctr_pid = loop {
        let found: Vec<u32> = processes_naming("t\0attach\0tty1")
            .into_iter()
            .filter(|p| {
                fs::read_link(format!("/proc/{p}/exe"))
                    .is_ok_and(|e| !e.to_string_lossy().contains("script"))
            })
            .collect();
        if let [pid] = found[..] {
            break pid;
        }
        assert!(Instant::now() < deadline, "no attach process: {found:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let attach reach its wait, then signal it.
    std::thread::sleep(Duration::from_millis(700));
    let ctr_pid = rustix::process::Pid::from_raw(ctr_pid as i32).unwrap();
    rustix::process::kill_process(ctr_pid, rustix::process::Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("attach did not end: {}", read(&log));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(child.stdin.take());
    std::thread::sleep(Duration::from_millis(600));
    let typescript = read(&log);
    assert!(!typescript.contains("got-term"), "forwarded: {typescript}");
    assert_ne!(status.code(), Some(7), "{typescript}");
    let ls = d.ok(&["t", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("tty1") && l.contains("RUNNING")),
        "{ls}"
    );
    d.ok(&["t", "kill", "-s", "SIGKILL", "tty1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.ok(&["t", "ls"]).contains("STOPPED") {
        assert!(Instant::now() < deadline, "tty1 did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.ok(&["t", "rm", "tty1"]);
    d.ok(&["c", "rm", "tty1"]);
}
