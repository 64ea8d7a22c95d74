//! A containerd shim v2 under Debian's containerd 1.6, driven with `ctr`:
//! run --rm, run -d + exec, a terminal, signals, pause/resume, ps,
//! metrics, a containerd killed -9 and restarted under a running task,
//! the task events, and nothing left behind.
//!
//! The shim under test is containerd's runtime name [`RUNTIME`]
//! (`SKIFF_SHIM_RUNTIME` overrides it: `io.containerd.runc.v2` is Debian's
//! own shim, the baseline these tests were written against). Every
//! scenario runs three times: with the shim's default runtime
//! (`default_runtime::*`; for skiff its own runtime), with
//! BinaryName=/usr/sbin/runc (`runc_binary::*`) and with
//! BinaryName=/usr/bin/crun (`crun_binary::*`; containerd runs in a
//! private mount namespace without the cgroup2 mount, which crun 1.8
//! needs on this hybrid host). The runc shim gets the binary from
//! `--runc-binary`; other shims from a runtime config file
//! (`--runtime-config-path`, TOML `binary_name` and `root`).

mod common;
#[path = "common/containerd.rs"]
mod containerd;

use common::*;
use containerd::*;
use miniserde::json::{self, Value};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The shim under test (containerd's runtime name);
/// `SKIFF_SHIM_RUNTIME=io.containerd.runc.v2` runs the same tests against
/// Debian's own shim, the baseline they were written against.
const RUNTIME: &str = "io.containerd.skiff.v2";

fn runtime_name() -> String {
    match std::env::var("SKIFF_SHIM_RUNTIME") {
        Ok(r) if !r.is_empty() => r,
        _ => RUNTIME.to_string(),
    }
}

fn is_runc_shim() -> bool {
    runtime_name() == "io.containerd.runc.v2"
}

/// The OCI runtime the shim drives.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    /// Whatever the shim uses when told nothing.
    Default,
    Runc,
    Crun,
}

impl Backend {
    fn binary(self) -> Option<&'static str> {
        match self {
            Backend::Default => None,
            Backend::Runc => Some("/usr/sbin/runc"),
            Backend::Crun => Some("/usr/bin/crun"),
        }
    }
}

/// A containerd with the busybox image, and the `ctr run` flags that pick
/// the shim, its runtime binary and root.
struct Setup<'a> {
    ctd: Containerd<'a>,
    run_flags: Vec<String>,
}

