//! `runc exec`: a new process in a running container: output and status,
//! its flags (-e, --cwd, -u, -g, --cap, --no-new-privs, --process, -d,
//! --pid-file, -t, --preserve-fds), that it joins every namespace and
//! cgroup of the container, and the errors.
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test runc_exec`.

mod common;

use common::*;
use miniserde::json::Value;
use std::fs;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// `run -d` a `sleep 1000` container from `c` (whose args are replaced);
/// returns the id and the init's pid.
#[track_caller]
fn start_sleeper(ctx: &Ctx, mut c: Config) -> (String, i32) {
    c.sh("exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
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

/// A line of /proc/PID/status ("NoNewPrivs:\t1" -> "1").
fn status_field(pid: i32, key: &str) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

#[test]
fn exec_output_and_exit_status() {
    let ctx = Ctx::new("execout");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    let out = ctx.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 7",
    ]);
    out.exit(7);
    assert_eq!(out.stdout, "to-out\n");
    assert_eq!(out.stderr, "to-err\n");
    let out = ctx.rt(&["exec", &id, "echo", "a b", "c"]);
    out.ok();
    assert_eq!(out.stdout, "a b c\n", "arguments are passed one by one");
    // Killed by a signal: 128+n.
    ctx.rt(&["exec", &id, "sh", "-c", "kill -KILL $$"])
        .exit(137);
    // The container runs on.
    assert_eq!(ctx.status(&id), "running");
    finish(&ctx, &id);
}

#[test]
fn exec_env_cwd_user_and_groups() {
    let ctx = Ctx::new("execuser");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    let out = ctx.rt(&[
        "exec",
        "-e",
        "FOO=bar baz",
        "-e",
        "TERM=dumb",
        "--cwd",
        "/tmp",
        "--user",
        "1000:100",
        "--additional-gids",
        "10",
        "--additional-gids",
        "65534",
        &id,
        "sh",
        "-c",
        "echo \"$FOO\"; echo $TERM; echo $SKIFF_TEST_MARK | grep -c skt; pwd; id -u; id -g; id -G",
    ]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{:?}", out.stdout);
    assert_eq!(lines[0], "bar baz", "-e");
    assert_eq!(lines[1], "dumb", "-e overrides the config's env");
    assert_eq!(lines[2], "1", "the config's env is kept");
    assert_eq!(lines[3], "/tmp", "--cwd");
    assert_eq!(lines[4], "1000", "-u uid");
    assert_eq!(lines[5], "100", "-u gid");
    let groups: std::collections::BTreeSet<&str> = lines[6].split_whitespace().collect();
    assert_eq!(
        groups,
        ["10", "100", "65534"].into_iter().collect(),
        "additional gids: {}",
        lines[6]
    );
    // The short forms (runc refuses a mix of long and short forms).
    let out = ctx.rt(&["exec", "-u", "1000:1000", "-g", "10", &id, "id", "-G"]);
    out.ok();
    assert_eq!(out.stdout, "1000 10\n");
    finish(&ctx, &id);
}

#[test]
fn exec_cap_grants_a_missing_capability() {
    let ctx = Ctx::new("execcap");
    let mut c = ctx.config();
    c.mount("/mnt", "tmpfs", "tmpfs", &["size=1m"]);
    let (id, _) = start_sleeper(&ctx, c);
    let out = ctx.rt(&["exec", &id, "mknod", "/mnt/a", "c", "1", "3"]);
    assert_eq!(
        out.code(),
        Some(1),
        "mknod without CAP_MKNOD: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
    let out = ctx.rt(&[
        "exec",
        "--cap",
        "CAP_MKNOD",
        &id,
        "sh",
        "-c",
        "mknod /mnt/b c 1 3 && ls -l /mnt/b && grep CapEff /proc/self/status",
    ]);
    out.ok();
    assert!(out.stdout.contains("1,   3"), "{}", out.stdout);
    // CAP_MKNOD is bit 27, on top of the config's three.
    let want = (1u64 << 27) | (1 << 29) | (1 << 5) | (1 << 10);
    assert!(
        out.stdout.contains(&format!("CapEff:\t{want:016x}")),
        "{}",
        out.stdout
    );
    finish(&ctx, &id);
}

#[test]
fn exec_no_new_privs() {
    let ctx = Ctx::new("execnnp");
    let mut c = ctx.config();
    c.set("process.noNewPrivileges", Value::Bool(false));
    let (id, _) = start_sleeper(&ctx, c);
    let out = ctx.rt(&["exec", &id, "grep", "NoNewPrivs", "/proc/self/status"]);
    out.ok();
    assert_eq!(
        out.stdout.split_whitespace().nth(1),
        Some("0"),
        "{}",
        out.stdout
    );
    let out = ctx.rt(&[
        "exec",
        "--no-new-privs",
        &id,
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    out.ok();
    assert_eq!(
        out.stdout.split_whitespace().nth(1),
        Some("1"),
        "{}",
        out.stdout
    );
    finish(&ctx, &id);
}

#[test]
fn exec_process_json() {
    let ctx = Ctx::new("execproc");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    let p = ctx.path("process.json");
    fs::write(
        &p,
        r#"{"terminal":false,"user":{"uid":1000,"gid":1000,"additionalGids":[10]},
            "args":["sh","-c","echo $ONLY; env | grep -c SKIFF_TEST_MARK; pwd; id -u; id -G; exit 4"],
            "env":["ONLY=this","PATH=/bin:/usr/bin"],"cwd":"/home/user",
            "capabilities":{"bounding":[],"effective":[],"permitted":[],"ambient":[]},
            "noNewPrivileges":true}"#,
    )
    .unwrap();
    let out = ctx.rt(&["exec", "--process", p.to_str().unwrap(), &id]);
    out.exit(4);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["this", "0", "/home/user", "1000", "1000 10"],
        "the process.json replaces the config's process (stderr {})",
        out.stderr
    );
    finish(&ctx, &id);
}

#[test]
fn exec_detached_with_pid_file() {
    let ctx = Ctx::new("execdetach");
    let (id, init) = start_sleeper(&ctx, ctx.config());
    let pf = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    let pid = read_pid_file(&ctx, "exec.pid");
    ctx.track_pid(pid);
    assert!(proc_starttime(pid).is_some(), "exec'd process {pid} runs");
    assert_eq!(proc_cmdline(pid), "sleep 1000");
    // In the container's pid namespace (as pid 2 or so, not 1)...
    let nspid = status_field(pid, "NSpid").unwrap();
    let ids: Vec<&str> = nspid.split_whitespace().collect();
    assert_eq!(ids.len(), 2, "NSpid {nspid}");
    assert_eq!(ids[0], pid.to_string());
    assert_ne!(ids[1], "1");
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        fs::read_link(format!("/proc/{init}/ns/pid")).unwrap()
    );
    // ...and in its cgroups.
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap()
    );
    // `ps` lists it.
    let out = ctx.rt(&["ps", "-f", "json", &id]);
    out.ok();
    assert!(
        out.stdout.contains(&pid.to_string()),
        "ps lists {pid}: {}",
        out.stdout
    );
    finish(&ctx, &id);
    assert!(wait_gone(pid, proc_starttime(pid).unwrap_or(0), T));
}

/// `-t -d --console-socket`: the pty master goes to the socket (runc uses
/// the socket only when detached; without -d it relays the terminal
/// itself).
#[test]
fn exec_tty_with_console_socket() {
    let ctx = Ctx::new("exectty");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    let sock = ConsoleSocket::new(&ctx);
    let pf = ctx.path("exec.pid");
    let out = ctx.rt(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        &sock.path_str(),
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "tty; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; stty -echo; echo ready; read x; echo got:$x",
    ]);
    out.ok();
    let pid = read_pid_file(&ctx, "exec.pid");
    ctx.track_pid(pid);
    let master = sock.receive_master(T);
    let text = read_pty(&master, T, |s| s.contains("ready"));
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("/dev/pts/")),
        "{text:?}"
    );
    assert!(lines.contains(&"all-ttys"), "{text:?}");
    write_pty(&master, b"hello\n");
    let text = read_pty(&master, T, |s| s.contains("got:hello"));
    assert!(text.contains("got:hello"), "{text:?}");
    assert!(
        out.stdout.is_empty(),
        "output went to the pty: {:?}",
        out.stdout
    );
    assert!(wait_gone(pid, proc_starttime(pid).unwrap_or(0), T));
    finish(&ctx, &id);
}

/// The namespaces of `pid` as the host sees them.
fn ns_links(pid: i32, kinds: &[&str]) -> Vec<String> {
    kinds
        .iter()
        .map(|k| {
            fs::read_link(format!("/proc/{pid}/ns/{k}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("{k}: {e}"))
        })
        .collect()
}

#[test]
fn exec_joins_every_namespace_and_cgroup() {
    let ctx = Ctx::new("execns");
    let mut c = ctx.config();
    c.add_namespace("cgroup");
    let (id, init) = start_sleeper(&ctx, c);
    let pf = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    let pid = read_pid_file(&ctx, "exec.pid");
    ctx.track_pid(pid);
    let kinds = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];
    let theirs = ns_links(init, &kinds);
    assert_eq!(ns_links(pid, &kinds), theirs);
    // And they are the container's own, not ours.
    let ours = ns_links(std::process::id() as i32, &kinds);
    for (k, (a, b)) in kinds.iter().zip(theirs.iter().zip(ours.iter())) {
        assert_ne!(a, b, "{k} namespace is the container's own");
    }
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap(),
        "exec'd process in the container's cgroups"
    );
    // Seen from inside: the same hostname and root.
    let out = ctx.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    out.ok();
    assert_eq!(out.stdout, "runc\nsleep 1000 ");
    finish(&ctx, &id);
}

#[test]
fn exec_joins_the_user_namespace() {
    let ctx = Ctx::new("execuserns");
    let mut c = ctx.config();
    c.add_namespace("user")
        .set(
            "linux.uidMappings",
            js(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#),
        )
        .set(
            "linux.gidMappings",
            js(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#),
        )
        .remove_mount("/sys/fs/cgroup");
    let (id, init) = start_sleeper(&ctx, c);
    let pf = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    let pid = read_pid_file(&ctx, "exec.pid");
    ctx.track_pid(pid);
    let kinds = ["user", "mnt", "pid", "net", "ipc", "uts"];
    assert_eq!(ns_links(pid, &kinds), ns_links(init, &kinds));
    assert_ne!(
        ns_links(pid, &["user"]),
        ns_links(std::process::id() as i32, &["user"])
    );
    // uid 0 inside is 100000 on the host.
    let uid = status_field(pid, "Uid").unwrap();
    assert_eq!(uid.split_whitespace().next(), Some("100000"), "{uid}");
    let out = ctx.rt(&["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    out.ok();
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words, ["0", "0", "100000", "65536"]);
    finish(&ctx, &id);
}

#[test]
fn exec_in_stopped_container_fails() {
    let ctx = Ctx::new("execstopped");
    let mut c = ctx.config();
    c.sh("exit 0");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt(&["run", "-d", "--bundle", &b, &id]).ok();
    ctx.wait_status(&id, "stopped", T);
    let out = ctx.rt(&["exec", &id, "true"]);
    // exec's own failures exit 255 (runc's code), not the process's.
    out.exit(255);
    assert!(out.stderr.contains("stopped"), "{}", out.stderr);
    // A created (not started) container's init is waiting too: exec goes
    // in only once it runs. Unknown ids fail.
    let out = ctx.rt(&["exec", "no-such-container", "true"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn exec_usage_errors() {
    let ctx = Ctx::new("execusage");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    // -t -d without a console socket.
    let out = ctx.rt(&["exec", "-t", "-d", &id, "true"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("console socket"), "{}", out.stderr);
    // A console socket without -t.
    let sock = ConsoleSocket::new(&ctx);
    let out = ctx.rt(&[
        "exec",
        "-d",
        "--console-socket",
        &sock.path_str(),
        &id,
        "true",
    ]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("console socket"), "{}", out.stderr);
    // No command.
    let out = ctx.rt(&["exec", &id]);
    assert!(!out.status.success());
    // An unknown capability (skiff checked alone: runc 1.1.5 runs the
    // process anyway).
    if is_skiff() {
        let out = ctx.rt(&["exec", "--cap", "CAP_NO_SUCH", &id, "true"]);
        out.exit(255);
        assert!(out.stderr.contains("CAP_NO_SUCH"), "{}", out.stderr);
    }
    // None of them started anything.
    let out = ctx.rt(&["ps", "-f", "json", &id]);
    out.ok();
    assert_eq!(
        out.stdout.matches(',').count(),
        0,
        "only the init: {}",
        out.stdout
    );
    finish(&ctx, &id);
}

#[test]
fn exec_preserve_fds() {
    let ctx = Ctx::new("execfds");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    let f = ctx.path("passed.txt");
    fs::write(&f, "through fd 3\n").unwrap();
    let out = ctx.rt_with_fd3(
        &f,
        &["exec", "--preserve-fds", "1", &id, "sh", "-c", "cat <&3"],
    );
    out.ok();
    assert_eq!(out.stdout, "through fd 3\n");
    // Without --preserve-fds the fd is not passed.
    let out = ctx.rt_with_fd3(&f, &["exec", &id, "sh", "-c", "cat <&3"]);
    assert_ne!(out.code(), Some(0), "fd 3 closed: {}", out.stdout);
    assert!(out.stdout.is_empty());
    finish(&ctx, &id);
}

#[test]
fn exec_missing_binary_fails_cleanly() {
    let ctx = Ctx::new("execmissing");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    let out = ctx.rt(&["exec", &id, "/no/such/binary", "arg"]);
    assert!(!out.status.success());
    if is_skiff() {
        // runc 1.1.5 exits 255 too, with a longer message.
        out.exit(255);
    }
    assert!(
        out.stderr.contains("/no/such/binary") && out.stderr.contains("no such file"),
        "{}",
        out.stderr
    );
    // Nothing left behind: the container holds its init only.
    let out = ctx.rt(&["ps", "-f", "json", &id]);
    out.ok();
    let pids: Vec<&str> = out
        .stdout
        .trim()
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .collect();
    assert_eq!(pids.len(), 1, "only the init is left: {}", out.stdout);
    assert_eq!(ctx.status(&id), "running");
    finish(&ctx, &id);
}

#[test]
fn kill_all_reaches_exec_processes() {
    let ctx = Ctx::new("execkillall");
    let (id, init) = start_sleeper(&ctx, ctx.config());
    let pf = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    let pid = read_pid_file(&ctx, "exec.pid");
    ctx.track_pid(pid);
    let st = proc_starttime(pid).unwrap();
    // A plain kill goes to the init only (which, as a pid namespace's init
    // without a handler, ignores SIGTERM).
    ctx.kill(&id, "TERM").ok();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        process_alive(pid, st),
        "plain kill spares the exec'd process"
    );
    // --all reaches every process.
    ctx.rt(&["kill", "--all", &id, "TERM"]).ok();
    assert!(
        wait_gone(pid, st, T),
        "kill --all TERM killed the exec'd process"
    );
    assert_eq!(ctx.status(&id), "running", "the init ignores TERM");
    ctx.rt(&["exec", "-d", &id, "sleep", "999"]).ok();
    ctx.rt(&["kill", "--all", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped", T);
    assert!(wait_gone(init, proc_starttime(init).unwrap_or(0), T));
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

/// Without a pid namespace of its own, a container's exec'd processes do
/// not die with its init: `delete --force` must kill them (they are in its
/// cgroup), and `kill --all` must reach them.
#[test]
fn exec_in_shared_pid_namespace_is_cleaned_up() {
    let ctx = Ctx::new("execnopidns");
    let mut c = ctx.config();
    c.remove_namespace("pid");
    let (id, _) = start_sleeper(&ctx, c);
    let exec_pid = |name: &str| -> i32 {
        let pf = ctx.path(name);
        ctx.rt(&[
            "exec",
            "-d",
            "--pid-file",
            pf.to_str().unwrap(),
            &id,
            "sleep",
            "1000",
        ])
        .ok();
        let pid = read_pid_file(&ctx, name);
        ctx.track_pid(pid);
        pid
    };
    let a = exec_pid("a.pid");
    let a_st = proc_starttime(a).unwrap();
    assert_eq!(
        fs::read_link(format!("/proc/{a}/ns/pid")).unwrap(),
        fs::read_link("/proc/self/ns/pid").unwrap(),
        "the host's pid namespace"
    );
    ctx.rt(&["kill", "--all", &id, "KILL"]).ok();
    assert!(
        wait_gone(a, a_st, T),
        "kill --all reached the exec'd process"
    );
    ctx.wait_status(&id, "stopped", T);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);

    let mut c = ctx.config();
    c.remove_namespace("pid");
    let (id2, _) = start_sleeper(&ctx, c);
    let pf = ctx.path("b.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id2,
        "sleep",
        "1000",
    ])
    .ok();
    let b = read_pid_file(&ctx, "b.pid");
    ctx.track_pid(b);
    let b_st = proc_starttime(b).unwrap();
    ctx.rt(&["delete", "--force", &id2]).ok();
    assert!(
        wait_gone(b, b_st, T),
        "delete --force killed the exec'd process"
    );
    ctx.assert_gone(&id2);
}

#[test]
fn exec_bad_cwd_fails_clearly() {
    let ctx = Ctx::new("execcwd");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    let out = ctx.rt(&["exec", "--cwd", "/nonexistent", &id, "pwd"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    if is_skiff() {
        // As runc 1.1.5: 255.
        out.exit(255);
    }
    assert!(out.stderr.contains("/nonexistent"), "{}", out.stderr);
    assert_eq!(ctx.status(&id), "running");
    finish(&ctx, &id);
}

/// `-e NAME` without `=`: runc refuses ("invalid environment variable").
#[test]
fn exec_env_without_equals_is_refused() {
    let ctx = Ctx::new("execbadenv");
    let (id, _) = start_sleeper(&ctx, ctx.config());
    let out = ctx.rt(&["exec", "-e", "BAD", &id, "echo", "ran"]);
    assert!(!out.status.success(), "exec -e BAD refused: {}", out.stdout);
    assert!(!out.stdout.contains("ran"));
    assert!(out.stderr.contains("BAD"), "{}", out.stderr);
    finish(&ctx, &id);
}

#[test]
fn delete_kills_what_outlives_the_init() {
    // Without a pid namespace, a detached exec'd process survives its
    // init; `delete` of the then stopped container must end it and remove
    // the cgroup (as runc does).
    let ctx = Ctx::new("outlive");
    let mut c = ctx.config();
    c.remove_namespace("pid");
    let (id, init) = start_sleeper(&ctx, c);
    let pf = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    let straggler = read_pid_file(&ctx, "exec.pid");
    ctx.track_pid(straggler);
    // SAFETY: signalling the init pid this test started.
    unsafe { libc::kill(init, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), || {
        ctx.rt(&["state", &id]).stdout.contains("\"stopped\"")
    });
    assert!(
        proc_starttime(straggler).is_some(),
        "the exec'd process outlived the init"
    );
    ctx.rt(&["delete", &id]).ok();
    wait_until(Duration::from_secs(10), || {
        proc_starttime(straggler).is_none()
    });
    assert!(
        proc_starttime(straggler).is_none(),
        "delete killed pid {straggler}"
    );
    ctx.assert_gone(&id);
}
