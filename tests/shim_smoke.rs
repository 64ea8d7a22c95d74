//! The skiff shim under Debian's containerd 1.6: a quick `ctr run --rm`
//! through a private containerd with `--runtime io.containerd.skiff.v2`,
//! the shim's command line on its own (-v, -info, start/delete errors),
//! and the shim's memory. The thorough suite is tests/shim_containerd.rs.

mod common;
#[path = "common/containerd.rs"]
mod containerd;

use common::*;
use containerd::{build_image, BUSYBOX_CONFIG, IMAGE, T};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNTIME: &str = "io.containerd.skiff.v2";

struct CtrOut {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    cmd: String,
}

impl CtrOut {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "`{}` failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A containerd of our own, stopped (by its pid) on drop.
struct Containerd<'a> {
    ctx: &'a Ctx,
    dir: PathBuf,
    sock: String,
    ns: String,
    child: Option<Child>,
    n: std::cell::Cell<u32>,
}

/// containerd with our config, `containerd-shim-skiff-v2` first on its PATH.
fn spawn_containerd(dir: &Path, mark: &str, append_log: bool) -> Child {
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = fs::OpenOptions::new()
        .create(true)
        .append(append_log)
        .write(true)
        .truncate(!append_log)
        .open(dir.join("containerd.log"))
        .unwrap();
    Command::new("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("PATH", path)
        .env("SKIFF_TEST_MARK", mark)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start containerd")
}

impl<'a> Containerd<'a> {
    /// containerd dies (SIGKILL) and comes back with the same config.
    fn kill9_and_restart(&mut self) {
        let mut child = self.child.take().expect("containerd running");
        let _ = child.kill();
        let _ = child.wait();
        self.child = Some(spawn_containerd(&self.dir, &self.ctx.mark, true));
        let deadline = Instant::now() + T;
        while self.ctr(&["version"]).code != Some(0) {
            assert!(Instant::now() < deadline, "containerd did not come back");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start(ctx: &'a Ctx) -> Containerd<'a> {
        let dir = ctx.path("ctd");
        fs::create_dir_all(&dir).unwrap();
        let sock = ctx.path("c.sock").display().to_string();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[debug]
  level = "info"
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        // containerd finds `containerd-shim-skiff-v2` on its PATH.
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(skiff_binary(), bin.join("containerd-shim-skiff-v2")).unwrap();
        let child = spawn_containerd(&dir, &ctx.mark, false);
        let ctd = Containerd {
            ctx,
            dir,
            sock,
            ns: format!("skiff-{}-{}", ctx.name, std::process::id()),
            child: Some(child),
            n: std::cell::Cell::new(0),
        };
        let deadline = Instant::now() + T;
        loop {
            if Path::new(&ctd.sock).exists() && ctd.ctr(&["version"]).code == Some(0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                fs::read_to_string(ctd.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ctd
    }

    #[allow(dead_code)]
    fn runc_root(&self) -> PathBuf {
        self.dir.join("runc-root")
    }

    /// `ctr -a SOCK -n NS ARGS`, with a timeout.
    fn ctr(&self, args: &[&str]) -> CtrOut {
        let i = self.n.get();
        self.n.set(i + 1);
        let out = self.dir.join(format!("ctr{i}.out"));
        let err = self.dir.join(format!("ctr{i}.err"));
        let cmd = format!("ctr -n {} {}", self.ns, args.join(" "));
        let mut child = Command::new("ctr")
            .args(["-a", &self.sock, "-n", &self.ns])
            .args(args)
            .env("SKIFF_TEST_MARK", &self.ctx.mark)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("run ctr");
        let deadline = Instant::now() + T;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{cmd}` did not finish within {T:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        CtrOut {
            code: status.code(),
            stdout: fs::read_to_string(&out).unwrap_or_default(),
            stderr: fs::read_to_string(&err).unwrap_or_default(),
            cmd,
        }
    }

    /// The STATUS column of `ctr task ls` for `id` (None: no task).
    fn task_status(&self, id: &str) -> Option<(i32, String)> {
        let out = self.ctr(&["task", "ls"]);
        out.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    #[track_caller]
    fn wait_task_status(&self, id: &str, want: &str) -> i32 {
        let mut last = None;
        let ok = wait_until(T, || {
            last = self.task_status(id);
            last.as_ref().is_some_and(|(_, s)| s == want)
        });
        assert!(ok, "task {id} is {last:?}, wanted {want}");
        last.unwrap().0
    }

    /// Remove whatever a failed test left in our namespace, then stop
    /// containerd and unmount what it mounted under the test dir, and the
    /// runtime's (empty) state directory of the namespace.
    fn stop(&mut self) {
        let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&self.ns));
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            for id in self.ctr(&["task", "ls", "-q"]).stdout.split_whitespace() {
                self.ctr(&["task", "kill", "-s", "KILL", id]);
                wait_until(Duration::from_secs(5), || {
                    self.task_status(id).is_none_or(|(_, s)| s == "STOPPED")
                });
                self.ctr(&["task", "delete", "-f", id]);
            }
            for id in self
                .ctr(&["container", "ls", "-q"])
                .stdout
                .split_whitespace()
            {
                self.ctr(&["container", "delete", id]);
            }
            // SAFETY: kill(2) on containerd, our own unreaped child.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: umount2 of a mount point under our test dir.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
}

impl Drop for Containerd<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn have_containerd() -> bool {
    if Command::new("containerd").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "containerd is missing (scripts/ensure-deps test installs it)"
    );
    eprintln!("skipped: no containerd here (scripts/ensure-deps test installs it)");
    false
}

fn import_image(ctx: &Ctx, ctd: &Containerd) {
    let tar = ctx.path("bb.tar");
    build_image(busybox_rootfs(), BUSYBOX_CONFIG, &tar);
    ctd.ctr(&[
        "images",
        "import",
        "--base-name",
        "docker.io/library/bb",
        tar.to_str().unwrap(),
    ])
    .ok();
}

/// The pids of running shims whose command line names our namespace.
fn shims_of(ns: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = proc_cmdline(pid);
        if cmd.contains("containerd-shim-skiff-v2") && cmd.contains(ns) {
            found.push(pid);
        }
    }
    found
}

fn status_kb(pid: i32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn ctr_run_rm_through_the_skiff_shim() {
    let ctx = Ctx::new("shim-run");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);

    // Output on both streams, the exit status, nothing left.
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        IMAGE,
        "r1",
        "sh",
        "-c",
        "echo hello from the shim; echo on-stderr >&2; exit 3",
    ]);
    let log = || fs::read_to_string(ctd.dir.join("containerd.log")).unwrap_or_default();
    assert_eq!(
        out.code,
        Some(3),
        "{} {}\n{}",
        out.stdout,
        out.stderr,
        log()
    );
    assert_eq!(out.stdout, "hello from the shim\n");
    assert!(out.stderr.contains("on-stderr"), "{}", out.stderr);
    assert!(ctd.ctr(&["container", "ls", "-q"]).stdout.trim().is_empty());
    assert!(
        wait_until(Duration::from_secs(5), || shims_of(&ns).is_empty()),
        "shim still running: {:?}",
        shims_of(&ns)
    );

    // A megabyte written just before the exit arrives whole: the output
    // is drained before the exit is reported.
    let out = ctd.ctr(&[
        "run", "--rm", "--runtime", RUNTIME, IMAGE, "r1b", "sh", "-c",
        "i=0; while [ $i -lt 20000 ]; do echo 0123456789012345678901234567890123456789012345678; i=$((i+1)); done",
    ]);
    out.ok();
    assert_eq!(out.stdout.len(), 20000 * 50, "output lost before the exit");

    // A program that is not there: a clear error, nothing left.
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        IMAGE,
        "r0",
        "/no/such/program",
    ]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("/no/such/program"), "{}", out.stderr);
    let _ = ctd.ctr(&["container", "delete", "r0"]);
    assert!(
        wait_until(Duration::from_secs(5), || shims_of(&ns).is_empty()),
        "shim still running after a failed create: {:?}",
        shims_of(&ns)
    );

    // A long-running task: State, Pids, Exec, Kill, Wait, Delete.
    ctd.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "r2",
        "sleep",
        "1000",
    ])
    .ok();
    let pid = ctd.wait_task_status("r2", "RUNNING");
    ctx.track_pid(pid);
    let shims = shims_of(&ns);
    assert_eq!(shims.len(), 1, "{shims:?}");
    let shim = shims[0];
    ctx.track_pid(shim);
    let out = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "r2",
        "sh",
        "-c",
        "echo in-exec; exit 5",
    ]);
    assert_eq!(out.code, Some(5), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "in-exec\n");
    let ps = ctd.ctr(&["task", "ps", "r2"]);
    ps.ok();
    assert!(ps.stdout.contains(&pid.to_string()), "{}", ps.stdout);
    let hwm = status_kb(shim, "VmHWM:").unwrap_or(0);
    let rss = status_kb(shim, "VmRSS:").unwrap_or(0);
    let anon = status_kb(shim, "RssAnon:").unwrap_or(0);
    let threads = status_kb(shim, "Threads:").unwrap_or(0);
    eprintln!(
        "shim {shim}: VmHWM {hwm} kB, VmRSS {rss} kB (anon {anon} kB), {threads} threads, one running container"
    );
    ctd.ctr(&["task", "kill", "-s", "KILL", "r2"]).ok();
    ctd.wait_task_status("r2", "STOPPED");
    ctd.ctr(&["task", "delete", "r2"]).ok();
    ctd.ctr(&["container", "delete", "r2"]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || shims_of(&ns).is_empty()),
        "shim still running after the last task: {:?}",
        shims_of(&ns)
    );
    let state: Vec<PathBuf> = fs::read_dir(Path::new("/run/containerd/runc").join(&ns))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(state.is_empty(), "runtime state left: {state:?}");
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
    for id in ["r1", "r2"] {
        let dirs = CgroupDirs::existing(&format!("/{ns}/{id}"));
        assert!(dirs.is_empty(), "cgroups left: {dirs:?}");
    }
    for hierarchy in cgroup_mounts() {
        let _ = fs::remove_dir(hierarchy.join(&ns));
    }
    ctd.stop();
    assert!(
        mounts_under(&ctx.dir).is_empty(),
        "{:?}",
        mounts_under(&ctx.dir)
    );
}

fn shim(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(skiff_binary())
        .arg("containerd-shim-skiff-v2")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn shim_command_line() {
    let out = shim(&["-v"], b"");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Version"));
    // -info: a protobuf RuntimeInfo; field 1 (name) first.
    let out = shim(&["-info"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = b"io.containerd.skiff.v2";
    assert_eq!(out.stdout[0], 0x0a);
    assert_eq!(&out.stdout[2..2 + name.len()], name);
    // A bad flag or action is an error naming it.
    let out = shim(&["-namespace", "n", "-id", "x", "frobnicate"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
    // delete of a container nobody knows: a DeleteResponse with 137.
    let dir = std::env::temp_dir().join(format!("skiff-shim-del-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let out = shim(
        &[
            "-namespace",
            "skiff-none",
            "-address",
            "/nonexistent.sock",
            "-publish-binary",
            "/bin/false",
            "-id",
            "nobody",
            "-bundle",
            dir.to_str().unwrap(),
            "delete",
        ],
        b"",
    );
    let _ = fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // field 2 (exit_status) = 137 as a varint: 0x10 0x89 0x01
    assert!(
        out.stdout.windows(3).any(|w| w == [0x10, 0x89, 0x01]),
        "{:?}",
        out.stdout
    );
}

#[test]
fn events_in_order_and_oom() {
    let ctx = Ctx::new("shim-events");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);
    let events_out = ctx.path("events.out");
    let mut events = Command::new("ctr")
        .args(["-a", &ctd.sock, "events"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&events_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // A shell that doubles a string until the OOM killer ends it.
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--memory-limit",
        "16777216",
        IMAGE,
        "oom1",
        "sh",
        "-c",
        "x=0123456789; while :; do x=$x$x; done",
    ]);
    assert_eq!(out.code, Some(137), "{} {}", out.stdout, out.stderr);
    let ok = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&events_out)
            .unwrap_or_default()
            .contains("/tasks/delete")
    });
    let _ = events.kill();
    let _ = events.wait();
    let text = fs::read_to_string(&events_out).unwrap_or_default();
    assert!(ok, "no /tasks/delete event:\n{text}");
    let topics: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&ns))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
        .collect();
    let pos = |t: &str| topics.iter().position(|x| *x == t);
    let (c, s, e, d) = (
        pos("/tasks/create"),
        pos("/tasks/start"),
        pos("/tasks/exit"),
        pos("/tasks/delete"),
    );
    assert!(c < s && s < e && e < d && c.is_some(), "order: {topics:?}");
    assert!(pos("/tasks/oom").is_some(), "no oom event: {topics:?}");
    ctd.stop();
}

#[test]
fn terminal_through_the_console_socket() {
    let ctx = Ctx::new("shim-tty");
    if !have_containerd() {
        return;
    }
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "script(1) is missing"
        );
        eprintln!("skipped: no script(1)");
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);
    // script(1) gives ctr a terminal; the container gets a pty of its own.
    let inner = format!(
        "ctr -a {} -n {ns} run -t --rm --runtime {RUNTIME} {IMAGE} t1 sh -c 'tty; stty size; exit 4'",
        ctd.sock
    );
    let t0 = Instant::now();
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("COLUMNS", "100")
        .env("LINES", "30")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(4), "{text}");
    // The exit is reported once the pty's output is drained, not after a timeout.
    assert!(
        took < Duration::from_millis(1500),
        "ctr run -t took {took:?}"
    );
    assert!(text.contains("/dev/pts/"), "{text}");
    // An exec with a terminal of its own, in a running task.
    ctd.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "t2",
        "sleep",
        "1000",
    ])
    .ok();
    let pid = ctd.wait_task_status("t2", "RUNNING");
    ctx.track_pid(pid);
    let inner = format!(
        "ctr -a {} -n {ns} task exec -t --exec-id x t2 sh -c 'tty; exit 6'",
        ctd.sock
    );
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    ctd.ctr(&["task", "kill", "-s", "KILL", "t2"]).ok();
    ctd.wait_task_status("t2", "STOPPED");
    ctd.ctr(&["task", "delete", "t2"]).ok();
    ctd.ctr(&["container", "delete", "t2"]).ok();
    ctd.stop();
}

#[test]
fn binary_and_file_loggers() {
    let ctx = Ctx::new("shim-logger");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);
    // A logger as containerd's shims run it: fds 3 and 4 to read, fd 5 to close when ready.
    let logger = ctx.path("logger.sh");
    fs::write(
        &logger,
        "#!/bin/sh\ncat <&3 >\"$1.out\" 5>&- & cat <&4 >\"$1.err\" 5>&- & exec 5>&-\necho \"$CONTAINER_ID $CONTAINER_NAMESPACE\" >\"$1.env\"\nwait\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&logger, fs::Permissions::from_mode(0o755)).unwrap();
    let base = ctx.path("logged");
    let uri = format!("binary://{}?{}", logger.display(), base.display());
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--log-uri",
        &uri,
        IMAGE,
        "l1",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    out.ok();
    let read =
        |ext: &str| fs::read_to_string(format!("{}.{ext}", base.display())).unwrap_or_default();
    assert_eq!(read("out"), "to-out\n");
    assert_eq!(read("err"), "to-err\n");
    assert_eq!(read("env"), format!("l1 {ns}\n"));
    // file://: both streams appended to one file.
    let file = ctx.path("c.log");
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--log-uri",
        &format!("file://{}", file.display()),
        IMAGE,
        "l2",
        "sh",
        "-c",
        "echo one; echo two >&2",
    ]);
    out.ok();
    let text = fs::read_to_string(&file).unwrap_or_default();
    assert!(text.contains("one\n") && text.contains("two\n"), "{text:?}");
    ctd.stop();
}

#[test]
fn containerd_killed_and_restarted_while_a_task_runs() {
    let ctx = Ctx::new("shim-restart");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);
    let logfile = ctx.path("r.log");
    // A task that writes a line every 100 ms and ends on its own.
    ctd.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--log-uri",
        &format!("file://{}", logfile.display()),
        IMAGE,
        "k1",
        "sh",
        "-c",
        "i=0; while [ $i -lt 25 ]; do echo line$i; i=$((i+1)); sleep 0.1; done; exit 7",
    ])
    .ok();
    let pid = ctd.wait_task_status("k1", "RUNNING");
    ctx.track_pid(pid);
    ctd.kill9_and_restart();
    // Still known, and its exit (which happened while containerd was
    // away or just back) is seen with its status.
    let mut last = None;
    let stopped = wait_until(T, || {
        last = ctd.task_status("k1");
        last.as_ref().is_some_and(|(_, s)| s == "STOPPED")
    });
    assert!(stopped, "task after restart: {last:?}");
    let lines = fs::read_to_string(&logfile).unwrap_or_default();
    assert!(
        lines.contains("line0\n") && lines.contains("line24\n"),
        "{lines}"
    );
    let del = ctd.ctr(&["task", "delete", "k1"]);
    del.ok();
    assert!(
        del.stderr.contains("exit code 7"),
        "{} {}",
        del.stdout,
        del.stderr
    );
    ctd.ctr(&["container", "delete", "k1"]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || shims_of(&ns).is_empty()),
        "shim left: {:?}",
        shims_of(&ns)
    );
    ctd.stop();
}

#[test]
fn peer_runtime_metrics_pause_exec_ids_and_shared_pid_namespace() {
    let ctx = Ctx::new("shim-more");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);

    // Debian's runc named in a runtime config file (what ctr passes as
    // runtimeoptions.v1.Options).
    if !Path::new("/usr/sbin/runc").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "/usr/sbin/runc is missing (apt-get install runc)"
        );
        eprintln!("runc part skipped: no /usr/sbin/runc");
    } else {
        let conf = ctx.path("runc.toml");
        fs::write(&conf, "binary_name = \"/usr/sbin/runc\"\n").unwrap();
        let out = ctd.ctr(&[
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            "--runtime-config-path",
            conf.to_str().unwrap(),
            IMAGE,
            "p1",
            "sh",
            "-c",
            "echo via runc; exit 2",
        ]);
        assert_eq!(out.code, Some(2), "{} {}", out.stdout, out.stderr);
        assert_eq!(out.stdout, "via runc\n");
        // A config naming an unknown key fails with the file's name.
        fs::write(&conf, "runtime = \"runc\"\n").unwrap();
        let out = ctd.ctr(&[
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            "--runtime-config-path",
            conf.to_str().unwrap(),
            IMAGE,
            "p2",
            "true",
        ]);
        assert_ne!(out.code, Some(0));
        assert!(
            out.stderr.contains("runc.toml") && out.stderr.contains("runtime"),
            "{}",
            out.stderr
        );
        let _ = ctd.ctr(&["container", "delete", "p2"]);
    }

    ctd.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "m1",
        "sleep",
        "1000",
    ])
    .ok();
    let pid = ctd.wait_task_status("m1", "RUNNING");
    ctx.track_pid(pid);
    let metrics = ctd.ctr(&["task", "metrics", "m1"]);
    metrics.ok();
    assert!(
        metrics.stdout.contains("memory") || metrics.stdout.contains("pids"),
        "{}",
        metrics.stdout
    );
    ctd.ctr(&["task", "pause", "m1"]).ok();
    ctd.wait_task_status("m1", "PAUSED");
    ctd.ctr(&["task", "resume", "m1"]).ok();
    ctd.wait_task_status("m1", "RUNNING");
    // A second exec with an id in use is refused.
    ctd.ctr(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "x1",
        "m1",
        "sleep",
        "100",
    ])
    .ok();
    let dup = ctd.ctr(&["task", "exec", "-d", "--exec-id", "x1", "m1", "true"]);
    assert_ne!(dup.code, Some(0));
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);
    ctd.ctr(&["task", "kill", "-s", "KILL", "m1"]).ok();
    ctd.wait_task_status("m1", "STOPPED");
    ctd.ctr(&["task", "delete", "m1"]).ok();
    ctd.ctr(&["container", "delete", "m1"]).ok();

    // Without a pid namespace of its own, what the init leaves behind is
    // killed when it exits (here: the host's pid namespace, through ours).
    let host_pid_ns = format!("pid:/proc/{}/ns/pid", std::process::id());
    let log = ctx.path("h1.log");
    ctd.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--with-ns",
        &host_pid_ns,
        "--log-uri",
        &format!("file://{}", log.display()),
        IMAGE,
        "h1",
        "sh",
        "-c",
        "sleep 1000 & echo $!",
    ])
    .ok();
    ctd.wait_task_status("h1", "STOPPED");
    let orphan: i32 = fs::read_to_string(&log)
        .unwrap()
        .trim()
        .parse()
        .expect("pid of the background sleep");
    ctx.track_pid(orphan);
    // Gone before containerd deletes the task (delete --force would kill it too).
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{orphan}"
        ))
        .exists()),
        "the container's background process {orphan} outlived its init"
    );
    ctd.ctr(&["task", "delete", "h1"]).ok();
    ctd.ctr(&["container", "delete", "h1"]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || shims_of(&ns).is_empty()),
        "shims left: {:?}",
        shims_of(&ns)
    );
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
    for hierarchy in cgroup_mounts() {
        let _ = fs::remove_dir(hierarchy.join(&ns));
    }
    ctd.stop();
}

#[test]
fn one_shim_for_a_group() {
    let ctx = Ctx::new("shim-group");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);
    let group = "io.containerd.runc.v2.group=g1";
    for id in ["g1a", "g1b"] {
        ctd.ctr(&[
            "run",
            "-d",
            "--runtime",
            RUNTIME,
            "--annotation",
            group,
            IMAGE,
            id,
            "sleep",
            "1000",
        ])
        .ok();
        let pid = ctd.wait_task_status(id, "RUNNING");
        ctx.track_pid(pid);
    }
    let shims = shims_of(&ns);
    assert_eq!(shims.len(), 1, "one shim for the group: {shims:?}");
    ctx.track_pid(shims[0]);
    // The first task goes; the shim stays for the second.
    ctd.ctr(&["task", "kill", "-s", "KILL", "g1a"]).ok();
    ctd.wait_task_status("g1a", "STOPPED");
    ctd.ctr(&["task", "delete", "g1a"]).ok();
    ctd.ctr(&["container", "delete", "g1a"]).ok();
    assert_eq!(
        ctd.wait_task_status("g1b", "RUNNING"),
        ctd.task_status("g1b").unwrap().0
    );
    let out = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e",
        "g1b",
        "echo",
        "still here",
    ]);
    assert_eq!(out.stdout, "still here\n", "{}", out.stderr);
    assert_eq!(shims_of(&ns), shims);
    ctd.ctr(&["task", "kill", "-s", "KILL", "g1b"]).ok();
    ctd.wait_task_status("g1b", "STOPPED");
    ctd.ctr(&["task", "delete", "g1b"]).ok();
    ctd.ctr(&["container", "delete", "g1b"]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || shims_of(&ns).is_empty()),
        "shim left: {:?}",
        shims_of(&ns)
    );
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
    ctd.stop();
}

#[test]
fn shim_killed_then_containerd_cleans_up_with_delete() {
    let ctx = Ctx::new("shim-kill9");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);
    ctd.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "d1",
        "sleep",
        "1000",
    ])
    .ok();
    let pid = ctd.wait_task_status("d1", "RUNNING");
    ctx.track_pid(pid);
    let shims = shims_of(&ns);
    assert_eq!(shims.len(), 1, "{shims:?}");
    // SAFETY: kill(2) of the shim this test started (through containerd).
    unsafe {
        libc::kill(shims[0], libc::SIGKILL);
    }
    // containerd sees the shim gone and runs `SHIM delete`: the container
    // is force-deleted by the runtime, its exit reported as 137.
    assert!(
        wait_until(T, || !Path::new(&format!("/proc/{pid}")).exists()),
        "container process {pid} outlived its shim's cleanup"
    );
    let mut last = None;
    let gone = wait_until(T, || {
        last = ctd.task_status("d1");
        last.as_ref().is_none_or(|(_, s)| s == "STOPPED")
    });
    assert!(gone, "task after the shim died: {last:?}");
    let _ = ctd.ctr(&["task", "delete", "d1"]);
    ctd.ctr(&["container", "delete", "d1"]).ok();
    let state: Vec<PathBuf> = fs::read_dir(Path::new("/run/containerd/runc").join(&ns))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(state.is_empty(), "runtime state left: {state:?}");
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
    let dirs = CgroupDirs::existing(&format!("/{ns}/d1"));
    assert!(dirs.is_empty(), "cgroups left: {dirs:?}");
    let mounts: Vec<String> = mounts_under(&ctd.dir)
        .into_iter()
        .filter(|m| m.contains("/d1/"))
        .collect();
    assert!(mounts.is_empty(), "rootfs mounts left: {mounts:?}");
    ctd.stop();
}

#[test]
fn stdin_reaches_the_container_and_its_end_too() {
    let ctx = Ctx::new("shim-stdin");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);
    let input = ctx.path("in.txt");
    let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    fs::write(&input, &text).unwrap();
    let out = Command::new("ctr")
        .args([
            "-a",
            &ctd.sock,
            "-n",
            &ns,
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            IMAGE,
            "i1",
        ])
        .args(["sh", "-c", "cat; echo done"])
        .stdin(fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{text}done\n")
    );
    ctd.stop();
}

/// containerd's Events service, played by the test: it records what the
/// shim forwards.
struct EventSink(std::sync::Mutex<Vec<skiff::proto::events::Envelope>>);

impl skiff::ttrpc::Service for EventSink {
    fn call(
        &self,
        _ctx: &skiff::ttrpc::RequestContext,
        method: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, skiff::ttrpc::Status> {
        assert_eq!(method, "Forward");
        skiff::ttrpc::unary(payload, |r: skiff::proto::events::ForwardRequest| {
            self.0
                .lock()
                .unwrap()
                .push(r.envelope.expect("an envelope"));
            Ok(skiff::proto::types::Empty {})
        })
    }
}

/// The task API spoken directly (no containerd): states, exit codes, error
/// codes containerd branches on, the events, and Shutdown.
#[test]
fn task_api_directly() {
    use skiff::proto::events as ev;
    use skiff::proto::task as pb;
    use skiff::ttrpc::{call, Client, Code};
    let ctx = Ctx::new("shim-api");
    let mut config = ctx.config();
    config.sh("echo to-stdout; exit 3");
    ctx.write_config(&config);
    let id = ctx.id();
    let ns = format!("skiff-api-{}", std::process::id());

    // The events side.
    let events_sock = ctx.path("events.sock");
    let sink = std::sync::Arc::new(EventSink(Default::default()));
    let mut server = skiff::ttrpc::Server::new();
    server.register("containerd.services.events.ttrpc.v1.Events", sink.clone());
    let stop_events = server.shutdown_handle();
    let listener = std::os::unix::net::UnixListener::bind(&events_sock).unwrap();
    let events_thread = std::thread::spawn(move || server.serve(listener));

    // `start`, as containerd runs it.
    let out = Command::new(skiff_binary())
        .args(["containerd-shim-skiff-v2", "-namespace", &ns, "-address"])
        .arg(ctx.path("containerd.sock"))
        .args(["-publish-binary", "/bin/false", "-id", &id, "start"])
        .current_dir(&ctx.bundle)
        .env("TTRPC_ADDRESS", &events_sock)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let address = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{address} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        address.starts_with("unix:///run/containerd/s/") && !address.contains('\n'),
        "{address:?}"
    );
    assert_eq!(
        fs::read_to_string(ctx.bundle.join("address")).unwrap(),
        address
    );
    let socket = address.trim_start_matches("unix://").to_string();
    let client = Client::connect(&address).unwrap();
    const V2: &str = "containerd.task.v2.Task";
    let t = Some(Duration::from_secs(20));

    let stdout = ctx.path("stdout.log");
    let created: pb::CreateTaskResponse = call(
        &client,
        V2,
        "Create",
        &pb::CreateTaskRequest {
            id: id.clone(),
            bundle: ctx.bundle.display().to_string(),
            stdout: format!("file://{}", stdout.display()),
            ..Default::default()
        },
        t,
    )
    .unwrap();
    ctx.track_pid(created.pid as i32);
    let state = |exec_id: &str| -> Result<pb::StateResponse, skiff::ttrpc::Status> {
        call(
            &client,
            V2,
            "State",
            &pb::StateRequest {
                id: id.clone(),
                exec_id: exec_id.into(),
            },
            t,
        )
    };
    assert_eq!(state("").unwrap().status, pb::status::CREATED);
    assert_eq!(state("nope").unwrap_err().code, Code::NotFound);
    let dup: Result<pb::CreateTaskResponse, _> = call(
        &client,
        V2,
        "Create",
        &pb::CreateTaskRequest {
            id: id.clone(),
            bundle: ctx.bundle.display().to_string(),
            ..Default::default()
        },
        t,
    );
    assert_eq!(dup.unwrap_err().code, Code::AlreadyExists);
    // The same handlers answer under the v3 name.
    let v3: pb::StateResponse = call(
        &client,
        "containerd.task.v3.Task",
        "State",
        &pb::StateRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    )
    .unwrap();
    assert_eq!(v3.pid, created.pid);

    let started: pb::StartResponse = call(
        &client,
        V2,
        "Start",
        &pb::StartRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    )
    .unwrap();
    assert_eq!(started.pid, created.pid);
    let waited: pb::WaitResponse = call(
        &client,
        V2,
        "Wait",
        &pb::WaitRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    )
    .unwrap();
    assert_eq!(waited.exit_status, 3);
    let st = state("").unwrap();
    assert_eq!((st.status, st.exit_status), (pb::status::STOPPED, 3));
    assert_eq!(st.exited_at, waited.exited_at);
    assert_eq!(fs::read_to_string(&stdout).unwrap(), "to-stdout\n");
    // Wait on an exited process answers at once; Kill says it is gone;
    // an exec in a stopped container is refused.
    let again: pb::WaitResponse = call(
        &client,
        V2,
        "Wait",
        &pb::WaitRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        Some(Duration::from_millis(500)),
    )
    .unwrap();
    assert_eq!(again, waited);
    let kill: Result<skiff::proto::types::Empty, _> = call(
        &client,
        V2,
        "Kill",
        &pb::KillRequest {
            id: id.clone(),
            signal: 9,
            ..Default::default()
        },
        t,
    );
    assert_eq!(kill.unwrap_err().code, Code::NotFound);
    let exec: Result<skiff::proto::types::Empty, _> = call(
        &client,
        V2,
        "Exec",
        &pb::ExecProcessRequest {
            id: id.clone(),
            exec_id: "e1".into(),
            spec: Some(skiff::proto::types::Any {
                type_url: "x".into(),
                value: b"{}".to_vec(),
            }),
            ..Default::default()
        },
        t,
    );
    assert_eq!(exec.unwrap_err().code, Code::FailedPrecondition);
    let ckpt: Result<skiff::proto::types::Empty, _> = call(
        &client,
        V2,
        "Checkpoint",
        &pb::CheckpointTaskRequest {
            id: id.clone(),
            ..Default::default()
        },
        t,
    );
    assert_eq!(ckpt.unwrap_err().code, Code::Unimplemented);

    let deleted: pb::DeleteResponse = call(
        &client,
        V2,
        "Delete",
        &pb::DeleteRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    )
    .unwrap();
    assert_eq!((deleted.pid, deleted.exit_status), (created.pid, 3));
    assert_eq!(deleted.exited_at, waited.exited_at);
    let gone: Result<pb::DeleteResponse, _> = call(
        &client,
        V2,
        "Delete",
        &pb::DeleteRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    );
    assert_eq!(gone.unwrap_err().code, Code::NotFound);
    let connect: pb::ConnectResponse = call(
        &client,
        V2,
        "Connect",
        &pb::ConnectRequest { id: id.clone() },
        t,
    )
    .unwrap();
    let shim_pid = connect.shim_pid as i32;
    ctx.track_pid(shim_pid);
    let _: Result<skiff::proto::types::Empty, _> = call(
        &client,
        V2,
        "Shutdown",
        &pb::ShutdownRequest {
            id: id.clone(),
            now: false,
        },
        t,
    );
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{shim_pid}"
        ))
        .exists()
            || proc_state_of(shim_pid) == Some('Z')),
        "the shim did not exit on Shutdown"
    );
    assert!(!Path::new(&socket).exists(), "socket {socket} left behind");

    // The events, in order, with what containerd reads from them.
    let got = sink.0.lock().unwrap().clone();
    let topics: Vec<&str> = got.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );
    assert!(got
        .iter()
        .all(|e| e.namespace == ns && e.timestamp.is_some()));
    let exit = got[2].event.as_ref().unwrap();
    assert_eq!(exit.type_url, "containerd.events.TaskExit");
    use prost::Message;
    let exit = ev::TaskExit::decode(&exit.value[..]).unwrap();
    assert_eq!(
        (
            exit.container_id.as_str(),
            exit.id.as_str(),
            exit.pid,
            exit.exit_status
        ),
        (id.as_str(), id.as_str(), created.pid, 3)
    );
    stop_events.shutdown();
    let _ = events_thread.join();
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
}

/// Without TTRPC_ADDRESS the events go through `PUBLISH_BINARY --address A
/// publish --topic T --namespace NS`, the event (an Any) on stdin.
#[test]
fn events_through_the_publish_binary() {
    use skiff::proto::task as pb;
    use skiff::ttrpc::{call, Client};
    let ctx = Ctx::new("shim-publish");
    let mut config = ctx.config();
    config.sh("exit 0");
    ctx.write_config(&config);
    let id = ctx.id();
    let ns = format!("skiff-pub-{}", std::process::id());
    let record = ctx.path("published.txt");
    let publisher = ctx.path("publish.sh");
    fs::write(
        &publisher,
        format!(
            "#!/bin/sh\nn=$(wc -c)\necho \"$* stdin=$n\" >>{}\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&publisher, fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(skiff_binary())
        .args([
            "containerd-shim-skiff-v2",
            "-namespace",
            &ns,
            "-address",
            "/run/x.sock",
        ])
        .arg("-publish-binary")
        .arg(&publisher)
        .args(["-id", &id, "start"])
        .current_dir(&ctx.bundle)
        .env_remove("TTRPC_ADDRESS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let address = String::from_utf8_lossy(&out.stdout).to_string();
    let client = Client::connect(&address).unwrap();
    const V2: &str = "containerd.task.v2.Task";
    let t = Some(Duration::from_secs(20));
    let created: pb::CreateTaskResponse = call(
        &client,
        V2,
        "Create",
        &pb::CreateTaskRequest {
            id: id.clone(),
            bundle: ctx.bundle.display().to_string(),
            ..Default::default()
        },
        t,
    )
    .unwrap();
    ctx.track_pid(created.pid as i32);
    let req = |exec_id: &str| pb::StartRequest {
        id: id.clone(),
        exec_id: exec_id.into(),
    };
    let _: pb::StartResponse = call(&client, V2, "Start", &req(""), t).unwrap();
    let _: pb::WaitResponse = call(
        &client,
        V2,
        "Wait",
        &pb::WaitRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    )
    .unwrap();
    let _: pb::DeleteResponse = call(
        &client,
        V2,
        "Delete",
        &pb::DeleteRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    )
    .unwrap();
    let connect: pb::ConnectResponse = call(
        &client,
        V2,
        "Connect",
        &pb::ConnectRequest { id: id.clone() },
        t,
    )
    .unwrap();
    ctx.track_pid(connect.shim_pid as i32);
    // Shutdown sends what is queued before the shim leaves.
    let _: Result<skiff::proto::types::Empty, _> = call(
        &client,
        V2,
        "Shutdown",
        &pb::ShutdownRequest {
            id: id.clone(),
            now: false,
        },
        t,
    );
    let text = fs::read_to_string(&record).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let topics: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "--topic").nth(1))
        .collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{text}"
    );
    for l in &lines {
        assert!(
            l.starts_with("--address /run/x.sock publish --topic "),
            "{l}"
        );
        assert!(l.contains(&format!("--namespace {ns}")), "{l}");
        assert!(!l.ends_with("stdin=0"), "no event on stdin: {l}");
    }
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
}

/// The threads of process `pid`.
fn thread_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A Wait still blocked when its caller's connection closes (containerd
/// restarting) does not keep its thread until the process exits.
#[test]
fn a_wait_whose_caller_left_ends_its_thread() {
    use skiff::proto::task as pb;
    use skiff::proto::types::Empty;
    use skiff::ttrpc::{call, Client};
    let ctx = Ctx::new("shim-wait-gone");
    let mut config = ctx.config();
    config.sh("sleep 100");
    ctx.write_config(&config);
    let id = ctx.id();
    let ns = format!("skiff-wait-{}", std::process::id());
    let out = Command::new(skiff_binary())
        .args(["containerd-shim-skiff-v2", "-namespace", &ns, "-address"])
        .arg(ctx.path("containerd.sock"))
        .args(["-publish-binary", "/bin/false", "-id", &id, "start"])
        .current_dir(&ctx.bundle)
        .env("TTRPC_ADDRESS", ctx.path("no-events.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let address = String::from_utf8_lossy(&out.stdout).to_string();
    const V2: &str = "containerd.task.v2.Task";
    let t = Some(Duration::from_secs(20));
    let client = Client::connect(&address).unwrap();
    let connect: pb::ConnectResponse = call(
        &client,
        V2,
        "Connect",
        &pb::ConnectRequest { id: id.clone() },
        t,
    )
    .unwrap();
    let shim = connect.shim_pid as i32;
    ctx.track_pid(shim);
    let created: pb::CreateTaskResponse = call(
        &client,
        V2,
        "Create",
        &pb::CreateTaskRequest {
            id: id.clone(),
            bundle: ctx.bundle.display().to_string(),
            ..Default::default()
        },
        t,
    )
    .unwrap();
    ctx.track_pid(created.pid as i32);
    let start = pb::StartRequest {
        id: id.clone(),
        exec_id: String::new(),
    };
    let _: pb::StartResponse = call(&client, V2, "Start", &start, t).unwrap();
    let wait = pb::WaitRequest {
        id: id.clone(),
        exec_id: String::new(),
    };

    let settled = |want: &dyn Fn(usize) -> bool| {
        wait_until(Duration::from_secs(5), || want(thread_count(shim)))
    };
    let caller = Client::connect(&address).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = thread_count(shim);
    let short = Some(Duration::from_millis(300));
    let blocked: Result<pb::WaitResponse, _> = call(&caller, V2, "Wait", &wait, short);
    assert!(blocked.is_err(), "Wait answered while the process runs");
    assert!(
        settled(&|n| n == before + 1),
        "no thread for the Wait: {} threads, {before} before",
        thread_count(shim)
    );
    drop(caller);
    // The connection's reader and the Wait's thread both end.
    assert!(
        settled(&|n| n == before - 1),
        "threads of the shim after its Wait caller left: {}, {before} before",
        thread_count(shim)
    );

    let kill = pb::KillRequest {
        id: id.clone(),
        signal: 9,
        ..Default::default()
    };
    let _: Empty = call(&client, V2, "Kill", &kill, t).unwrap();
    let waited: pb::WaitResponse = call(&client, V2, "Wait", &wait, t).unwrap();
    assert_eq!(waited.exit_status, 137);
    let delete = pb::DeleteRequest {
        id: id.clone(),
        exec_id: String::new(),
    };
    let _: pb::DeleteResponse = call(&client, V2, "Delete", &delete, t).unwrap();
    let shutdown = pb::ShutdownRequest {
        id: id.clone(),
        now: false,
    };
    let _: Result<Empty, _> = call(&client, V2, "Shutdown", &shutdown, t);
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{shim}"
        ))
        .exists()
            || proc_state_of(shim) == Some('Z')),
        "the shim did not exit on Shutdown"
    );
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
}

/// Binary `delete` whose runtime cannot be asked (corrupt options.json,
/// runtime binary missing): it says so on stderr, yet unmounts the rootfs
/// and answers with a DeleteResponse, as containerd needs.
#[test]
fn delete_unmounts_and_answers_whatever_fails() {
    let ctx = Ctx::new("shim-delete-fails");
    let bundle = ctx.path("bundle-del");
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    // The runtime's state is "there", so delete would ask the runtime.
    let ns = format!("skiff-delfail-{}", std::process::id());
    for options in [
        "{not json".to_string(),
        format!(
            r#"{{"binary_name":"{}"}}"#,
            ctx.path("no-such-runtime").display()
        ),
    ] {
        fs::write(bundle.join("options.json"), &options).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(st.success());
        let out = shim(
            &[
                "-namespace",
                &ns,
                "-address",
                "/nonexistent.sock",
                "-publish-binary",
                "/bin/false",
                "-id",
                "c1",
                "-bundle",
                bundle.to_str().unwrap(),
                "delete",
            ],
            b"",
        );
        let left = mounts_under(&rootfs);
        for _ in &left {
            let _ = Command::new("umount").arg("-l").arg(&rootfs).status();
        }
        assert!(left.is_empty(), "{options}: rootfs left mounted: {left:?}");
        assert!(
            out.status.success(),
            "{options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout.windows(3).any(|w| w == [0x10, 0x89, 0x01]),
            "{options}: no DeleteResponse: {:?}",
            out.stdout
        );
        assert!(!out.stderr.is_empty(), "{options}: the failure went unsaid");
    }
}

/// A Shutdown that decided to leave refuses further Creates (containerd
/// then starts a new shim) and removes its socket before it spends time
/// flushing events: here containerd's event socket is missing, so the
/// flush waits its full time, the window in which `start` used to hand
/// out the dying shim's address.
#[test]
fn shutdown_refuses_creates_and_unlinks_its_socket_first() {
    use skiff::proto::task as pb;
    use skiff::ttrpc::{call, Client, Code};
    let ctx = Ctx::new("shim-closing");
    let mut config = ctx.config();
    config.sh("exit 0");
    ctx.write_config(&config);
    let id = ctx.id();
    let ns = format!("skiff-closing-{}", std::process::id());
    let out = Command::new(skiff_binary())
        .args(["containerd-shim-skiff-v2", "-namespace", &ns, "-address"])
        .arg(ctx.path("containerd.sock"))
        .args(["-publish-binary", "/bin/false", "-id", &id, "start"])
        .current_dir(&ctx.bundle)
        .env("TTRPC_ADDRESS", ctx.path("no-events.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let address = String::from_utf8_lossy(&out.stdout).to_string();
    let socket = address.trim_start_matches("unix://").to_string();
    const V2: &str = "containerd.task.v2.Task";
    let t = Some(Duration::from_secs(20));
    let client = Client::connect(&address).unwrap();
    let other = Client::connect(&address).unwrap();
    let connect: pb::ConnectResponse = call(
        &client,
        V2,
        "Connect",
        &pb::ConnectRequest { id: id.clone() },
        t,
    )
    .unwrap();
    let shim_pid = connect.shim_pid as i32;
    ctx.track_pid(shim_pid);
    // Create and Delete queue two events nobody can take.
    let created: pb::CreateTaskResponse = call(
        &client,
        V2,
        "Create",
        &pb::CreateTaskRequest {
            id: id.clone(),
            bundle: ctx.bundle.display().to_string(),
            ..Default::default()
        },
        t,
    )
    .unwrap();
    ctx.track_pid(created.pid as i32);
    let _: pb::DeleteResponse = call(
        &client,
        V2,
        "Delete",
        &pb::DeleteRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    )
    .unwrap();
    let shutdown = std::thread::spawn(move || {
        let r: Result<skiff::proto::types::Empty, _> = call(
            &client,
            V2,
            "Shutdown",
            &pb::ShutdownRequest {
                id: String::new(),
                now: false,
            },
            Some(Duration::from_secs(20)),
        );
        r
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !Path::new(&socket).exists(),
        "the socket of a shim that is leaving is still there"
    );
    let late: Result<pb::CreateTaskResponse, _> = call(
        &other,
        V2,
        "Create",
        &pb::CreateTaskRequest {
            id: format!("{id}-late"),
            bundle: ctx.bundle.display().to_string(),
            ..Default::default()
        },
        t,
    );
    match late {
        Err(s) => assert_eq!(s.code, Code::FailedPrecondition, "{s:?}"),
        Ok(r) => {
            ctx.track_pid(r.pid as i32);
            panic!("a shim that is leaving accepted a Create");
        }
    }
    let _ = shutdown.join();
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{shim_pid}"
        ))
        .exists()
            || proc_state_of(shim_pid) == Some('Z')),
        "the shim did not exit on Shutdown"
    );
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
}

/// A Wait on an exec answers when that exec is deleted before it started
/// (it will never run).
#[test]
fn wait_on_an_exec_deleted_before_start_answers() {
    use skiff::proto::task as pb;
    use skiff::proto::types::Empty;
    use skiff::ttrpc::{call, Client};
    let ctx = Ctx::new("shim-exec-del");
    let mut config = ctx.config();
    config.sh("sleep 100");
    ctx.write_config(&config);
    let id = ctx.id();
    let ns = format!("skiff-execdel-{}", std::process::id());
    let out = Command::new(skiff_binary())
        .args(["containerd-shim-skiff-v2", "-namespace", &ns, "-address"])
        .arg(ctx.path("containerd.sock"))
        .args(["-publish-binary", "/bin/false", "-id", &id, "start"])
        .current_dir(&ctx.bundle)
        .env("TTRPC_ADDRESS", ctx.path("no-events.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let address = String::from_utf8_lossy(&out.stdout).to_string();
    const V2: &str = "containerd.task.v2.Task";
    let t = Some(Duration::from_secs(20));
    let client = std::sync::Arc::new(Client::connect(&address).unwrap());
    let connect: pb::ConnectResponse = call(
        &client,
        V2,
        "Connect",
        &pb::ConnectRequest { id: id.clone() },
        t,
    )
    .unwrap();
    let shim_pid = connect.shim_pid as i32;
    ctx.track_pid(shim_pid);
    let created: pb::CreateTaskResponse = call(
        &client,
        V2,
        "Create",
        &pb::CreateTaskRequest {
            id: id.clone(),
            bundle: ctx.bundle.display().to_string(),
            ..Default::default()
        },
        t,
    )
    .unwrap();
    ctx.track_pid(created.pid as i32);
    let _: pb::StartResponse = call(
        &client,
        V2,
        "Start",
        &pb::StartRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    )
    .unwrap();
    let _: Empty = call(
        &client,
        V2,
        "Exec",
        &pb::ExecProcessRequest {
            id: id.clone(),
            exec_id: "e1".into(),
            spec: Some(skiff::proto::types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: br#"{"args":["true"],"cwd":"/"}"#.to_vec(),
            }),
            ..Default::default()
        },
        t,
    )
    .unwrap();
    let (c2, id2) = (client.clone(), id.clone());
    let waiter = std::thread::spawn(move || {
        let r: Result<pb::WaitResponse, _> = call(
            &c2,
            V2,
            "Wait",
            &pb::WaitRequest {
                id: id2,
                exec_id: "e1".into(),
            },
            Some(Duration::from_secs(5)),
        );
        r
    });
    std::thread::sleep(Duration::from_millis(200));
    let _: pb::DeleteResponse = call(
        &client,
        V2,
        "Delete",
        &pb::DeleteRequest {
            id: id.clone(),
            exec_id: "e1".into(),
        },
        t,
    )
    .unwrap();
    let waited = waiter.join().unwrap();
    // Clean up: the init, then the shim.
    let _: Result<Empty, _> = call(
        &client,
        V2,
        "Kill",
        &pb::KillRequest {
            id: id.clone(),
            signal: 9,
            ..Default::default()
        },
        t,
    );
    let _: Result<pb::WaitResponse, _> = call(
        &client,
        V2,
        "Wait",
        &pb::WaitRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    );
    let _: Result<pb::DeleteResponse, _> = call(
        &client,
        V2,
        "Delete",
        &pb::DeleteRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        t,
    );
    let _: Result<Empty, _> = call(
        &client,
        V2,
        "Shutdown",
        &pb::ShutdownRequest {
            id: id.clone(),
            now: false,
        },
        t,
    );
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{shim_pid}"
        ))
        .exists()
            || proc_state_of(shim_pid) == Some('Z')),
        "the shim did not exit on Shutdown"
    );
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
    let waited = waited.expect("Wait on the deleted exec never answered");
    assert_ne!(waited.exit_status, 0);
}

/// A shim driven directly through its Task API (no containerd): started as
/// containerd starts it, events going nowhere; shut down when dropped.
struct DirectShim {
    client: skiff::ttrpc::Client,
    id: String,
    ns: String,
    pid: i32,
}

const TASK_V2: &str = "containerd.task.v2.Task";
const RPC_TIMEOUT: Option<Duration> = Some(Duration::from_secs(20));

impl DirectShim {
    fn start(ctx: &Ctx, id: &str, ns: &str) -> DirectShim {
        use skiff::proto::task as pb;
        let out = Command::new(skiff_binary())
            .args(["containerd-shim-skiff-v2", "-namespace", ns, "-address"])
            .arg(ctx.path("containerd.sock"))
            .args(["-publish-binary", "/bin/false", "-id", id, "start"])
            .current_dir(&ctx.bundle)
            .env("TTRPC_ADDRESS", ctx.path("no-events.sock"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let address = String::from_utf8_lossy(&out.stdout).to_string();
        let client = skiff::ttrpc::Client::connect(&address).unwrap();
        let connect: pb::ConnectResponse = skiff::ttrpc::call(
            &client,
            TASK_V2,
            "Connect",
            &pb::ConnectRequest { id: id.into() },
            RPC_TIMEOUT,
        )
        .unwrap();
        ctx.track_pid(connect.shim_pid as i32);
        DirectShim {
            client,
            id: id.into(),
            ns: ns.into(),
            pid: connect.shim_pid as i32,
        }
    }

    fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<Resp, skiff::ttrpc::Status> {
        skiff::ttrpc::call(&self.client, TASK_V2, method, req, RPC_TIMEOUT)
    }

    fn create(&self, ctx: &Ctx, rootfs: Vec<skiff::proto::types::Mount>) -> i32 {
        let created: skiff::proto::task::CreateTaskResponse = self
            .call(
                "Create",
                &skiff::proto::task::CreateTaskRequest {
                    id: self.id.clone(),
                    bundle: ctx.bundle.display().to_string(),
                    rootfs,
                    ..Default::default()
                },
            )
            .unwrap();
        ctx.track_pid(created.pid as i32);
        created.pid as i32
    }

    fn start_init(&self) -> Result<skiff::proto::task::StartResponse, skiff::ttrpc::Status> {
        self.call(
            "Start",
            &skiff::proto::task::StartRequest {
                id: self.id.clone(),
                exec_id: String::new(),
            },
        )
    }

    fn wait_init(&self) -> skiff::proto::task::WaitResponse {
        self.call(
            "Wait",
            &skiff::proto::task::WaitRequest {
                id: self.id.clone(),
                exec_id: String::new(),
            },
        )
        .unwrap()
    }

    fn kill_init(&self, signal: u32) {
        let _: skiff::proto::types::Empty = self
            .call(
                "Kill",
                &skiff::proto::task::KillRequest {
                    id: self.id.clone(),
                    signal,
                    ..Default::default()
                },
            )
            .unwrap();
    }

    fn delete(&self) -> Result<skiff::proto::task::DeleteResponse, skiff::ttrpc::Status> {
        self.call(
            "Delete",
            &skiff::proto::task::DeleteRequest {
                id: self.id.clone(),
                exec_id: String::new(),
            },
        )
    }
}

impl Drop for DirectShim {
    fn drop(&mut self) {
        let _: Result<skiff::proto::types::Empty, _> = self.call(
            "Shutdown",
            &skiff::proto::task::ShutdownRequest {
                id: self.id.clone(),
                now: true,
            },
        );
        let pid = self.pid;
        wait_until(Duration::from_secs(5), || {
            !Path::new(&format!("/proc/{pid}")).exists() || proc_state_of(pid) == Some('Z')
        });
        let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&self.ns));
    }
}

/// Poststart and poststop hooks run through the shim (which starts and
/// deletes other containers in-process, where hooks cannot be waited for),
/// and Start and Delete succeed.
#[test]
fn shim_runs_poststart_and_poststop_hooks() {
    let ctx = Ctx::new("shim-hooks");
    let mut config = ctx.config();
    config.sh("sleep 100");
    let dir = ctx.dir.display().to_string();
    for kind in ["poststart", "poststop"] {
        config.push(
            &format!("hooks.{kind}"),
            js(&format!(
                r#"{{"path":"/bin/sh","args":["sh","-c","echo {kind} > {dir}/{kind}.ran"]}}"#
            )),
        );
    }
    ctx.write_config(&config);
    let id = ctx.id();
    let shim = DirectShim::start(&ctx, &id, &format!("skiff-hooks-{}", std::process::id()));
    shim.create(&ctx, Vec::new());
    shim.start_init().expect("Start with a poststart hook");
    assert!(
        wait_until(Duration::from_secs(5), || ctx
            .dir
            .join("poststart.ran")
            .exists()),
        "the poststart hook did not run"
    );
    shim.kill_init(9);
    assert_eq!(shim.wait_init().exit_status, 137);
    shim.delete().expect("Delete with a poststop hook");
    assert_eq!(
        fs::read_to_string(ctx.dir.join("poststop.ran"))
            .ok()
            .as_deref(),
        Some("poststop\n"),
        "the poststop hook did not run"
    );
}

/// The runtime's create, run by the shim from a read-only view of the
/// binary, does not re-exec itself into a memfd copy, and its init's
/// /proc/PID/exe (the binary until it execs) cannot be opened for writing.
#[test]
fn shim_create_runs_from_a_readonly_view_without_reexec() {
    let ctx = Ctx::new("shim-ro-exe");
    let mut config = ctx.config();
    config.sh("exit 0");
    ctx.write_config(&config);
    let id = ctx.id();
    let shim = DirectShim::start(&ctx, &id, &format!("skiff-roexe-{}", std::process::id()));
    let pid = shim.create(&ctx, Vec::new());
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let write = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"));
    shim.kill_init(9);
    shim.wait_init();
    shim.delete().unwrap();
    assert!(
        !exe.to_string_lossy().starts_with("/memfd:"),
        "the init runs from a re-exec's copy: {}",
        exe.display()
    );
    let err = write.expect_err("the init's binary opened for writing");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS | libc::ETXTBSY)),
        "{err}"
    );
}