impl<'a> Setup<'a> {
    /// None: a prerequisite is missing (printed; fails under CI=true).
    fn new(ctx: &'a Ctx, backend: Backend) -> Option<Setup<'a>> {
        if !have_containerd()
            && skip("no containerd/ctr here (scripts/ensure-deps test installs them)")
        {
            return None;
        }
        if backend == Backend::Crun {
            if let Err(why) = crun_usable() {
                if skip(&format!("crun cannot run here: {why}")) {
                    return None;
                }
            }
        }
        let ctd = Containerd::start_with(
            ctx,
            Options {
                private_mounts: backend == Backend::Crun,
                ..Options::default()
            },
        );
        ctd.import_busybox();
        let root = ctd.runtime_root.display().to_string();
        let mut run_flags = vec![
            "--runtime".to_string(),
            runtime_name(),
            "--fifo-dir".to_string(),
            ctd.fifo_dir.display().to_string(),
        ];
        if is_runc_shim() {
            run_flags.extend(["--runc-root".to_string(), root]);
            if let Some(bin) = backend.binary() {
                run_flags.extend(["--runc-binary".to_string(), bin.to_string()]);
            }
        } else {
            let mut toml = format!("root = \"{root}\"\n");
            if let Some(bin) = backend.binary() {
                toml.push_str(&format!("binary_name = \"{bin}\"\n"));
            }
            let path = ctd.dir.join("runtime.toml");
            fs::write(&path, toml).unwrap();
            run_flags.extend([
                "--runtime-config-path".to_string(),
                path.display().to_string(),
            ]);
        }
        Some(Setup { ctd, run_flags })
    }

    /// `ctr run FLAGS... [runtime flags] IMAGE ID CMD...`
    fn run_args(&self, flags: &[&str], id: &str, cmd: &[&str]) -> Vec<String> {
        self.ctd.track(id);
        let mut args = vec!["run".to_string()];
        args.extend(flags.iter().map(|s| s.to_string()));
        args.extend(self.run_flags.iter().cloned());
        args.push(IMAGE.to_string());
        args.push(id.to_string());
        args.extend(cmd.iter().map(|s| s.to_string()));
        args
    }

    #[track_caller]
    fn run(&self, flags: &[&str], id: &str, cmd: &[&str]) -> CtrOut {
        let args = self.run_args(flags, id, cmd);
        self.ctd.ctr(&strs(&args))
    }

    fn run_bg(&self, flags: &[&str], id: &str, cmd: &[&str]) -> CtrBg {
        let args = self.run_args(flags, id, cmd);
        self.ctd.ctr_bg(&strs(&args))
    }

    /// `run -d` with the task's stdout and stderr appended to a file
    /// (`--log-uri file://`); returns the task pid and the file.
    #[track_caller]
    fn run_detached(&self, id: &str, cmd: &[&str]) -> (i32, PathBuf) {
        let log = self.ctd.dir.join(format!("{id}.log"));
        let uri = format!("file://{}", log.display());
        self.run(&["-d", "--log-uri", &uri], id, cmd).ok();
        let pid = self.ctd.wait_task_status(id, "RUNNING");
        assert!(pid > 0, "task pid {pid}");
        self.ctd.track_pid(pid);
        (pid, log)
    }

    /// Kill the task with SIGKILL, remove task and container, and check
    /// that nothing is left.
    #[track_caller]
    fn remove(&self, id: &str) {
        if self
            .ctd
            .task_status(id)
            .is_some_and(|(_, s)| s != "STOPPED")
        {
            self.ctd.ctr(&["task", "kill", "-s", "KILL", id]).ok();
            self.ctd.wait_task_status(id, "STOPPED");
        }
        self.ctd.ctr(&["task", "rm", id]).ok();
        self.ctd.ctr(&["container", "rm", id]).ok();
        self.ctd.assert_gone(id);
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn no_cr(s: &str) -> String {
    s.replace('\r', "")
}

/// Poll a file until `f(content)` holds; returns the content.
#[track_caller]
fn wait_file(path: &Path, what: &str, f: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let ok = wait_until(T, || {
        text = fs::read_to_string(path).unwrap_or_default();
        f(&text)
    });
    assert!(ok, "{what}: {} holds {text:?}", path.display());
    text
}

// ---------------------------------------------------------------------------
// Scenarios

/// `ctr run --rm`: stdout, stderr and the exit code come through, and the
/// container is gone afterwards.
fn run_rm(backend: Backend) {
    let ctx = Ctx::new("shim-run-rm");
    let Some(s) = Setup::new(&ctx, backend) else {
        return;
    };
    let out = s.run(
        &["--rm"],
        "rm1",
        &[
            "sh",
            "-c",
            "echo hello from the container; echo on-stderr >&2; exit 3",
        ],
    );
    out.exit(3);
    assert_eq!(
        no_cr(&out.stdout),
        "hello from the container\n",
        "{}",
        out.describe()
    );
    assert!(out.stderr.contains("on-stderr"), "{}", out.describe());
    s.ctd.assert_gone("rm1");
    // A clean exit, too: 0 from the task is 0 from ctr.
    let out = s.run(&["--rm"], "rm2", &["true"]);
    out.exit(0);
    s.ctd.assert_gone("rm2");
}

/// `run -d`, then `task exec`: the exec's output and exit code, inside
/// the task's namespaces; the task's own output reaches its log.
fn detach_exec(backend: Backend) {
    let ctx = Ctx::new("shim-exec");
    let Some(s) = Setup::new(&ctx, backend) else {
        return;
    };
    let (pid, log) = s.run_detached("ex1", &["sh", "-c", "echo started; exec sleep 1000"]);
    wait_file(&log, "task output", |t| t.contains("started"));
    assert_eq!(proc_cmdline(pid), "sleep 1000");
    let out = s.ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "ex1",
        "sh",
        "-c",
        "echo in-exec $(cat /proc/1/cmdline | tr '\\0' ' '); echo exec-err >&2; exit 5",
    ]);
    out.exit(5);
    assert_eq!(
        no_cr(&out.stdout),
        "in-exec sleep 1000\n",
        "{}",
        out.describe()
    );
    assert!(out.stderr.contains("exec-err"), "{}", out.describe());
    // The exec id can be used again once the exec is gone.
    let out = s.ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "ex1",
        "sh",
        "-c",
        "exit 0",
    ]);
    out.exit(0);
    // The task did not notice.
    assert_eq!(
        s.ctd.task_status("ex1").map(|t| t.1).as_deref(),
        Some("RUNNING")
    );
    s.remove("ex1");
}

