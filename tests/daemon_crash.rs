//! `kill -9` of skiff's daemon, then a restart: with containers running
//! (they keep running, the new daemon lists them, `t kill` and `t rm`
//! work, exits that happened meanwhile are seen and published), and in
//! the middle of a pull, a container's create, a task's create and a
//! task's delete — after which the store loads, ctr shows a consistent
//! state, the operation can be redone or cleaned, and garbage collection
//! leaves no blob, partial download, snapshot or store tag behind.
//!
//! The moments inside one request are picked with the daemon's crash
//! points (`SKIFF_TEST_CRASH_DAEMON_AT`, src/daemon/faults.rs): the daemon
//! kills itself there with SIGKILL.

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

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

fn shim_pid(d: &Daemon, id: &str) -> u32 {
    fs::read_to_string(d.bundle(id).join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Kill and remove every task, remove every container.
fn remove_all(d: &Daemon) {
    for (id, _, status) in tasks(d) {
        if status != "STOPPED" {
            d.ok(&["t", "kill", "-s", "KILL", &id]);
        }
    }
    d.wait_for(10, "the tasks to stop", || {
        tasks(d).iter().all(|t| t.2 == "STOPPED")
    });
    for (id, _, _) in tasks(d) {
        d.ok(&["t", "rm", &id]);
    }
    for id in d.ids("c") {
        d.ok(&["c", "rm", &id]);
    }
}

/// The environment that arms the daemon to kill itself at `point`.
fn crash_env(point: Option<&str>) -> Vec<(String, String)> {
    let arm = point.map(|p| ("SKIFF_TEST_CRASH_DAEMON_AT".to_string(), p.to_string()));
    arm.into_iter().collect()
}

/// The daemon, armed to kill itself at `point`.
fn daemon_crashing_at(point: &str) -> Daemon {
    Daemon::with(DaemonOpts {
        env: crash_env(Some(point)),
        ..Default::default()
    })
}

/// Start the (stopped) daemon again, armed at `point` or disarmed.
fn start_armed(d: &mut Daemon, point: Option<&str>) {
    d.opts.env = crash_env(point);
    d.start();
}

/// Restart a daemon that died at its crash point, disarmed.
fn restart_disarmed(d: &mut Daemon) {
    wait_crashed(d);
    start_armed(d, None);
}

/// Wait for the daemon to die at its crash point (what it left can be
/// looked at before a restart's collection runs).
fn wait_crashed(d: &mut Daemon) {
    assert!(
        d.died(Duration::from_secs(20)),
        "the daemon did not stop at its crash point\n{}",
        d.log()
    );
}

#[test]
fn containers_outlive_the_daemon_and_exits_meanwhile_are_seen() {
    let work = TempDir::new("crash-run");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = Daemon::new();
    d.ok(&["i", "pull", "--plain-http", &r]);
    let ids = ["c1", "c2", "c3", "exits", "shim-dies"];
    for id in ids {
        d.ok(&["run", "-d", &r, id, "sleep", "1000"]);
    }
    let before = tasks(&d);
    assert_eq!(before.len(), ids.len(), "{before:?}");
    let pid_of = |id: &str| before.iter().find(|t| t.0 == id).unwrap().1;
    let dying_shim = shim_pid(&d, "shim-dies");
    d.note_pids();

    d.kill9();
    // While no daemon runs: one container exits (its shim records it),
    // another loses its shim too.
    unsafe { libc::kill(pid_of("exits") as i32, libc::SIGKILL) };
    unsafe { libc::kill(dying_shim as i32, libc::SIGKILL) };
    unsafe { libc::kill(pid_of("shim-dies") as i32, libc::SIGKILL) };
    d.wait_for(10, "the killed processes to die", || {
        !alive(pid_of("exits")) && !alive(dying_shim) && !alive(pid_of("shim-dies"))
    });
    for id in ["c1", "c2", "c3"] {
        assert!(alive(pid_of(id)), "{id} died with the daemon");
    }

    d.start();
    let (_conn, exits) = d.subscribe(&[format!("namespace=={},topic==\"/tasks/exit\"", d.ns)]);
    // The running ones are listed as they were; the exit is seen.
    let after = tasks(&d);
    let want: Vec<(String, u32, String)> = before
        .iter()
        .filter(|t| t.0 != "shim-dies")
        .map(|(id, pid, _)| {
            let status = if id == "exits" { "STOPPED" } else { "RUNNING" };
            (id.clone(), *pid, status.to_string())
        })
        .collect();
    assert_eq!(after, want, "{}", d.log());
    assert_eq!(
        d.bundles(),
        ["c1", "c2", "c3", "exits"],
        "the dead shim's bundle goes"
    );
    // ... and published after the restart: the live shim's and the
    // cleaned-up dead one's.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.len() < 2 && Instant::now() < deadline {
        let Some(m) = exits.recv(Some(Duration::from_secs(15))).unwrap() else {
            break;
        };
        let env = skiff::proto::events::Envelope::decode(m.as_slice()).unwrap();
        let e =
            skiff::proto::events::TaskExit::decode(env.event.unwrap().value.as_slice()).unwrap();
        seen.push((e.container_id, e.exit_status));
    }
    seen.sort();
    assert_eq!(
        seen.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["exits", "shim-dies"],
        "exit events after the restart: {seen:?}\n{}",
        d.log()
    );
    assert_eq!(seen[0].1, 137, "{seen:?}");

    // t kill and t rm work on what the old daemon started.
    remove_all(&d);
    for id in ["c1", "c2", "c3"] {
        assert!(!alive(pid_of(id)), "{id} still runs");
    }
    d.assert_clean(false);
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

#[test]
fn a_shim_out_of_reach_is_not_taken_for_dead() {
    let work = TempDir::new("crash-reach");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = Daemon::new();
    d.ok(&["i", "pull", "--plain-http", &r]);
    d.ok(&["run", "-d", &r, "c1", "sleep", "1000"]);
    let pid = tasks(&d)[0].1;
    let bundle = d.bundle("c1");
    let address = fs::read_to_string(bundle.join("address")).unwrap();
    let socket = PathBuf::from(address.trim().trim_start_matches("unix://"));
    let away = socket.with_extension("away");
    d.note_pids();

    // The shim's socket vanishes for a while (a /run cleaner, say) while
    // the daemon restarts: the shim lives, but nobody can dial it.
    d.kill9();
    fs::rename(&socket, &away).unwrap();
    d.start();
    let c = d.client();
    let del: Result<pt::DeleteResponse, Status> = call(
        &c,
        &d.ns,
        pt::SERVICE,
        "Delete",
        &pt::DeleteTaskRequest {
            container_id: "c1".into(),
        },
    );
    fs::rename(&away, &socket).unwrap();
    let err = del.expect_err("Delete of a task whose shim cannot be reached");
    assert_eq!(err.code, Code::Unavailable, "{err:?}");
    assert!(alive(pid), "the container was killed");
    assert!(bundle.join("config.json").exists(), "the bundle went");

    // Once the socket is back, the task is managed as before.
    assert_eq!(tasks(&d), [("c1".to_string(), pid, "RUNNING".to_string())]);
    remove_all(&d);
    assert!(!alive(pid));
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

/// A shim killed by SIGKILL leaves its socket file and pid file; its pid
/// may then be reused by another process. The refused socket says it is
/// gone, whatever runs under that pid: its task can be deleted, and two
/// concurrent Deletes clean up once (the other finds no task).
#[test]
fn a_dead_shims_task_is_deleted_once_even_if_its_pid_is_reused() {
    let work = TempDir::new("crash-reuse");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = Daemon::new();
    d.ok(&["i", "pull", "--plain-http", &r]);
    d.ok(&["run", "-d", &r, "c1", "sleep", "1000"]);
    let pid = tasks(&d)[0].1;
    let shim = shim_pid(&d, "c1");
    d.note_pids();
    unsafe { libc::kill(shim as i32, libc::SIGKILL) };
    d.wait_for(10, "the shim to die", || !alive(shim));
    // Another process now has the pid the bundle names.
    let mut reused = Command::new("sleep").arg("60").spawn().unwrap();
    let pid_file = d.bundle("c1").join("shim.pid");
    fs::write(&pid_file, reused.id().to_string()).unwrap();

    let barrier = std::sync::Barrier::new(2);
    let answers: Vec<Result<pt::DeleteResponse, Status>> = std::thread::scope(|s| {
        let one = || {
            let c = d.client();
            barrier.wait();
            call(
                &c,
                &d.ns,
                pt::SERVICE,
                "Delete",
                &pt::DeleteTaskRequest {
                    container_id: "c1".into(),
                },
            )
        };
        let a = s.spawn(one);
        let b = s.spawn(one);
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let _ = reused.kill();
    let _ = reused.wait();
    let ok = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(ok, 1, "one Delete cleans up: {answers:?}\n{}", d.log());
    let err = answers.iter().find_map(|a| a.as_ref().err()).unwrap();
    assert_eq!(err.code, Code::NotFound, "{answers:?}");
    assert!(!alive(pid), "the container still runs");
    assert_eq!(d.ids("t"), Vec::<String>::new());
    d.ok(&["c", "rm", "c1"]);
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

#[test]
fn kill9_mid_pull_leaves_nothing_pinned() {
    let work = TempDir::new("crash-pull");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = daemon_crashing_at("pull-stored");
    let o = d.ctr(&["i", "pull", "--plain-http", &r]);
    assert!(!o.status.success(), "the pull finished: {}", stdout(&o));
    wait_crashed(&mut d);
    assert!(
        !d.blobs().is_empty(),
        "the pull had stored its blobs: {}",
        d.log()
    );
    start_armed(&mut d, None);

    // The store loads, with no image; the pull's lease and its tag in the
    // store's index.json are gone, so the collection takes the blobs.
    assert_eq!(d.ids("i"), Vec::<String>::new());
    assert_eq!(d.ids("leases"), Vec::<String>::new());
    d.wait_for(10, "the interrupted pull's blobs to be collected", || {
        d.blobs().is_empty()
    });
    assert!(!d.store_tags().contains(&r), "{}", d.store_tags());

    // The pull can be redone, and its image runs.
    d.ok(&["i", "pull", "--plain-http", &r]);
    assert_eq!(d.ok(&["run", "--rm", &r, "again", "echo", "ok"]), "ok\n");
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

/// skiff-fetch's tag in the store's index.json is the only GC root of
/// its image: a daemon pulling the same reference (and dying mid-pull, and
/// restarting) must leave it alone.
#[test]
fn daemon_pulls_leave_skiff_fetchs_tag_alone() {
    let work = TempDir::new("crash-fetchtag");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = Daemon::new();
    let store = d.root().join("io.containerd.content.v1.content");
    let o = fetch(&[
        "pull",
        "--plain-http",
        "--quiet",
        "--store",
        &store.to_string_lossy(),
        &r,
    ]);
    assert!(
        o.status.success(),
        "skiff-fetch pull: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(d.store_tags().contains(&r), "{}", d.store_tags());
    d.ok(&["i", "pull", "--plain-http", &r]);
    assert!(
        d.store_tags().contains(&r),
        "a daemon pull: {}",
        d.store_tags()
    );

    d.kill9();
    start_armed(&mut d, Some("pull-stored"));
    d.ok(&["i", "rm", &r]);
    let o = d.ctr(&["i", "pull", "--plain-http", &r]);
    assert!(!o.status.success(), "the pull finished: {}", stdout(&o));
    restart_disarmed(&mut d);
    d.ok(&["i", "pull", "--plain-http", &r]);
    // --sync: the collection runs before ctr returns (the scheduled one
    // took longer than the wait below under load).
    d.ok(&["i", "rm", "--sync", &r]);
    assert_eq!(d.ids("leases"), Vec::<String>::new());
    // Collections ran (start-up, after the image's removal): the blobs
    // stay, skiff-fetch's tag holds them.
    d.wait_for(20, "a collection after the image's removal", || {
        d.log().matches("garbage collection done").count() >= 2
    });
    assert!(d.store_tags().contains(&r), "{}", d.store_tags());
    assert!(!d.blobs().is_empty(), "skiff-fetch's blobs were collected");
    let o = fetch(&["rm", "--store", &store.to_string_lossy(), &r]);
    assert!(
        o.status.success(),
        "skiff-fetch rm: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    d.ok(&["i", "pull", "--plain-http", &r]);
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

/// A second daemon on the same --root would recover and collect under
/// the first one's feet: it refuses to start, naming the root, and the
/// first one goes on serving.
#[test]
fn a_second_daemon_on_the_same_root_is_refused() {
    let d = Daemon::new();
    let other = TempDir::new("second-daemon");
    let mut second = Command::new(skiff_bin())
        .arg0_containerd()
        .args(["--root", &d.dir.s("root"), "--state", &other.s("state")])
        .args(["--address", &other.s("sock")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run a second daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let still_running = second.try_wait().unwrap().is_none();
    if still_running {
        let _ = second.kill();
    }
    let o = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !still_running && !o.status.success(),
        "a second daemon started: {err}"
    );
    assert!(
        err.contains(&d.dir.s("root")),
        "the error names the root: {err}"
    );
    assert!(
        !other.join("sock").exists(),
        "the second daemon bound its socket"
    );
    assert_eq!(d.ok(&["t", "ls"]).lines().count(), 1);
    d.assert_clean(true);
}

#[test]
fn kill9_mid_container_create_leaves_no_snapshot() {
    let work = TempDir::new("crash-ccreate");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = daemon_crashing_at("container-snapshot-prepared");
    d.ok(&["i", "pull", "--plain-http", &r]);
    let layers = d.snapshot_dirs().len();
    let o = d.ctr(&["c", "create", &r, "c1", "sleep", "1000"]);
    assert!(!o.status.success());
    wait_crashed(&mut d);
    assert_eq!(d.snapshot_dirs().len(), layers + 1, "the snapshot was made");
    start_armed(&mut d, None);

    // No container; the create's lease is gone and its snapshot collected.
    assert_eq!(d.ids("c"), Vec::<String>::new());
    assert_eq!(d.ids("leases"), Vec::<String>::new());
    d.wait_for(10, "the half-made container's snapshot to go", || {
        d.snapshot_dirs().len() == layers
    });
    // Redone: it runs.
    d.ok(&["c", "create", &r, "c1", "sh", "-c", "echo made"]);
    assert_eq!(d.ok(&["t", "start", "c1"]), "made\n");
    d.ok(&["c", "rm", "c1"]);
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

#[test]
fn kill9_between_a_containers_record_and_its_snapshot_removal() {
    let work = TempDir::new("crash-cdelete");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = Daemon::new();
    d.ok(&["i", "pull", "--plain-http", &r]);
    let layers = d.snapshot_dirs().len();
    d.ok(&["c", "create", &r, "c1", "true"]);
    assert_eq!(d.snapshot_dirs().len(), layers + 1);
    // ctr's `c rm` is two calls: the record, then the snapshot. The
    // daemon dies between them.
    let _: Empty = call(
        &d.client(),
        &d.ns,
        pc::SERVICE,
        "Delete",
        &pc::DeleteContainerRequest { id: "c1".into() },
    )
    .unwrap();
    d.kill9();
    d.start();
    assert_eq!(d.ids("c"), Vec::<String>::new());
    // The snapshot no record names goes with the collection at start.
    d.wait_for(10, "the orphan snapshot to go", || {
        d.snapshot_dirs().len() == layers
    });
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

#[test]
fn kill9_mid_task_create_and_mid_task_delete() {
    let work = TempDir::new("crash-task");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    // The shim started, the task not yet created in it.
    let mut d = daemon_crashing_at("task-shim-started");
    d.ok(&["i", "pull", "--plain-http", &r]);
    let o = d.ctr(&["run", "-d", &r, "c1", "sleep", "1000"]);
    assert!(!o.status.success());
    restart_disarmed(&mut d);
    // The container is there, no task: the empty shim is gone with its
    // bundle, and the container can be started again.
    assert_eq!(d.ids("c"), ["c1"]);
    assert_eq!(d.ids("t"), Vec::<String>::new(), "{}", d.log());
    assert_eq!(d.bundles(), Vec::<String>::new());
    d.wait_for(10, "the empty shim to exit", || d.shims().is_empty());
    d.ok(&["t", "start", "-d", "c1"]);
    assert_eq!(tasks(&d)[0].2, "RUNNING");
    d.ok(&["t", "kill", "-s", "KILL", "c1"]);
    d.wait_for(10, "c1 to stop", || tasks(&d)[0].2 == "STOPPED");
    d.kill9();

    // The shim answered Delete, the daemon died before the bundle went.
    start_armed(&mut d, Some("task-shim-deleted"));
    let o = d.ctr(&["t", "rm", "c1"]);
    assert!(!o.status.success());
    restart_disarmed(&mut d);
    assert_eq!(d.ids("t"), Vec::<String>::new(), "{}", d.log());
    assert_eq!(d.bundles(), Vec::<String>::new());
    d.ok(&["c", "rm", "c1"]);
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

#[test]
fn kill9_between_a_deleted_tasks_bundle_retiring_and_its_shims_shutdown() {
    let work = TempDir::new("crash-retired");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = daemon_crashing_at("task-bundle-retired");
    d.ok(&["i", "pull", "--plain-http", &r]);
    d.ok(&["run", "-d", &r, "c1", "sleep", "1000"]);
    d.ok(&["t", "kill", "-s", "KILL", "c1"]);
    d.wait_for(10, "c1 to stop", || tasks(&d)[0].2 == "STOPPED");
    let shim = shim_pid(&d, "c1");
    // The shim answered Delete and the bundle was renamed away; the
    // daemon dies before it tells the shim to leave.
    let o = d.ctr(&["t", "rm", "c1"]);
    assert!(!o.status.success());
    wait_crashed(&mut d);
    assert!(alive(shim), "the shim was not told to leave yet");
    let bundles = d.bundles();
    assert!(
        bundles.len() == 1 && bundles[0].starts_with(".retired-c1-"),
        "{bundles:?}"
    );
    // The next daemon sends the shim away and removes its bundle.
    d.opts.env.clear();
    d.start();
    assert_eq!(d.ids("t"), Vec::<String>::new(), "{}", d.log());
    assert_eq!(d.bundles(), Vec::<String>::new());
    d.wait_for(10, "the retired task's shim to exit", || !alive(shim));
    d.ok(&["c", "rm", "c1"]);
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}

/// An HTTP proxy to the registry that holds the first large blob response
/// after its headers and `KEEP` bytes of body, until released: a pull is
/// then mid-download for as long as the test wants.
struct StallProxy {
    port: u16,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    release: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// A blob was asked for with a Range header (a resumed download).
    ranged: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const KEEP: usize = 64 << 10;

impl StallProxy {
    fn start(upstream: u16) -> StallProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let ranged = Arc::new(AtomicBool::new(false));
        let (s, rel, st, rg) = (
            stalled.clone(),
            release.clone(),
            stop.clone(),
            ranged.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let Ok((mut client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let (stalled, release, ranged) = (s.clone(), rel.clone(), rg.clone());
                std::thread::spawn(move || {
                    client.set_nonblocking(false).unwrap();
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match client.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => return,
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let lines: Vec<&str> = text
                        .split("\r\n")
                        .filter(|l| {
                            !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:")
                        })
                        .collect();
                    let is_blob = lines[0].starts_with("GET") && lines[0].contains("/blobs/");
                    if is_blob
                        && lines
                            .iter()
                            .any(|l| l.to_ascii_lowercase().starts_with("range:"))
                    {
                        ranged.store(true, Ordering::SeqCst);
                    }
                    let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    let req = format!("{}\r\nConnection: close\r\n\r\n", lines.join("\r\n"));
                    up.write_all(req.as_bytes()).unwrap();
                    let mut resp = Vec::new();
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match up.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        resp.extend_from_slice(&buf[..n]);
                        let body_at = resp
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map(|p| p + 4);
                        let large = body_at.is_some_and(|at| {
                            String::from_utf8_lossy(&resp[..at])
                                .to_ascii_lowercase()
                                .lines()
                                .filter_map(|l| l.strip_prefix("content-length:"))
                                .any(|v| v.trim().parse::<usize>().unwrap_or(0) > 4 * KEEP)
                        });
                        if is_blob
                            && large
                            && resp.len() >= body_at.unwrap() + KEEP
                            && !stalled.swap(true, Ordering::SeqCst)
                        {
                            let cut = body_at.unwrap() + KEEP;
                            if client.write_all(&resp[..cut]).is_err() {
                                return;
                            }
                            while !release.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            return;
                        }
                        if resp.len() > 8 * KEEP || !is_blob {
                            if client.write_all(&resp).is_err() {
                                return;
                            }
                            resp.clear();
                        }
                    }
                    let _ = client.write_all(&resp);
                });
            }
        });
        StallProxy {
            port,
            stalled,
            ranged,
            release,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        self.release.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn kill9_mid_download_resumes_and_leaves_no_partial() {
    let work = TempDir::new("crash-download");
    let Some((reg, _)) = registry_with_busybox(&work) else {
        return;
    };
    let port: u16 = reg.host().rsplit_once(':').unwrap().1.parse().unwrap();
    let proxy = StallProxy::start(port);
    let r = format!("127.0.0.1:{}/bb:v1", proxy.port);
    let mut d = Daemon::new();
    let pull = d
        .ctr_cmd(&["i", "pull", "--plain-http", &r])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Reap(Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut pull = Reap(pull);
    d.wait_for(30, "the layer's download to be under way", || {
        proxy.stalled.load(std::sync::atomic::Ordering::SeqCst)
            && d.ingests()
                .iter()
                .any(|p| fs::metadata(p).is_ok_and(|m| m.len() as usize >= KEEP))
    });
    d.kill9();
    assert!(!pull.0.wait().unwrap().success(), "the pull went on");
    proxy
        .release
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let collections = d.log().matches("garbage collection done").count();
    d.start();

    // Nothing recorded, nothing held; the partial download is kept for a
    // resume (as containerd keeps it) by the start-up collection, and the
    // next pull resumes it.
    d.wait_for(10, "the start-up collection", || {
        d.log().matches("garbage collection done").count() > collections
    });
    assert_eq!(d.ids("i"), Vec::<String>::new());
    assert_eq!(d.ids("leases"), Vec::<String>::new());
    assert_eq!(d.ingests().len(), 1, "{:?}", d.ingests());
    assert!(!proxy.ranged.load(std::sync::atomic::Ordering::SeqCst));
    d.ok(&["i", "pull", "--plain-http", &r]);
    assert!(
        proxy.ranged.load(std::sync::atomic::Ordering::SeqCst),
        "the second pull did not resume (no Range request)"
    );
    assert_eq!(d.ingests(), Vec::<PathBuf>::new(), "the partial stayed");
    assert_eq!(d.ok(&["run", "--rm", &r, "again", "echo", "ok"]), "ok\n");
    d.ok(&["i", "rm", &r]);
    d.assert_clean(true);
}
