//! The runc applet's container lifecycle: run, create/start/state/kill/
//! delete, list, ps, exit codes and signals.
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test runc_lifecycle`.

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// A config whose process is `sleep 1000` as pid 1 (busybox sh execs it).
fn sleeper(ctx: &Ctx) -> Config {
    let mut c = ctx.config();
    c.sh("exec sleep 1000");
    c
}

#[test]
fn echo_output_captured() {
    let ctx = Ctx::new("echo");
    let out = ctx.run_sh("echo hello skiff; echo to-stderr >&2");
    out.ok();
    assert_eq!(out.stdout, "hello skiff\n");
    assert_eq!(out.stderr, "to-stderr\n");
}

#[test]
fn run_exits_with_process_status() {
    let ctx = Ctx::new("exitcode");
    ctx.run_sh("exit 3").exit(3);
    ctx.run_sh("true").exit(0);
    let mut c = ctx.config();
    c.args(&["false"]);
    ctx.run_config(&c).exit(1);
}

#[test]
fn run_exits_128_plus_signal() {
    // Without a pid namespace the shell is not an init, so it can kill itself.
    let ctx = Ctx::new("sigexit");
    let mut c = ctx.config();
    c.remove_namespace("pid").sh("kill -TERM $$; sleep 5");
    ctx.run_config(&c).exit(128 + 15);
}

#[test]
fn run_killed_container_exits_137() {
    let ctx = Ctx::new("run137");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    let b = ctx.bundle_str();
    let bg = ctx.spawn(&["run", "--bundle", &b, &id]);
    wait_until_running(&ctx, &id);
    ctx.track_pid(ctx.pid_of(&id));
    ctx.kill(&id, "KILL").ok();
    bg.wait(T).exit(128 + 9);
    ctx.assert_gone(&id);
}

#[test]
fn run_forwards_signals() {
    let ctx = Ctx::new("fwdsig");
    let mut c = ctx.config();
    c.sh("trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let bg = ctx.spawn(&["run", "--bundle", &b, &id]);
    let deadline = Instant::now() + T;
    while !bg.stdout_so_far().contains("ready") {
        assert!(Instant::now() < deadline, "container never became ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    ctx.track_pid(ctx.pid_of(&id));
    bg.signal(libc::SIGTERM);
    let out = bg.wait(T);
    out.exit(42);
    assert!(out.stdout.contains("got-term"), "stdout: {:?}", out.stdout);
    ctx.assert_gone(&id);
}

/// Wait until `state` works and says running (a foreground `run` in the
/// background needs a moment to create the container).
fn wait_until_running(ctx: &Ctx, id: &str) {
    let deadline = Instant::now() + T;
    loop {
        let out = ctx.rt(&["state", id]);
        if out.status.success() && out.stdout.contains("\"running\"") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} never ran: {}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn lifecycle_created_running_stopped() {
    let ctx = Ctx::new("lifecycle");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    ctx.create(&id).ok();

    let st = ctx.state(&id);
    assert_eq!(as_str(jget(&st, "status")), Some("created"));
    let pid = as_u64(jget(&st, "pid")).expect("pid") as i32;
    assert!(pid > 0, "created container has a pid: {}", to_json(&st));
    assert!(
        proc_starttime(pid).is_some(),
        "init process {pid} exists while created"
    );
    let ours = fs::read_link("/proc/self/ns/pid").unwrap();
    let theirs = fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(ours, theirs, "init runs in its own pid namespace");

    ctx.start(&id).ok();
    assert_eq!(ctx.status(&id), "running");
    assert_eq!(ctx.pid_of(&id), pid, "start keeps the same init pid");
    assert!(
        proc_cmdline(pid).contains("sleep"),
        "init became sleep: {}",
        proc_cmdline(pid)
    );

    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    let st = ctx.state(&id);
    assert_eq!(as_str(jget(&st, "id")), Some(id.as_str()));
    // runc reports pid 0 once the container has stopped.
    assert_eq!(
        as_u64(jget(&st, "pid")),
        Some(0),
        "stopped state: {}",
        to_json(&st)
    );

    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn start_releases_the_process() {
    // Until `start`, the user process must not run at all.
    let ctx = Ctx::new("release");
    let host = ctx.path("host");
    fs::create_dir(&host).unwrap();
    let mut c = ctx.config();
    c.sh("echo started > /host/flag").mount(
        "/host",
        "bind",
        host.to_str().unwrap(),
        &["rbind", "rw"],
    );
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!host.join("flag").exists(), "process ran before start");
    assert_eq!(ctx.status(&id), "created");
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped", T);
    assert_eq!(fs::read_to_string(host.join("flag")).unwrap(), "started\n");
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn state_json_fields() {
    let ctx = Ctx::new("statejson");
    let mut c = sleeper(&ctx);
    c.set("annotations", js(r#"{"org.skiff.test":"yes","other":"2"}"#));
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    let st = ctx.state(&id);
    let raw = to_json(&st);
    assert!(
        as_str(jget(&st, "ociVersion")).is_some_and(|v| !v.is_empty()),
        "ociVersion: {raw}"
    );
    assert_eq!(as_str(jget(&st, "id")), Some(id.as_str()), "{raw}");
    assert!(as_u64(jget(&st, "pid")).is_some_and(|p| p > 0), "{raw}");
    assert_eq!(as_str(jget(&st, "status")), Some("created"), "{raw}");
    let bundle = fs::canonicalize(&ctx.bundle).unwrap();
    assert_eq!(as_str(jget(&st, "bundle")), bundle.to_str(), "{raw}");
    assert_eq!(
        as_str(jget(&st, "rootfs")),
        bundle.join("rootfs").to_str(),
        "{raw}"
    );
    let created = as_str(jget(&st, "created")).expect("created");
    assert!(
        looks_like_rfc3339(created),
        "created {created:?} is not RFC 3339"
    );
    assert!(
        as_str(jget(&st, "owner")).is_some(),
        "owner is a string: {raw}"
    );
    let ann = jget(&st, "annotations").expect("annotations present when set");
    let miniserde::json::Value::Object(ann) = ann else {
        panic!("annotations is an object: {raw}")
    };
    assert_eq!(as_str(ann.get("org.skiff.test")), Some("yes"), "{raw}");
    assert_eq!(as_str(ann.get("other")), Some("2"), "{raw}");
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);

    // Without annotations runc omits the key; it must never be null.
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    ctx.create(&id).ok();
    let st = ctx.state(&id);
    match jget(&st, "annotations") {
        None | Some(miniserde::json::Value::Object(_)) => {}
        Some(other) => panic!(
            "annotations must be absent or an object, got {}",
            to_json(other)
        ),
    }
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

fn looks_like_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
        && s[..4].bytes().all(|c| c.is_ascii_digit())
}

#[test]
fn list_table_json_quiet() {
    let ctx = Ctx::new("list");
    // Empty root: header only / no ids / an empty JSON list.
    let out = ctx.rt(&["list", "-q"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "");
    let out = ctx.rt(&["list", "-f", "json"]);
    out.ok();
    // runc prints `null` for no containers; `[]` is as good.
    assert!(
        matches!(out.stdout.trim(), "null" | "[]"),
        "empty list -f json: {:?}",
        out.stdout
    );

    ctx.write_config(&sleeper(&ctx));
    let a = ctx.id();
    let b = ctx.id();
    ctx.create(&a).ok();
    ctx.create(&b).ok();
    ctx.start(&b).ok();

    let out = ctx.rt(&["list"]);
    out.ok();
    let mut lines = out.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{}",
        out.stdout
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{}", out.stdout);
    let bundle = fs::canonicalize(&ctx.bundle).unwrap();
    for (id, status) in [(&a, "created"), (&b, "running")] {
        let row = rows
            .iter()
            .find(|r| r[0] == id.as_str())
            .unwrap_or_else(|| panic!("{id} in {}", out.stdout));
        assert_eq!(row[1], ctx.pid_of(id).to_string());
        assert_eq!(row[2], status);
        assert_eq!(row[3], bundle.to_str().unwrap());
        assert_eq!(row.len(), 6, "row {row:?}");
    }

    let out = ctx.rt(&["list", "-q"]);
    out.ok();
    assert_eq!(
        line_set(&out.stdout),
        [a.clone(), b.clone()].into_iter().collect()
    );

    let out = ctx.rt(&["list", "--format", "json"]);
    out.ok();
    let v: miniserde::json::Value =
        miniserde::json::from_str(&out.stdout).expect("list -f json is JSON");
    let arr = as_array(Some(&v)).expect("a JSON array");
    assert_eq!(arr.len(), 2, "{}", out.stdout);
    for (id, status) in [(&a, "created"), (&b, "running")] {
        let e = arr
            .iter()
            .find(|e| as_str(jget(e, "id")) == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} in {}", out.stdout));
        assert_eq!(as_str(jget(e, "status")), Some(status));
        assert_eq!(as_u64(jget(e, "pid")), Some(ctx.pid_of(id) as u64));
        assert_eq!(as_str(jget(e, "bundle")), bundle.to_str());
        assert!(as_str(jget(e, "created")).is_some());
        assert!(as_str(jget(e, "ociVersion")).is_some());
    }

    ctx.rt(&["delete", "--force", &a]).ok();
    ctx.rt(&["delete", "--force", &b]).ok();
    let out = ctx.rt(&["list", "-q"]);
    assert_eq!(out.stdout.trim(), "");
}

#[test]
fn ps_lists_init_pid() {
    let ctx = Ctx::new("ps");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    let pid = ctx.pid_of(&id);
    let out = ctx.rt(&["ps", "-f", "json", &id]);
    out.ok();
    let v: miniserde::json::Value =
        miniserde::json::from_str(&out.stdout).expect("ps -f json is JSON");
    let pids: Vec<u64> = as_array(Some(&v))
        .expect("array")
        .iter()
        .filter_map(|p| as_u64(Some(p)))
        .collect();
    assert_eq!(pids, vec![pid as u64], "ps -f json: {}", out.stdout);

    let out = ctx.rt(&["ps", &id]);
    out.ok();
    let header = out.stdout.lines().next().unwrap_or("");
    assert!(
        header.split_whitespace().any(|w| w == "PID"),
        "ps table header: {}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().any(|w| w == pid.to_string())),
        "ps table lists {pid}: {}",
        out.stdout
    );
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

#[test]
fn kill_accepts_signal_forms() {
    let ctx = Ctx::new("killforms");
    ctx.write_config(&sleeper(&ctx));
    for sig in ["SIGKILL", "KILL", "9"] {
        let id = ctx.id();
        ctx.create(&id).ok();
        ctx.start(&id).ok();
        ctx.kill(&id, sig).ok();
        ctx.wait_status(&id, "stopped", T);
        ctx.delete(&id).ok();
        ctx.assert_gone(&id);
    }
}

#[test]
fn kill_default_signal_is_term() {
    let ctx = Ctx::new("killterm");
    let host = ctx.path("host");
    fs::create_dir(&host).unwrap();
    let mut c = ctx.config();
    c.sh("trap 'echo term > /host/got; exit 0' TERM; echo ready > /host/ready; while :; do sleep 0.05; done")
        .mount("/host", "bind", host.to_str().unwrap(), &["rbind", "rw"]);
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    let deadline = Instant::now() + T;
    while !host.join("ready").exists() {
        assert!(Instant::now() < deadline, "container never became ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    ctx.rt(&["kill", &id]).ok();
    ctx.wait_status(&id, "stopped", T);
    assert_eq!(fs::read_to_string(host.join("got")).unwrap(), "term\n");
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn kill_created_container() {
    // A created (not started) container can be killed and then deleted.
    let ctx = Ctx::new("killcreated");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn delete_refuses_running_without_force() {
    let ctx = Ctx::new("delrunning");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    ctx.delete(&id).fails();
    assert_eq!(
        ctx.status(&id),
        "running",
        "a refused delete leaves the container alone"
    );
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

#[test]
fn delete_created_container_without_force() {
    // runc 1.1.5 (and crun) delete a created (never started) container
    // without --force; the runtime spec says deleting a container that is
    // not stopped MUST fail, and skiff follows it: the container is left
    // as it was, and --force deletes it.
    let ctx = Ctx::new("delcreated");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    ctx.create(&id).ok();
    let pid = ctx.pid_of(&id);
    let start = proc_starttime(pid).expect("init exists");
    if is_skiff() {
        let out = ctx.delete(&id);
        out.fails();
        assert!(
            out.stderr.contains("that is not stopped: created"),
            "{}",
            out.stderr
        );
        assert_eq!(
            ctx.status(&id),
            "created",
            "a refused delete changes nothing"
        );
        assert!(process_alive(pid, start), "the init lives on");
        ctx.rt(&["delete", "--force", &id]).ok();
    } else {
        ctx.delete(&id).ok();
    }
    ctx.assert_gone(&id);
    assert!(wait_gone(pid, start, T), "init {pid} survived delete");
}

#[test]
fn run_detach() {
    let ctx = Ctx::new("detach");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    let b = ctx.bundle_str();
    let pidfile = ctx.path("pid");
    let t0 = Instant::now();
    ctx.rt(&[
        "run",
        "--detach",
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--bundle",
        &b,
        &id,
    ])
    .ok();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "run --detach returned promptly"
    );
    ctx.track_pid(ctx.pid_of(&id));
    assert_eq!(ctx.status(&id), "running");
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, ctx.pid_of(&id), "pid file holds the init pid");
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn run_detach_short_flag() {
    let ctx = Ctx::new("detachd");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt(&["run", "-d", "-b", &b, &id]).ok();
    ctx.track_pid(ctx.pid_of(&id));
    assert_eq!(ctx.status(&id), "running");
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

#[test]
fn run_keep() {
    let ctx = Ctx::new("keep");
    let mut c = ctx.config();
    c.sh("echo kept; exit 5");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let out = ctx.rt(&["run", "--keep", "--bundle", &b, &id]);
    out.exit(5);
    assert_eq!(out.stdout, "kept\n");
    assert_eq!(
        ctx.status(&id),
        "stopped",
        "--keep keeps the stopped container"
    );
    let out = ctx.rt(&["list", "-q"]);
    assert_eq!(out.stdout.trim(), id);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn create_pid_file() {
    let ctx = Ctx::new("pidfile");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    let b = ctx.bundle_str();
    let pidfile = ctx.path("sub-pid");
    ctx.rt(&[
        "create",
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--bundle",
        &b,
        &id,
    ])
    .ok();
    let pid = ctx.pid_of(&id);
    ctx.track_pid(pid);
    let text = fs::read_to_string(&pidfile).unwrap();
    assert_eq!(
        text.trim().parse::<i32>().unwrap(),
        pid,
        "pid file {text:?}"
    );
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

#[test]
fn flags_with_equals() {
    // `--flag=value` works as well as `--flag value`.
    let ctx = Ctx::new("equals");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    let root = format!("--root={}", ctx.root.display());
    let bundle = format!("--bundle={}", ctx.bundle.display());
    let pidfile = format!("--pid-file={}", ctx.path("p").display());
    ctx.rt_noroot(&[&root, "create", &bundle, &pidfile, &id])
        .ok();
    ctx.track_pid(ctx.pid_of(&id));
    assert!(ctx.path("p").exists());
    let out = ctx.rt_noroot(&[&root, "list", "--format=json"]);
    out.ok();
    assert!(out.stdout.contains(&id));
    ctx.rt_noroot(&[&root, "delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

#[test]
fn pid_one_inside() {
    let ctx = Ctx::new("pid1");
    let out = ctx.run_sh("echo $$; readlink /proc/self; cat /proc/1/cmdline | tr '\\0' ' '");
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"1"), "shell is pid 1: {}", out.stdout);
    assert!(
        lines
            .get(1)
            .is_some_and(|p| p.parse::<u32>().is_ok_and(|p| p > 1)),
        "{}",
        out.stdout
    );
    assert!(
        lines.get(2).is_some_and(|c| c.starts_with("sh -c")),
        "{}",
        out.stdout
    );
}

#[test]
fn run_preserve_fds() {
    let ctx = Ctx::new("preservefds");
    let file = ctx.path("fd3.txt");
    fs::write(&file, "through fd 3\n").unwrap();
    let mut c = ctx.config();
    c.sh("cat <&3");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let out = ctx.rt_with_fd3(&file, &["run", "--preserve-fds", "1", "--bundle", &b, &id]);
    out.ok();
    assert_eq!(out.stdout, "through fd 3\n");
    ctx.assert_gone(&id);

    // Without --preserve-fds the descriptor is not passed on.
    let mut c = ctx.config();
    c.sh("if [ -e /proc/self/fd/3 ]; then echo leaked; else echo closed; fi");
    ctx.write_config(&c);
    let id = ctx.id();
    let out = ctx.rt_with_fd3(&file, &["run", "--bundle", &b, &id]);
    out.ok();
    assert_eq!(out.stdout, "closed\n");
    ctx.assert_gone(&id);
}

#[test]
fn run_no_pivot_and_no_new_keyring() {
    let ctx = Ctx::new("nopivot");
    let mut c = ctx.config();
    c.sh("echo $$; ls /bin/busybox");
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    for flag in ["--no-pivot", "--no-new-keyring"] {
        let id = ctx.id();
        let out = ctx.rt(&["run", flag, "--bundle", &b, &id]);
        out.ok();
        assert_eq!(out.stdout, "1\n/bin/busybox\n", "with {flag}");
        ctx.assert_gone(&id);
    }
}

#[test]
fn kill_all_stops_every_process() {
    let ctx = Ctx::new("killall");
    let mut c = ctx.config();
    // A shell with children: signal handling aside, SIGKILL to all of them.
    c.sh("sleep 1000 & sleep 1000 & wait");
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    let deadline = Instant::now() + T;
    loop {
        let out = ctx.rt(&["ps", "-f", "json", &id]);
        out.ok();
        if out.stdout.matches(',').count() >= 2 {
            break; // three pids
        }
        assert!(
            Instant::now() < deadline,
            "children never started: {}",
            out.stdout
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = ctx.rt(&["ps", "-f", "json", &id]);
    let v: miniserde::json::Value = miniserde::json::from_str(&out.stdout).unwrap();
    let pids: Vec<i32> = as_array(Some(&v))
        .unwrap()
        .iter()
        .filter_map(|p| as_u64(Some(p)))
        .map(|p| p as i32)
        .collect();
    for &p in &pids {
        ctx.track_pid(p);
    }
    let starts: Vec<(i32, u64)> = pids
        .iter()
        .filter_map(|&p| Some((p, proc_starttime(p)?)))
        .collect();
    assert_eq!(starts.len(), 3, "three live processes: {pids:?}");
    ctx.rt(&["kill", "--all", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped", T);
    for &(p, st) in &starts {
        assert!(wait_gone(p, st, T), "kill --all left process {p}");
    }
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn init_killed_from_outside_is_stopped() {
    let ctx = Ctx::new("extkill");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    let pid = ctx.pid_of(&id);
    // SAFETY: the container init this test started, alive (state says so).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    ctx.wait_status(&id, "stopped", T);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn global_debug_and_log_flags_accepted() {
    let ctx = Ctx::new("globalflags");
    let root = ctx.root.to_str().unwrap().to_string();
    let log = ctx.path("log.txt");
    let log = log.to_str().unwrap();
    ctx.rt_noroot(&["--debug", "--root", &root, "list"]).ok();
    ctx.rt_noroot(&[
        "--log",
        log,
        "--log-format",
        "text",
        "--root",
        &root,
        "list",
        "-q",
    ])
    .ok();
    ctx.rt_noroot(&["--log-format=json", "--root", &root, "list", "--quiet"])
        .ok();
}

#[test]
fn containerd_shim_style_invocation() {
    // The argument shapes containerd's runc shim uses, global flags first,
    // with the JSON log it reads errors from.
    let ctx = Ctx::new("shimstyle");
    ctx.write_config(&sleeper(&ctx));
    let id = ctx.id();
    let root = ctx.root.to_str().unwrap().to_string();
    let log = ctx.bundle.join("log.json");
    let log = log.to_str().unwrap().to_string();
    let pidfile = ctx.bundle.join("init.pid");
    let pidfile = pidfile.to_str().unwrap().to_string();
    let b = ctx.bundle_str();
    let g = [
        "--root",
        root.as_str(),
        "--log",
        log.as_str(),
        "--log-format",
        "json",
    ];
    let with = |args: &[&str]| -> Vec<String> {
        g.iter().chain(args.iter()).map(|s| s.to_string()).collect()
    };
    let run = |args: &[&str]| {
        let v = with(args);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        ctx.rt_noroot(&refs)
    };
    run(&["create", "--bundle", &b, "--pid-file", &pidfile, &id]).ok();
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ctx.track_pid(pid);
    run(&["start", &id]).ok();
    let out = run(&["state", &id]);
    out.ok();
    assert!(out.stdout.contains("\"running\""), "{}", out.stdout);
    let out = run(&["ps", "--format", "json", &id]);
    out.ok();
    assert_eq!(out.stdout.trim(), format!("[{pid}]"));
    run(&["kill", "--all", &id, "9"]).ok();
    ctx.wait_status(&id, "stopped", T);
    run(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);

    // A failing create leaves its error as the last JSON line of the log.
    let mut c = ctx.config();
    c.args(&["/no/such/binary"]);
    ctx.write_config(&c);
    let id = ctx.id();
    run(&["create", "--bundle", &b, "--pid-file", &pidfile, &id]).fails();
    let text = fs::read_to_string(&log).unwrap();
    let last = text.lines().last().expect("log lines");
    let v: miniserde::json::Value = miniserde::json::from_str(last).expect("JSON log line");
    assert_eq!(as_str(jget(&v, "level")), Some("error"), "{last}");
    assert!(
        as_str(jget(&v, "msg")).is_some_and(|m| !m.is_empty()),
        "{last}"
    );
    ctx.assert_gone(&id);
}

#[test]
fn skiff_multicall_forms() {
    // skiff only: `skiff runc ARGS` is the same applet as a `runc` symlink.
    if !applies(is_skiff(), "only meaningful for skiff") {
        return;
    }
    let ctx = Ctx::new("multicall");
    let skiff = common::skiff_binary();
    let out = std::process::Command::new(&skiff)
        .arg("--list")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "runc"));
    let mut c = ctx.config();
    c.sh("echo multicall");
    ctx.write_config(&c);
    let id = ctx.id();
    let out = std::process::Command::new(&skiff)
        .args(["runc", "--root"])
        .arg(&ctx.root)
        .args(["run", "--bundle"])
        .arg(&ctx.bundle)
        .arg(&id)
        .env("SKIFF_TEST_MARK", &ctx.mark)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "multicall\n");
    ctx.assert_gone(&id);
}