/// `ctr run -t` under script(1): the container sees a terminal of the
/// size ctr had (ResizePty), echoes what is typed, and its exit code
/// is ctr's.
fn tty(backend: Backend) {
    let ctx = Ctx::new("shim-tty");
    let Some(s) = Setup::new(&ctx, backend) else {
        return;
    };
    if !Path::new("/usr/bin/script").is_file() && skip("script(1) is missing (bsdutils)") {
        return;
    }
    let args = s.run_args(&["-t", "--rm"], "tty1", &["sh"]);
    // script gives ctr a pty; stty sets its size first, which ctr passes
    // on to the shim.
    let inner = format!("stty rows 33 cols 111; {}", s.ctd.ctr_shell(&strs(&args)));
    let out = s.ctd.dir.join("script.out");
    let err = s.ctd.dir.join("script.err");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env("SKIFF_TEST_MARK", &ctx.mark)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .expect("run script(1)");
    let mut stdin = child.stdin.take().unwrap();
    let bg = CtrBg {
        child,
        cmd: format!("script -q -e -c {inner:?} /dev/null"),
        out: out.clone(),
        err,
    };
    // The shell's prompt: the container's side is up.
    let up = wait_until(T, || {
        fs::read_to_string(&out).unwrap_or_default().contains("# ")
    });
    if !up {
        let task = s.ctd.task_status("tty1");
        let shims = s.ctd.describe_shims();
        let res = bg.stop();
        panic!(
            "no shell prompt on the terminal (task: {task:?}): {}\n--- shims ---\n{shims}--- containerd log ---\n{}",
            res.describe(),
            s.ctd.log()
        );
    }
    stdin
        .write_all(b"echo tty-$((6*7)); [ -t 0 ] && echo is-a-tty; stty size; exit 7\r")
        .unwrap();
    stdin.flush().unwrap();
    let res = bg.wait(T);
    let text = no_cr(&res.stdout);
    assert_eq!(res.code(), Some(7), "{}", res.describe());
    // The pty echoes the typed line, then the shell's output.
    assert!(text.contains("echo tty-$((6*7))"), "no echo: {text:?}");
    assert!(text.contains("\ntty-42\n"), "{text:?}");
    assert!(text.contains("\nis-a-tty\n"), "{text:?}");
    assert!(text.contains("\n33 111\n"), "terminal size: {text:?}");
    drop(stdin);
    s.ctd.assert_gone("tty1");
}

/// A signal ends the task with 128+n: SIGKILL to a `run --rm` init (137
/// from ctr), SIGTERM to an exec'd process (143 from `task exec`).
fn kill_signal(backend: Backend) {
    let ctx = Ctx::new("shim-kill");
    let Some(s) = Setup::new(&ctx, backend) else {
        return;
    };
    let run = s.run_bg(&["--rm"], "k1", &["sleep", "1000"]);
    let pid = s.ctd.wait_task_status("k1", "RUNNING");
    s.ctd.track_pid(pid);
    let start = proc_starttime(pid).expect("task process");

    let exec = s
        .ctd
        .ctr_bg(&["task", "exec", "--exec-id", "e1", "k1", "sleep", "999"]);
    let ok = wait_until(T, || {
        s.ctd.try_ctr(&["task", "ps", "k1"]).stdout.lines().count() >= 3
    });
    assert!(ok, "exec'd sleep not in `task ps`");
    s.ctd
        .ctr(&["task", "kill", "--exec-id", "e1", "-s", "TERM", "k1"])
        .ok();
    let out = exec.wait(T);
    assert_eq!(out.code(), Some(143), "{}", out.describe());

    s.ctd.ctr(&["task", "kill", "-s", "KILL", "k1"]).ok();
    let out = run.wait(T);
    assert_eq!(out.code(), Some(137), "{}", out.describe());
    assert!(wait_gone(pid, start, T), "task process {pid} still alive");
    s.ctd.assert_gone("k1");
}