/// When Delete answers, the rootfs the shim mounted is off the mount
/// table: a bind, and an overlay (whose write-back is left to a thread).
#[test]
fn shim_delete_takes_the_rootfs_off_before_answering() {
    let ctx = Ctx::new("shim-rootfs-off");
    let mut config = ctx.config();
    config.sh("exit 0");
    ctx.write_config(&config);
    let lower = ctx.path("lower");
    fs::rename(ctx.rootfs(), &lower).unwrap();
    fs::create_dir(ctx.rootfs()).unwrap();
    let (upper, work) = (ctx.path("upper"), ctx.path("work"));
    fs::create_dir_all(&upper).unwrap();
    fs::create_dir_all(&work).unwrap();
    let mounts = [
        skiff::proto::types::Mount {
            r#type: "bind".into(),
            source: lower.display().to_string(),
            options: vec!["rbind".into(), "rw".into()],
            ..Default::default()
        },
        skiff::proto::types::Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", lower.display()),
                format!("upperdir={}", upper.display()),
                format!("workdir={}", work.display()),
            ],
            ..Default::default()
        },
    ];
    let ns = format!("skiff-rootfs-{}", std::process::id());
    for m in mounts {
        let kind = m.r#type.clone();
        let id = ctx.id();
        let shim = DirectShim::start(&ctx, &id, &ns);
        shim.create(&ctx, vec![m]);
        assert!(
            !mounts_under(&ctx.rootfs()).is_empty(),
            "{kind}: the rootfs is not mounted"
        );
        shim.start_init().unwrap();
        assert_eq!(shim.wait_init().exit_status, 0);
        shim.delete().unwrap();
        let left = mounts_under(&ctx.rootfs());
        drop(shim);
        assert!(
            left.is_empty(),
            "{kind}: still mounted after Delete: {left:?}"
        );
    }
}

