//! runc's command-line habits, as a new user meets them: help everywhere,
//! unknown commands and help topics, `--debug` and `--log` (never on the
//! container's console, never inherited, never holding create's stderr),
//! exec's exit codes, `kill -a` on a stopped container (and its cgroup's
//! leftovers), SIGKILL of a paused one, `ps` arguments, `update --memory
//! -1`, unified resources on a v1 host, `exec --cgroup`, the owner of a
//! console, and a cgroup frozen before the container exists (or by its
//! parent).
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/sbin/runc cargo test --test runc_cli`.

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// A missing prerequisite: say why; under CI it is a failure.
fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("prerequisite missing (CI=true): {why}");
    }
    eprintln!("skipped: {why}");
}

/// `run -d` a `sleep 1000` container from `c`; returns the id and the pid.
#[track_caller]
fn start_sleeper(ctx: &Ctx, c: Config) -> (String, i32) {
    start_sleeper_as(ctx, c, ctx.id())
}

/// [`start_sleeper`] with a given id.
#[track_caller]
fn start_sleeper_as(ctx: &Ctx, mut c: Config, id: String) -> (String, i32) {
    c.sh("exec sleep 1000");
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    ctx.rt(&["run", "-d", "--bundle", &b, &id]).ok();
    let pid = ctx.pid_of(&id);
    ctx.track_pid(pid);
    (id, pid)
}

#[track_caller]
fn finish(ctx: &Ctx, id: &str) {
    ctx.rt(&["delete", "--force", id]).ok();
    ctx.assert_gone(id);
}

#[track_caller]
fn read_pid_file(ctx: &Ctx, name: &str) -> i32 {
    let s = fs::read_to_string(ctx.path(name)).expect("pid file");
    s.trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid file {s:?}"))
}

/// Commands every runtime here must have (and list in its help).
const REQUIRED_COMMANDS: &[&str] = &[
    "create", "delete", "events", "exec", "kill", "list", "pause", "ps", "resume", "run", "spec",
    "start", "state", "update",
];

/// The command names a global usage text lists (argh's "Commands:" or
/// urfave/cli's "COMMANDS:" section; "help, h" is one entry).
fn listed_commands(usage: &str) -> Vec<String> {
    usage
        .lines()
        .skip_while(|l| !l.trim().eq_ignore_ascii_case("commands:"))
        .skip(1)
        .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
        // A wrapped description continues far more indented.
        .filter(|l| l.len() - l.trim_start().len() <= 4)
        .filter_map(|l| l.split_whitespace().next())
        .map(|w| w.trim_end_matches(',').to_string())
        .filter(|w| w != "help")
        .collect()
}

#[test]
fn help_everywhere_and_unknown_commands() {
    let ctx = Ctx::new("clihelp");
    let commands = listed_commands(&ctx.rt(&["--help"]).stdout);
    for cmd in REQUIRED_COMMANDS {
        assert!(
            commands.iter().any(|c| c == cmd),
            "`runc --help` lists {cmd}: {commands:?}"
        );
    }
    for flag in ["--help", "-h"] {
        let out = ctx.rt(&[flag]);
        out.ok();
        assert!(
            out.stdout.to_lowercase().contains("usage") && out.stdout.contains("exec"),
            "`runc {flag}` prints the usage with the commands: {:?}",
            out.stdout
        );
        for cmd in &commands {
            let out = ctx.rt(&[cmd, flag]);
            out.ok();
            assert!(
                out.stdout.to_lowercase().contains("usage") && out.stdout.contains(cmd),
                "`runc {cmd} {flag}` prints its usage: {:?}",
                out.stdout
            );
        }
    }
    let out = ctx.rt(&["frobnicate", "x"]);
    out.exit(3);
    assert!(
        out.stderr.contains("No help topic for 'frobnicate'"),
        "runc's message for an unknown command: {:?}",
        out.stderr
    );
    // `help TOPIC` for no command: the same.
    let out = ctx.rt(&["help", "frobnicate"]);
    out.exit(3);
    assert!(
        out.stderr.contains("No help topic for 'frobnicate'"),
        "runc's message for an unknown help topic: {:?}",
        out.stderr
    );
    let out = ctx.rt(&["help", "delete"]);
    out.ok();
    assert!(out.stdout.contains("delete"), "{:?}", out.stdout);
    // delete's -f is a switch (list's and ps's take a value): -h after it
    // is still help.
    let out = ctx.rt(&["delete", "-f", "-h"]);
    out.ok();
    assert!(
        out.stdout.to_lowercase().contains("usage") && out.stdout.contains("delete"),
        "{:?}",
        out.stdout
    );
    // runc's commands that skiff lacks say so.
    if is_skiff() {
        let out = ctx.rt(&["checkpoint", "x"]);
        out.fails();
        assert!(out.stderr.contains("not supported"), "{:?}", out.stderr);
    }
}

/// The `level=debug` lines of a text log.
fn debug_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains("level=debug")).collect()
}

#[test]
fn debug_logs_to_stderr_or_log_file() {
    let ctx = Ctx::new("clidebug");
    let mut c = ctx.config();
    c.sh("echo hi");
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    let root = ctx.root.to_str().unwrap().to_string();

    // To stderr, in text.
    let id = ctx.id();
    let out = ctx.rt(&["--debug", "run", "--bundle", &b, &id]);
    out.ok();
    assert_eq!(out.stdout.trim(), "hi");
    let lines = debug_lines(&out.stderr);
    assert!(
        lines.len() >= 2,
        "--debug writes debug lines to stderr: {:?}",
        out.stderr
    );
    for l in &lines {
        assert!(
            l.starts_with("time=\"") && l.contains(" msg=\""),
            "logrus text shape: {l:?}"
        );
    }

    // Without --debug: nothing.
    let id = ctx.id();
    let out = ctx.rt(&["run", "--bundle", &b, &id]);
    out.ok();
    assert!(debug_lines(&out.stderr).is_empty(), "{:?}", out.stderr);

    // To --log, as JSON: one object per line; stderr stays quiet.
    let log = ctx.path("debug.json");
    let id = ctx.id();
    let out = ctx.rt_noroot(&[
        "--root",
        &root,
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "run",
        "--bundle",
        &b,
        &id,
    ]);
    out.ok();
    assert!(
        !out.stderr.contains("level=debug") && !out.stderr.contains("\"debug\""),
        "debug lines go to the log file only: {:?}",
        out.stderr
    );
    let text = fs::read_to_string(&log).expect("the log file");
    let mut debug = 0;
    for l in text.lines() {
        let v: miniserde::json::Value =
            miniserde::json::from_str(l).unwrap_or_else(|_| panic!("log line is not JSON: {l:?}"));
        assert!(as_str(jget(&v, "msg")).is_some(), "{l:?}");
        assert!(as_str(jget(&v, "time")).is_some(), "{l:?}");
        if as_str(jget(&v, "level")) == Some("debug") {
            debug += 1;
        }
    }
    assert!(debug >= 2, "debug lines in the JSON log: {text:?}");

    // To --log, as text.
    let log = ctx.path("debug.txt");
    let id = ctx.id();
    ctx.rt_noroot(&[
        "--root",
        &root,
        "--log",
        log.to_str().unwrap(),
        "--debug",
        "run",
        "--bundle",
        &b,
        &id,
    ])
    .ok();
    let text = fs::read_to_string(&log).expect("the log file");
    assert!(debug_lines(&text).len() >= 2, "{text:?}");
}

#[test]
fn exec_runtime_failures_exit_255() {
    let ctx = Ctx::new("cliexec255");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    // The process's own status passes through.
    ctx.rt(&["exec", &id, "sh", "-c", "exit 7"]).exit(7);
    ctx.rt(&["exec", &id, "sh", "-c", "exit 255"]).exit(255);

    let out = ctx.rt(&["exec", "--pid-file", "/nonexistent-dir/p", &id, "true"]);
    out.exit(255);
    assert!(!out.stderr.is_empty());
    ctx.rt(&["exec", &id, "/nonexistent-binary"]).exit(255);

    ctx.rt(&["pause", &id]).ok();
    let out = ctx.rt(&["exec", &id, "true"]);
    out.exit(255);
    assert!(out.stderr.contains("paused"), "{:?}", out.stderr);
    ctx.rt(&["resume", &id]).ok();

    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    let out = ctx.rt(&["exec", &id, "true"]);
    out.exit(255);
    assert!(!out.stderr.is_empty());
    finish(&ctx, &id);
}

#[test]
fn kill_all_signal_zero_on_stopped_container() {
    let ctx = Ctx::new("clikill0");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    // Signal 0 only checks that the init is there.
    ctx.kill(&id, "0").ok();
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    ctx.rt(&["kill", "-a", &id, "0"]).ok();
    ctx.rt(&["kill", "--all", &id, "KILL"]).ok();
    // Without --all, a stopped container is an error.
    let out = ctx.kill(&id, "0");
    out.fails();
    assert!(out.stderr.contains("not running"), "{:?}", out.stderr);
    finish(&ctx, &id);
}

/// A frozen process cannot act on SIGKILL: kill thaws the cgroup after
/// sending it (as runc does).
#[test]
fn sigkill_ends_a_paused_container() {
    let ctx = Ctx::new("clikillpaused");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    ctx.rt(&["pause", &id]).ok();
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    finish(&ctx, &id);
}

#[test]
fn ps_passes_its_arguments_to_ps() {
    let ctx = Ctx::new("clips");
    let (id, pid) = start_sleeper(&ctx, ctx.config());
    let rows = |out: &str, pid_col: usize| -> Vec<i32> {
        out.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(pid_col)?.parse().ok())
            .collect()
    };

    let out = ctx.rt(&["ps", &id, "-e", "-x"]);
    out.ok();
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header.first(), Some(&"PID"), "ps -e -x: {:?}", out.stdout);
    assert!(header.contains(&"STAT"), "ps -e -x: {:?}", out.stdout);
    assert_eq!(
        rows(&out.stdout, 0),
        [pid],
        "only the container: {:?}",
        out.stdout
    );

    // A `--` before ps's arguments is not passed on (runc passes it, and
    // procps then fails).
    if is_skiff() {
        let out = ctx.rt(&["ps", &id, "--", "-o", "pid,comm"]);
        out.ok();
        let mut lines = out.stdout.lines();
        assert_eq!(
            lines
                .next()
                .map(|h| h.split_whitespace().collect::<Vec<_>>()),
            Some(vec!["PID", "COMMAND"]),
            "{:?}",
            out.stdout
        );
        assert_eq!(rows(&out.stdout, 0), [pid], "{:?}", out.stdout);
        assert!(out.stdout.contains("sleep"), "{:?}", out.stdout);
    }
    finish(&ctx, &id);
}

/// The directory of `pid`'s cgroup for `controller` (v1), or for "" the v2 one.
fn dir_of(pid: i32, controller: &str) -> std::path::PathBuf {
    cgroup_dir(pid, controller).unwrap_or_else(|| panic!("no {controller:?} cgroup for pid {pid}"))
}

#[test]
fn update_memory_minus_one_removes_the_limit() {
    let ctx = Ctx::new("climem");
    let mut c = ctx.config();
    c.set(
        "linux.resources.memory",
        js(r#"{"limit": 104857600, "swap": 209715200}"#),
    );
    let (id, pid) = start_sleeper(&ctx, c);
    ctx.rt(&["update", "--memory", "-1", &id]).ok();
    if let Some(dir) = cgroup_dir(pid, "memory") {
        let read = |f: &str| -> u64 {
            fs::read_to_string(dir.join(f))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        assert!(read("memory.limit_in_bytes") > 1 << 60, "memory unlimited");
        if dir.join("memory.memsw.limit_in_bytes").exists() {
            assert!(
                read("memory.memsw.limit_in_bytes") > 1 << 60,
                "swap unlimited"
            );
        }
        // And a limit can be set again.
        ctx.rt(&["update", "--memory", "64m", &id]).ok();
        assert_eq!(read("memory.limit_in_bytes"), 64 << 20);
    } else {
        let dir = dir_of(pid, "");
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
        assert_eq!(read("memory.max"), "max");
        if dir.join("memory.swap.max").exists() {
            assert_eq!(read("memory.swap.max"), "max");
        }
    }
    finish(&ctx, &id);
}

#[test]
fn unified_resources_on_a_v1_host_are_invalid() {
    let unified_host = fs::read_to_string("/proc/self/cgroup")
        .map(|s| s.lines().all(|l| l.starts_with("0::")))
        .unwrap_or(false);
    if unified_host {
        skip("the host is cgroup v2 only; this is about v1 and hybrid hosts");
        return;
    }
    let ctx = Ctx::new("cliunified");
    let (id, pid) = start_sleeper(&ctx, ctx.config());
    let res = ctx.path("res.json");
    fs::write(&res, r#"{"unified": {"cgroup.max.descendants": "5"}}"#).unwrap();
    let out = ctx.rt(&["update", "-r", res.to_str().unwrap(), &id]);
    out.fails();
    assert!(
        out.stderr.contains("invalid configuration"),
        "{:?}",
        out.stderr
    );
    if let Some(v2) = cgroup_dir(pid, "") {
        if let Ok(v) = fs::read_to_string(v2.join("cgroup.max.descendants")) {
            assert_eq!(v.trim(), "max", "nothing written in {}", v2.display());
        }
    }
    finish(&ctx, &id);

    // At create too, leaving nothing behind.
    let mut c = ctx.config();
    c.set(
        "linux.resources.unified",
        js(r#"{"cgroup.max.descendants": "5"}"#),
    );
    let out = ctx.run_config(&c);
    out.fails();
    assert!(
        out.stderr.contains("invalid configuration"),
        "{:?}",
        out.stderr
    );
}

/// Every cgroup of `pid` as (controllers, path) from /proc/PID/cgroup.
fn cgroups_of(pid: i32) -> Vec<(String, String)> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            Some((c.to_string(), p.to_string()))
        })
        .collect()
}

#[test]
fn exec_into_a_sub_cgroup() {
    let ctx = Ctx::new("clicgexec");
    let (id, pid) = start_sleeper(&ctx, ctx.config());
    // A "sub" cgroup below the container's, in every hierarchy.
    for (ctrls, _) in cgroups_of(pid) {
        let ctrl = ctrls.split(',').next().unwrap_or("");
        if let Some(dir) = cgroup_dir(pid, ctrl) {
            fs::create_dir_all(dir.join("sub")).unwrap();
            // A new cpuset starts empty and takes no process.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = fs::read_to_string(dir.join(f)) {
                    fs::write(dir.join("sub").join(f), v.trim()).unwrap();
                }
            }
        }
    }
    let sleeper = |flag: &str, pidfile: &str| {
        let pf = ctx.path(pidfile);
        ctx.rt(&[
            "exec",
            "-d",
            "--cgroup",
            flag,
            "--pid-file",
            pf.to_str().unwrap(),
            &id,
            "sleep",
            "100",
        ])
        .ok();
        let p = read_pid_file(&ctx, pidfile);
        ctx.track_pid(p);
        p
    };

    // One path: every hierarchy.
    let p = sleeper("sub", "all.pid");
    let init_cgroups = cgroups_of(pid);
    for (ctrls, path) in cgroups_of(p) {
        let init_path = &init_cgroups.iter().find(|(c, _)| *c == ctrls).unwrap().1;
        assert_eq!(
            path,
            format!("{}/sub", init_path.trim_end_matches('/')),
            "cgroup {ctrls:?} of the exec'd process"
        );
    }

    // controller:path, on a v1 hierarchy: that one only.
    if cgroup_mount("memory").is_some() && cgroup_mount("pids").is_some() {
        let p = sleeper("memory:sub", "mem.pid");
        let mine = cgroups_of(p);
        let of = |list: &[(String, String)], c: &str| {
            list.iter()
                .find(|(cs, _)| cs.split(',').any(|x| x == c))
                .unwrap()
                .1
                .clone()
        };
        assert!(of(&mine, "memory").ends_with("/sub"), "{mine:?}");
        assert_eq!(of(&mine, "pids"), of(&init_cgroups, "pids"), "{mine:?}");
    }

    for bad in ["../x", "sub/../../x"] {
        let out = ctx.rt(&["exec", "--cgroup", bad, &id, "true"]);
        out.exit(255);
        assert!(
            out.stderr.contains("not a sub cgroup path"),
            "--cgroup {bad}: {:?}",
            out.stderr
        );
    }
    finish(&ctx, &id);
}

#[test]
fn console_is_owned_by_the_process_user() {
    let ctx = Ctx::new("clitty");
    let mut c = ctx.config();
    c.set("process.terminal", js("true"));
    c.set("process.user", js(r#"{"uid": 1000, "gid": 1000}"#));
    c.sh("stat -c owner=%u:%g -L /proc/self/fd/0; exec sleep 1000");
    ctx.write_config(&c);
    let sock = ConsoleSocket::new(&ctx);
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt(&[
        "run",
        "-d",
        "--console-socket",
        &sock.path_str(),
        "--bundle",
        &b,
        &id,
    ])
    .ok();
    ctx.track_pid(ctx.pid_of(&id));
    let master = sock.receive_master(T);
    let text = read_pty(&master, T, |s| s.contains("owner=") && s.contains('\n'));
    // runc changes the owner, and keeps the group devpts gave (gid=5: tty).
    assert!(text.contains("owner=1000:5"), "run: {text:?}");
    drop(master);

    let out = ctx.rt(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        &sock.path_str(),
        "-u",
        "1001:1001",
        &id,
        "sh",
        "-c",
        "stat -c owner=%u:%g -L /proc/self/fd/0; sleep 1",
    ]);
    out.ok();
    let master = sock.receive_master(T);
    let text = read_pty(&master, T, |s| s.contains("owner=") && s.contains('\n'));
    assert!(text.contains("owner=1001:5"), "exec: {text:?}");
    finish(&ctx, &id);
}

/// Thaws and removes a cgroup the test made frozen.
struct FrozenCgroup {
    dir: std::path::PathBuf,
    file: &'static str,
    thawed: &'static str,
}

impl Drop for FrozenCgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.dir.join(self.file), self.thawed);
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_frozen_cgroup_is_refused() {
    let ctx = Ctx::new("clifrozen");
    let mut cases = Vec::new();
    if let Some(m) = cgroup_mount("freezer") {
        cases.push((m, "freezer.state", "FROZEN", "THAWED"));
    }
    // runc 1.1-1.3 look at the v1 freezer only, and hang on a hybrid
    // host's frozen v2 cgroup.
    if let Some(m) = cgroup_mount("").filter(|_| is_skiff() || cases.is_empty()) {
        cases.push((m, "cgroup.freeze", "1", "0"));
    }
    if cases.is_empty() {
        skip("no freezer: neither a v1 freezer hierarchy nor cgroup2 is mounted");
        return;
    }
    for (mount, file, frozen, thawed) in cases {
        let id = ctx.id();
        let dir = mount.join(&id);
        fs::create_dir(&dir).unwrap();
        let guard = FrozenCgroup { dir, file, thawed };
        fs::write(guard.dir.join(file), frozen).unwrap();
        let mut c = ctx.config();
        c.set("linux.cgroupsPath", js(&format!("\"/{id}\"")));
        c.sh("exec sleep 1000");
        ctx.write_config(&c);
        let b = ctx.bundle_str();
        let started = Instant::now();
        let out = ctx.rt(&["run", "-d", "--bundle", &b, &id]);
        out.fails();
        assert!(started.elapsed() < T, "refused quickly, not after a hang");
        assert!(out.stderr.contains("frozen"), "{file}: {:?}", out.stderr);
        assert!(guard.dir.exists(), "a cgroup it did not make is left alone");
        ctx.assert_gone(&id);
        drop(guard);
    }
}

/// The fds a process has open, in order.
fn open_fds(pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    fds.sort_unstable();
    fds
}

/// `--debug` without `--log`: the runtime's lines go to the runtime's
/// stderr, never to the container's console, even those the init writes
/// after the console became its stdio (a startContainer hook's).
#[test]
fn debug_lines_stay_off_the_console() {
    let ctx = Ctx::new("clidebugtty");
    let mut c = ctx.config();
    c.set("process.terminal", js("true"));
    c.sh("echo APP; exec sleep 1000");
    c.push(
        "hooks.startContainer",
        js(r#"{"path": "/bin/busybox", "args": ["true"]}"#),
    );
    ctx.write_config(&c);
    let sock = ConsoleSocket::new(&ctx);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let out = ctx.rt(&[
        "--debug",
        "run",
        "-d",
        "--console-socket",
        &sock.path_str(),
        "--bundle",
        &b,
        &id,
    ]);
    out.ok();
    ctx.track_pid(ctx.pid_of(&id));
    let master = sock.receive_master(T);
    let text = read_pty(&master, T, |s| s.contains("APP"));
    assert!(
        text.contains("APP"),
        "the process wrote to its console: {text:?}"
    );
    assert!(
        !text.contains("level=") && !text.contains("msg="),
        "no runtime log line on the console: {text:?}"
    );
    // The log's copy of stderr was close-on-exec.
    assert_eq!(
        open_fds(ctx.pid_of(&id)),
        [0, 1, 2],
        "the container's process inherits only stdio"
    );
    if is_skiff() {
        assert!(
            out.stderr.contains("hooks.startContainer[0]"),
            "the init's debug lines go to the runtime's stderr: {:?}",
            out.stderr
        );
    }
    drop(master);
    finish(&ctx, &id);
}

/// With a terminal, `create` holds none of its caller's pipes once it has
/// exited (go-runc reads its stderr to the end), even under `--debug`; the
/// init's later lines go to `start`'s log instead.
#[test]
fn create_with_a_terminal_lets_go_of_stderr() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let ctx = Ctx::new("clidebugcreate");
    let mut c = ctx.config();
    c.set("process.terminal", js("true"));
    c.sh("echo APP; exec sleep 1000");
    c.push(
        "hooks.startContainer",
        js(r#"{"path": "/bin/busybox", "args": ["true"]}"#),
    );
    ctx.write_config(&c);
    let sock = ConsoleSocket::new(&ctx);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let mut child = Command::new(&runtime().path)
        .arg("--root")
        .arg(&ctx.root)
        .args(["--debug", "create", "--console-socket"])
        .arg(sock.path_str())
        .args(["--bundle", &b, &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn create");
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let status = child.wait().expect("wait for create");
    // Before anything can fail: the init is ours to clean up.
    if let Ok(pid) = std::panic::catch_unwind(|| ctx.pid_of(&id)) {
        ctx.track_pid(pid);
    }
    assert!(status.success(), "create: {status:?}");
    let text = rx
        .recv_timeout(T)
        .expect("create's stderr reaches its end once create has exited");
    if is_skiff() {
        assert!(text.contains("level=debug"), "{text:?}");
    }
    let master = sock.receive_master(T);
    let out = ctx.rt(&["--debug", "start", &id]);
    out.ok();
    let console = read_pty(&master, T, |s| s.contains("APP"));
    assert!(console.contains("APP"), "{console:?}");
    assert_eq!(open_fds(ctx.pid_of(&id)), [0, 1, 2]);
    assert!(!console.contains("level="), "{console:?}");
    if is_skiff() {
        assert!(
            out.stderr.contains("hooks.startContainer[0]"),
            "the init's last lines go to start's stderr: {:?}",
            out.stderr
        );
    }
    drop(master);
    finish(&ctx, &id);
}

/// `kill -a` on a stopped container still signals what is left in its
/// cgroup (runc does; containerd's shim kills a shared pid namespace's
/// leftovers this way once the init has exited).
#[test]
fn kill_all_reaches_leftovers_of_a_stopped_container() {
    let ctx = Ctx::new("clikillleft");
    let id = ctx.id();
    let mut c = ctx.config();
    c.remove_namespace("pid");
    c.set("linux.cgroupsPath", js(&format!("\"/{id}\"")));
    c.sh("sleep 1001 & sleep 1");
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    ctx.rt(&["run", "-d", "--bundle", &b, &id]).ok();
    ctx.track_pid(ctx.pid_of(&id));
    ctx.wait_status(&id, "stopped", T);
    let leftovers: Vec<(i32, u64)> = cgroups_named(&id)
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .filter_map(|pid| Some((pid, proc_starttime(pid)?)))
        .collect();
    for (pid, _) in &leftovers {
        ctx.track_pid(*pid);
    }
    let sleeper = leftovers
        .iter()
        .find(|(pid, _)| proc_cmdline(*pid).contains("1001"))
        .copied();
    let Some((pid, start)) = sleeper else {
        finish(&ctx, &id);
        panic!("the background sleep outlives the init in the cgroup: {leftovers:?}");
    };
    ctx.rt(&["kill", "-a", &id, "KILL"]).ok();
    let gone = wait_gone(pid, start, T);
    finish(&ctx, &id);
    assert!(gone, "kill -a signals the leftover {pid} in the cgroup");
}

/// A parent cgroup made by a test, removed from every hierarchy on drop.
/// Made before the `Ctx`, so it goes after the Ctx has cleaned up the
/// containers in it.
struct ParentCgroup {
    name: String,
}

impl ParentCgroup {
    fn new() -> ParentCgroup {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ParentCgroup {
            name: format!("skiffpar{}-{n}", std::process::id()),
        }
    }
}

impl Drop for ParentCgroup {
    fn drop(&mut self) {
        if let Some(m) = cgroup_mount("freezer") {
            let _ = fs::write(m.join(&self.name).join("freezer.state"), "THAWED");
        }
        for mount in cgroup_mounts() {
            let dir = mount.join(&self.name);
            // A child cgroup empties a moment after its processes died.
            for _ in 0..100 {
                let children: Vec<_> = fs::read_dir(&dir)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.path())
                            .filter(|p| p.is_dir())
                            .collect()
                    })
                    .unwrap_or_default();
                if children.iter().all(|c| fs::remove_dir(c).is_ok()) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = fs::remove_dir(&dir);
        }
    }
}

/// Thaws a v1 freezer cgroup on drop (before the Ctx kills what is in it).
struct Thaw(std::path::PathBuf);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("freezer.state"), "THAWED");
    }
}

/// A frozen parent freezes the container's new cgroup: refused, and what
/// create made is removed (runc 1.1 hangs here).
#[test]
fn a_frozen_parent_cgroup_is_refused() {
    if !is_skiff() {
        eprintln!("runc 1.1 hangs in a frozen parent cgroup: skiff only");
        return;
    }
    let parent = ParentCgroup::new();
    let ctx = Ctx::new("clifrozenpar");
    let Some(mount) = cgroup_mount("freezer") else {
        skip("no v1 freezer hierarchy");
        return;
    };
    let id = ctx.id();
    let pdir = mount.join(&parent.name);
    fs::create_dir(&pdir).unwrap();
    let thaw = Thaw(pdir.clone());
    fs::write(pdir.join("freezer.state"), "FROZEN").unwrap();
    let mut c = ctx.config();
    c.set(
        "linux.cgroupsPath",
        js(&format!("\"/{}/{id}\"", parent.name)),
    );
    c.sh("exec sleep 1000");
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    let started = Instant::now();
    let out = ctx.spawn(&["run", "-d", "--bundle", &b, &id]).wait(T);
    if out.status.success() {
        ctx.track_pid(ctx.pid_of(&id));
        drop(thaw);
        finish(&ctx, &id);
        panic!("run -d in a frozen parent succeeded");
    }
    assert!(started.elapsed() < T, "refused quickly, not after a hang");
    assert!(out.stderr.contains("frozen"), "{:?}", out.stderr);
    assert!(
        !pdir.join(&id).exists(),
        "the cgroup create made is removed"
    );
    assert!(pdir.exists(), "the parent it did not make is left alone");
    ctx.assert_gone(&id);
}

/// SIGKILL is delivered even when the thaw after it fails (a frozen parent
/// keeps the container frozen): kill succeeds, with a warning.
#[test]
fn kill_succeeds_when_the_thaw_fails() {
    let parent = ParentCgroup::new();
    let ctx = Ctx::new("clikillthaw");
    let Some(mount) = cgroup_mount("freezer") else {
        skip("no v1 freezer hierarchy");
        return;
    };
    let id = ctx.id();
    let mut c = ctx.config();
    c.set(
        "linux.cgroupsPath",
        js(&format!("\"/{}/{id}\"", parent.name)),
    );
    let (id, _) = start_sleeper_as(&ctx, c, id);
    let thaw = Thaw(mount.join(&parent.name));
    fs::write(thaw.0.join("freezer.state"), "FROZEN").unwrap();
    let out = ctx.kill(&id, "KILL");
    drop(thaw);
    out.ok();
    if is_skiff() {
        assert!(out.stderr.contains("level=warning"), "{:?}", out.stderr);
    }
    ctx.wait_status(&id, "stopped", T);
    finish(&ctx, &id);
}

/// `--preserve-fds` cannot hand the container the runtime's own log (opened
/// at the lowest free fd when the caller passed fewer fds than it said).
#[test]
fn preserve_fds_never_passes_the_log() {
    let ctx = Ctx::new("clipreservelog");
    if !is_skiff() {
        eprintln!("runc does not check that preserved fds are open: skiff only");
        return;
    }
    let mut c = ctx.config();
    c.sh("echo ran");
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    let root = ctx.root.to_str().unwrap().to_string();
    for log in [true, false] {
        let path = ctx.path("preserve.log");
        let path = path.to_str().unwrap();
        let mut args = vec!["--root", &root];
        if log {
            args.extend(["--log", path]);
        }
        let id = ctx.id();
        args.extend(["run", "--preserve-fds", "1", "--bundle", &b, &id]);
        let out = ctx.rt_noroot(&args);
        out.fails();
        assert!(!out.stdout.contains("ran"), "{:?}", out.stdout);
        assert!(
            out.stderr.contains("fd 3 is not open"),
            "log file {log}: {:?}",
            out.stderr
        );
        ctx.assert_gone(&id);
    }
}