/// `task pause` freezes the task (PAUSED in `ctr t ls`, the processes
/// stop running), `task resume` thaws it.
fn pause_resume(backend: Backend) {
    let ctx = Ctx::new("shim-pause");
    let Some(s) = Setup::new(&ctx, backend) else {
        return;
    };
    let (pid, log) = s.run_detached(
        "p1",
        &[
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done",
        ],
    );
    wait_file(&log, "ticks", |t| t.lines().count() >= 2);
    s.ctd.ctr(&["task", "pause", "p1"]).ok();
    s.ctd.wait_task_status("p1", "PAUSED");
    let freezer = cgroup_dir(pid, "freezer").expect("freezer cgroup");
    assert_eq!(
        fs::read_to_string(freezer.join("freezer.state"))
            .unwrap()
            .trim(),
        "FROZEN"
    );
    let frozen = fs::read_to_string(&log).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        frozen,
        "output went on while paused"
    );
    s.ctd.ctr(&["task", "resume", "p1"]).ok();
    s.ctd.wait_task_status("p1", "RUNNING");
    wait_file(&log, "ticks after resume", |t| t.len() > frozen.len());
    s.remove("p1");
}

/// `task ps` lists the task's processes (the init and its child).
fn task_ps(backend: Backend) {
    let ctx = Ctx::new("shim-ps");
    let Some(s) = Setup::new(&ctx, backend) else {
        return;
    };
    let (pid, _) = s.run_detached("ps1", &["sh", "-c", "sleep 1000 & exec sleep 1001"]);
    let mut pids: Vec<i32> = Vec::new();
    let ok = wait_until(T, || {
        let out = s.ctd.try_ctr(&["task", "ps", "ps1"]);
        pids = out
            .stdout
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        pids.len() == 2
    });
    assert!(ok, "task ps: {pids:?}");
    assert!(pids.contains(&pid), "init {pid} not in {pids:?}");
    let child = pids.iter().find(|&&p| p != pid).copied().unwrap();
    assert_eq!(proc_cmdline(child), "sleep 1000");
    assert_eq!(proc_cmdline(pid), "sleep 1001");
    s.remove("ps1");
}

/// `task metrics` reports the task's cgroup: its process count, memory
/// and CPU use.
fn task_metrics(backend: Backend) {
    let ctx = Ctx::new("shim-metrics");
    let Some(s) = Setup::new(&ctx, backend) else {
        return;
    };
    s.run_detached(
        "m1",
        &[
            "sh",
            "-c",
            "sleep 1000 & i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1001",
        ],
    );
    let mut last = String::new();
    let ok = wait_until(T, || {
        let out = s
            .ctd
            .try_ctr(&["task", "metrics", "--format", "json", "m1"]);
        last = out.describe();
        let Ok(v) = json::from_str::<Value>(&out.stdout) else {
            return false;
        };
        as_u64(jget(&v, "pids.current")) == Some(2)
            && as_u64(jget(&v, "cpu.usage.total")).is_some_and(|n| n > 0)
            && as_u64(jget(&v, "memory.usage.usage")).is_some_and(|n| n > 0)
    });
    if !ok {
        // containerd logs why a shim's Stats failed and tells ctr nothing.
        let log = s.ctd.log();
        let why: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("level=error") && l.contains("metrics"))
            .take(3)
            .collect();
        panic!(
            "metrics: {last}\n--- containerd log ---\n{}",
            why.join("\n")
        );
    }
    let table = s.ctd.ctr(&["task", "metrics", "m1"]);
    table.ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pids.current", "2"]),
        "{}",
        table.describe()
    );
    s.remove("m1");
}