/// Delete of a container sharing the host's pid namespace, whose init the
/// shim has reaped, kills what the init left in its cgroup and removes the
/// cgroup (the shim's in-process delete, which waits for no process).
#[test]
fn shim_delete_kills_what_the_reaped_init_left() {
    let ctx = Ctx::new("shim-leftover");
    let mut config = ctx.config();
    config.remove_namespace("pid");
    let marker = ctx.path("child.pid");
    let dir = ctx.dir.display().to_string();
    config.push(
        "mounts",
        js(&format!(
            r#"{{"destination":"/out","type":"bind","source":"{dir}","options":["rbind","rw"]}}"#
        )),
    );
    config.sh("sleep 1000 & echo $! > /out/child.pid; exit 0");
    ctx.write_config(&config);
    let id = ctx.id();
    let shim = DirectShim::start(&ctx, &id, &format!("skiff-left-{}", std::process::id()));
    shim.create(&ctx, Vec::new());
    shim.start_init().unwrap();
    assert_eq!(shim.wait_init().exit_status, 0);
    let child: i32 = fs::read_to_string(&marker)
        .expect("the init wrote its child's pid")
        .trim()
        .parse()
        .unwrap();
    ctx.track_pid(child);
    // The child may already be gone: the shim kills what an init without
    // its own pid namespace leaves when it exits (issue 8, §2). Either
    // way, after Delete nothing of it may remain.
    let cgroups_before = cgroups_named(&id);
    shim.delete().expect("Delete after the init was reaped");
    let alive = Path::new(&format!("/proc/{child}")).exists() && proc_state_of(child) != Some('Z');
    let cgroups = cgroups_named(&id);
    drop(shim);
    assert!(
        !cgroups_before.is_empty(),
        "the test found no cgroup of {id}"
    );
    assert!(!alive, "the init's child {child} survived Delete");
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

/// A startContainer hook that hangs does not hold Start, nor a Kill queued
/// behind it, forever: Start gives up (DeadlineExceeded) after its bound,
/// and the task can then be killed and deleted.
#[test]
fn a_hung_start_hook_does_not_hold_start_forever() {
    let ctx = Ctx::new("shim-hung-hook");
    let mut config = ctx.config();
    config.sh("exit 0");
    config.push(
        "hooks.startContainer",
        js(r#"{"path":"/bin/sh","args":["sh","-c","sleep 1000"]}"#),
    );
    ctx.write_config(&config);
    let id = ctx.id();
    let shim = DirectShim::start(&ctx, &id, &format!("skiff-hung-{}", std::process::id()));
    shim.create(&ctx, Vec::new());
    let began = Instant::now();
    let started = skiff::ttrpc::call::<_, skiff::proto::task::StartResponse>(
        &shim.client,
        TASK_V2,
        "Start",
        &skiff::proto::task::StartRequest {
            id: id.clone(),
            exec_id: String::new(),
        },
        Some(Duration::from_secs(60)),
    );
    let took = began.elapsed();
    let err = started.expect_err("Start answered success with its hook hung");
    assert_eq!(err.code, skiff::ttrpc::Code::DeadlineExceeded, "{err:?}");
    assert!(took < Duration::from_secs(45), "Start took {took:?}");
    shim.kill_init(9);
    shim.wait_init();
    shim.delete().expect("Delete after a failed Start");
}