/// containerd killed -9 while a task runs: the task keeps running and its
/// output keeps reaching the log; it exits while containerd is down; the
/// restarted containerd sees it STOPPED, and `task rm` reports its exit
/// code.
fn daemon_restart(backend: Backend) {
    let ctx = Ctx::new("shim-restart");
    let Some(mut s) = Setup::new(&ctx, backend) else {
        return;
    };
    // The task ticks until the flag file (bind-mounted dir) appears, then
    // exits 3.
    let flag_dir = s.ctd.dir.join("flag");
    fs::create_dir_all(&flag_dir).unwrap();
    let mount = format!(
        "type=bind,src={},dst=/flag,options=rbind:rw",
        flag_dir.display()
    );
    let log = s.ctd.dir.join("r1.log");
    let uri = format!("file://{}", log.display());
    s.run(
        &["-d", "--log-uri", &uri, "--mount", &mount],
        "r1",
        &["sh", "-c", "i=0; while [ ! -e /flag/stop ]; do i=$((i+1)); echo tick $i; sleep 0.05; done; echo bye; exit 3"],
    )
    .ok();
    let pid = s.ctd.wait_task_status("r1", "RUNNING");
    s.ctd.track_pid(pid);
    let start = proc_starttime(pid).unwrap();
    wait_file(&log, "ticks", |t| t.contains("tick 2\n"));
    let shims = s.ctd.shim_pids_for("r1");
    assert_eq!(shims.len(), 1, "shim processes for r1: {shims:?}");

    s.ctd.kill9();
    // Without containerd: the task runs and its output flows.
    let before = fs::read_to_string(&log).unwrap().len();
    wait_file(&log, "output while containerd is down", |t| {
        t.len() > before + 20
    });
    assert!(process_alive(pid, start), "task died with containerd");
    // It exits while containerd is down.
    fs::write(flag_dir.join("stop"), "").unwrap();
    wait_file(&log, "the task's last words", |t| t.ends_with("bye\n"));
    assert!(wait_gone(pid, start, T), "task process still alive");

    s.ctd.restart();
    let status = s.ctd.wait_task_status("r1", "STOPPED");
    assert_eq!(status, pid, "pid after the restart");
    let out = s.ctd.ctr(&["task", "rm", "r1"]);
    out.ok();
    assert!(
        out.stderr.contains("exit code 3"),
        "task rm should report the exit code: {}",
        out.describe()
    );
    s.ctd.ctr(&["container", "rm", "r1"]).ok();
    s.ctd.assert_gone("r1");
}

/// `ctr events` shows the task's events in order: create, start, exit,
/// delete (and exec-added/exec-started for an exec).
fn events(backend: Backend) {
    let ctx = Ctx::new("shim-events");
    let Some(s) = Setup::new(&ctx, backend) else {
        return;
    };
    let ev = s.ctd.ctr_bg(&["events"]);
    // `ctr events` subscribes asynchronously: wait until it sees something.
    let probe = s.run(&["--rm"], "probe", &["true"]);
    probe.exit(0);
    wait_until(T, || ev.stdout_so_far().contains("/tasks/delete"));
    s.ctd.assert_gone("probe");

    s.run_detached("ev1", &["sleep", "1000"]);
    s.ctd
        .ctr(&["task", "exec", "--exec-id", "x1", "ev1", "true"])
        .exit(0);
    s.remove("ev1");
    let want = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/exit",
        "/tasks/exit",
        "/tasks/delete",
    ];
    let mut topics = Vec::new();
    let ok = wait_until(T, || {
        topics = task_topics(&ev.stdout_so_far(), "ev1");
        topics.len() >= want.len()
    });
    let text = ev.stop().stdout;
    assert!(
        ok && topics == want,
        "events for ev1: {topics:?}, wanted {want:?}\n{text}"
    );
    // The exec's exit (id x1) comes before the task's (id ev1).
    let exits: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" /tasks/exit ") && l.contains(r#""container_id":"ev1""#))
        .collect();
    assert!(exits[0].contains(r#""id":"x1""#), "{exits:?}");
    assert!(exits[1].contains(r#""id":"ev1""#), "{exits:?}");
    assert!(exits[1].contains(r#""exit_status":137"#), "{exits:?}");
}

/// The `/tasks/...` topics `ctr events` printed for `id`, in order.
fn task_topics(text: &str, id: &str) -> Vec<String> {
    let key = format!(r#""container_id":"{id}""#);
    text.lines()
        .filter(|l| l.contains(&key))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
        .map(str::to_string)
        .collect()
}

/// A Kill of an exec whose start is still under way waits for the start
/// (the runc shim holds the exec's lock across `runc exec`): the process
/// is already in the container (`task ps` lists it) while the runtime
/// binary has not returned, here held back 2 s by a wrapper around runc.
#[test]
fn kill_waits_for_an_exec_being_started() {
    let ctx = Ctx::new("shim-kill-starting");
    let Some(mut s) = Setup::new(&ctx, Backend::Runc) else {
        return;
    };
    let wrapper = s.ctd.dir.join("slow-exec-runc");
    fs::write(
        &wrapper,
        "#!/bin/sh\n/usr/sbin/runc \"$@\"\nrc=$?\ncase \" $* \" in *\" exec \"*) sleep 2;; esac\nexit $rc\n",
    )
    .unwrap();
    let exe = <fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    fs::set_permissions(&wrapper, exe).unwrap();
    let wrapper = wrapper.display().to_string();
    if let Some(i) = s.run_flags.iter().position(|f| f == "--runc-binary") {
        s.run_flags[i + 1] = wrapper;
    } else {
        let path = s.ctd.dir.join("runtime.toml");
        let toml = fs::read_to_string(&path).unwrap();
        assert!(toml.contains("/usr/sbin/runc"), "{toml}");
        fs::write(&path, toml.replace("/usr/sbin/runc", &wrapper)).unwrap();
    }
    let (pid, _) = s.run_detached("ks1", &["sleep", "1000"]);
    let exec = s
        .ctd
        .ctr_bg(&["task", "exec", "--exec-id", "e1", "ks1", "sleep", "999"]);
    let ok = wait_until(T, || {
        s.ctd.try_ctr(&["task", "ps", "ks1"]).stdout.lines().count() >= 3
    });
    assert!(ok, "exec'd sleep not in `task ps`");
    // Within the wrapper's 2 s: the start has not returned yet.
    s.ctd
        .ctr(&["task", "kill", "--exec-id", "e1", "-s", "TERM", "ks1"])
        .ok();
    let out = exec.wait(T);
    assert_eq!(out.code(), Some(143), "{}", out.describe());
    assert!(process_alive(pid, proc_starttime(pid).unwrap()));
    s.remove("ks1");
}

/// The harness itself: what a test leaves in its containerd (a running
/// task: its container, shim and process) is reported when the instance
/// stops, and removed.
#[test]
fn harness_reports_what_a_test_leaves() {
    let ctx = Ctx::new("shim-harness");
    let Some(s) = Setup::new(&ctx, Backend::Default) else {
        return;
    };
    let (pid, _) = s.run_detached("left1", &["sleep", "1000"]);
    let start = proc_starttime(pid).unwrap();
    let mut ctd = s.ctd;
    let left = ctd.stop();
    for want in [
        "task left1",
        "container left1",
        "shim process",
        "bundle",
        "mount",
    ] {
        assert!(
            left.iter().any(|l| l.starts_with(want)),
            "{want:?} not reported in {left:?}"
        );
    }
    assert!(
        !process_alive(pid, start),
        "the task's process survived the clean-up"
    );
    let again = ctd.stop();
    assert!(again.is_empty(), "left after the clean-up: {again:?}");
}

macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod default_runtime {
            $( #[test] fn $name() { super::$name(super::Backend::Default) } )*
        }
        mod runc_binary {
            $( #[test] fn $name() { super::$name(super::Backend::Runc) } )*
        }
        mod crun_binary {
            $( #[test] fn $name() { super::$name(super::Backend::Crun) } )*
        }
    };
}

for_each_backend!(
    run_rm,
    detach_exec,
    tty,
    kill_signal,
    pause_resume,
    task_ps,
    task_metrics,
    daemon_restart,
    events,
);
