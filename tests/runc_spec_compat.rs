//! What configs written by other tools and the runtime spec's MUSTs ask of
//! the `runc` applet, where runc 1.1 and skiff used to differ:
//! - an older seccomp profile (default ERRNO, no close_range) runs, for
//!   the init and for exec, and the fd sweep survives a refused close_range
//!   (and refuses a /proc that is not procfs);
//! - the created init waits for `start` under its seccomp filter, with only
//!   its configured capabilities;
//! - startContainer hooks run under the container's seccomp filter;
//! - hooks get the spec's status, and a failing poststart or poststop hook
//!   leaves the others to run;
//! - device rules take what runc takes in `access`, and `update` of device
//!   rules changes only what differs, leaves a privileged container with
//!   sub-cgroups alone, and writes nothing when it refuses.
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/sbin/runc cargo test
//! --test runc_spec_compat`.

mod common;

use common::*;
use miniserde::json::Value;
use std::fs;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Seccomp profiles older than the runtime

/// A profile as spec generators and older docker releases write it:
/// default SCMP_ACT_ERRNO, every x86_64 syscall up to the landlock ones
/// (444-446) allowed, except close_range (436), which they predate.
fn profile_without_close_range() -> Value {
    let table = include_str!("../src/seccomp/table.rs");
    let mut names = Vec::new();
    for line in table.lines() {
        // ("name", x86_64, i386, x32),
        let Some(rest) = line.trim().strip_prefix("(\"") else {
            continue;
        };
        let Some((name, nums)) = rest.split_once("\", ") else {
            continue;
        };
        let nr = nums.split(',').next().unwrap_or("").trim();
        if let Ok(nr) = nr.parse::<u32>() {
            if nr <= 446 && name != "close_range" {
                names.push(format!("\"{name}\""));
            }
        }
    }
    assert!(names.len() > 300, "syscall table parsed: {}", names.len());
    assert!(names.iter().any(|n| n == "\"landlock_restrict_self\""));
    js(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
        names.join(",")
    ))
}

/// `run` with the old profile, with and without no_new_privs (without it,
/// installing the filter needs CAP_SYS_ADMIN, also for a non-root user),
/// as root and as another user: the fd sweep must not need close_range
/// under the filter.
#[test]
fn old_profile_without_close_range_runs() {
    let ctx = Ctx::new("oldprofile");
    for (nnp, uid) in [(true, 0), (false, 0), (false, 1000)] {
        let mut c = ctx.config();
        c.set("process.noNewPrivileges", Value::Bool(nnp))
            .set("process.user.uid", jnum(uid))
            .set("process.user.gid", jnum(uid))
            .set("linux.seccomp", profile_without_close_range())
            .sh("echo ran $(id -u); grep Seccomp: /proc/self/status");
        let out = ctx.run_config(&c);
        out.ok();
        assert!(
            out.stdout.starts_with(&format!("ran {uid}\nSeccomp:\t2")),
            "nnp {nnp} uid {uid}: {:?} {:?}",
            out.stdout,
            out.stderr
        );
    }
}

/// `exec` into a container whose config has the old profile.
#[test]
fn old_profile_without_close_range_exec() {
    let ctx = Ctx::new("oldprofexec");
    for nnp in [true, false] {
        let mut c = ctx.config();
        c.set("process.noNewPrivileges", Value::Bool(nnp))
            .set("linux.seccomp", profile_without_close_range())
            .args(&["sleep", "1000"]);
        ctx.write_config(&c);
        let id = ctx.id();
        ctx.create(&id).ok();
        ctx.start(&id).ok();
        for user in ["0:0", "1000:1000"] {
            let out = ctx.rt(&[
                "exec",
                "--user",
                user,
                &id,
                "sh",
                "-c",
                "echo exec-ran $(id -u)",
            ]);
            out.ok();
            let uid = user.split(':').next().unwrap();
            assert_eq!(
                out.stdout,
                format!("exec-ran {uid}\n"),
                "nnp {nnp}: {}",
                out.stderr
            );
        }
        ctx.rt(&["delete", "--force", &id]).ok();
        ctx.assert_gone(&id);
    }
}

/// The fd sweep under a filter that refuses close_range (the runtime
/// itself run under an older profile): it falls back to /proc/self/fd and
/// still marks every fd close-on-exec.
#[test]
fn fd_sweep_survives_a_refused_close_range() {
    let profile = js(r#"{"defaultAction":"SCMP_ACT_ALLOW",
        "syscalls":[{"names":["close_range"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#);
    let text = to_json(&profile);
    let v = skiff::json::parse(&text, "profile").unwrap();
    let p = skiff::seccomp::parse(&skiff::json::Node::new(&v, "linux.seccomp")).unwrap();
    let prog = skiff::seccomp::compile(&p).unwrap();
    // SAFETY: the child makes syscalls and leaves with _exit; musl's fork
    // leaves its allocator usable in the child, which cloexec_from's
    // fallback needs to list /proc/self/fd.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain syscalls in the forked child, which ends with _exit.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(101);
            }
            // An fd without close-on-exec, above the stdio ones.
            let fd = libc::fcntl(1, libc::F_DUPFD, 40);
            if fd < 0 || libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 {
                libc::_exit(102);
            }
            if skiff::sys::seccomp::install(&prog).is_err() {
                libc::_exit(100);
            }
            // close_range is refused now.
            if libc::syscall(libc::SYS_close_range, 3, u32::MAX, 4) != -1 {
                libc::_exit(103);
            }
            if skiff::sys::process::cloexec_from(3).is_err() {
                libc::_exit(104);
            }
            if libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC == 0 {
                libc::_exit(105);
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x} (exit {}: 104 = the sweep failed, 105 = fd left open)",
        libc::WEXITSTATUS(status)
    );
}

/// A field of /proc/PID/status.
fn status_field(pid: i32, field: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn cap_bits(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| 1u64 << skiff::sys::caps::from_name(n).expect("a capability name"))
        .fold(0, |a, b| a | b)
}

/// (CapEff, CapPrm, Seccomp) of a process, as the kernel reports them.
fn privileges(pid: i32) -> (u64, u64, String) {
    let hex = |f: &str| u64::from_str_radix(&status_field(pid, f), 16).expect(f);
    (hex("CapEff"), hex("CapPrm"), status_field(pid, "Seccomp"))
}

/// With a seccomp filter and no_new_privs off, the filter needs
/// CAP_SYS_ADMIN to go in: the created init (waiting for `start`) must
/// already be under the filter and hold only its configured capabilities,
/// not a CAP_SYS_ADMIN kept for the filter; so must the process after
/// `start`. As root and as another user.
#[test]
fn created_init_is_under_seccomp_without_extra_capabilities() {
    let ctx = Ctx::new("createdcaps");
    let granted = ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_PTRACE"];
    for uid in [0u64, 1000] {
        let mut c = ctx.config();
        for set in ["bounding", "effective", "permitted", "inheritable"] {
            c.set(&format!("process.capabilities.{set}"), jarr_str(&granted));
        }
        c.set("process.capabilities.ambient", jarr_str(&["CAP_KILL"]))
            .set("process.noNewPrivileges", Value::Bool(false))
            .set("process.user.uid", jnum(uid))
            .set("process.user.gid", jnum(uid))
            .set(
                "linux.seccomp",
                js(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["kexec_load"],"action":"SCMP_ACT_ERRNO"}]}"#),
            )
            .args(&["sleep", "1000"]);
        ctx.write_config(&c);
        let id = ctx.id();
        ctx.create(&id).ok();
        let pid = ctx.pid_of(&id);
        let all = cap_bits(&granted);
        assert_eq!(
            privileges(pid),
            (all, all, "2".to_string()),
            "uid {uid}: the created init (CapEff, CapPrm, Seccomp)"
        );
        ctx.start(&id).ok();
        // runc's start may return before its init has exec'd.
        let deadline = std::time::Instant::now() + T;
        while !proc_cmdline(pid).starts_with("sleep") {
            assert!(
                std::time::Instant::now() < deadline,
                "the init never exec'd"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // After execve the kernel's rules: root keeps its bounding set, any
        // other user only its ambient capabilities.
        let after = if uid == 0 {
            all
        } else {
            cap_bits(&["CAP_KILL"])
        };
        assert_eq!(
            privileges(pid),
            (after, after, "2".to_string()),
            "uid {uid}: the started process (CapEff, CapPrm, Seccomp)"
        );
        ctx.rt(&["delete", "--force", &id]).ok();
        ctx.assert_gone(&id);
    }
}

/// The fd sweep's fallback must not trust a /proc that is not procfs: in
/// `exec` it runs in the container's mount namespace, where a process with
/// CAP_SYS_ADMIN could have put anything over /proc. Here /proc is a tmpfs
/// with an empty `self/fd`: the sweep must fail, not leave fds unmarked.
#[test]
fn fd_sweep_refuses_a_proc_that_is_not_procfs() {
    let profile = js(r#"{"defaultAction":"SCMP_ACT_ALLOW",
        "syscalls":[{"names":["close_range"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#);
    let text = to_json(&profile);
    let v = skiff::json::parse(&text, "profile").unwrap();
    let p = skiff::seccomp::parse(&skiff::json::Node::new(&v, "linux.seccomp")).unwrap();
    let prog = skiff::seccomp::compile(&p).unwrap();
    let tmpfs = c"tmpfs";
    let proc_dir = c"/proc";
    let fake_fd = c"/proc/self/fd";
    // SAFETY: see fd_sweep_survives_a_refused_close_range.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain syscalls in the forked child, which ends with _exit;
        // the mount namespace it changes is its own.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                || libc::mount(
                    tmpfs.as_ptr(),
                    proc_dir.as_ptr(),
                    tmpfs.as_ptr(),
                    0,
                    std::ptr::null(),
                ) != 0
                || libc::mkdir(c"/proc/self".as_ptr(), 0o755) != 0
                || libc::mkdir(fake_fd.as_ptr(), 0o755) != 0
            {
                libc::_exit(101);
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(101);
            }
            let fd = libc::fcntl(1, libc::F_DUPFD, 40);
            if fd < 0 || skiff::sys::seccomp::install(&prog).is_err() {
                libc::_exit(101);
            }
            let swept = skiff::sys::process::cloexec_from(3);
            let marked = libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0;
            libc::_exit(match (swept.is_ok(), marked) {
                (false, _) => 0,
                (true, true) => 102,
                (true, false) => 103,
            });
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x} (exit {}: 103 = the sweep trusted the fake /proc and left an fd open)",
        libc::WEXITSTATUS(status)
    );
}

// ---------------------------------------------------------------------------
// Hooks

/// A hook running the host's busybox sh with `script` ($1 = `dir`).
fn hook(script: &str, dir: &str) -> Value {
    js(&format!(
        r#"{{"path":"/bin/busybox","args":["sh","-c",{},"hook","{dir}"]}}"#,
        to_json(&jstr(script))
    ))
}

/// startContainer hooks run after the seccomp filter is in (as runc runs
/// them), with and without no_new_privs.
#[test]
fn start_container_hooks_run_under_seccomp() {
    let ctx = Ctx::new("hookseccomp");
    let out_dir = ctx.path("hookout");
    fs::create_dir(&out_dir).unwrap();
    fs::create_dir(ctx.rootfs().join("hookout")).unwrap();
    for nnp in [true, false] {
        let mut c = ctx.config();
        c.mount(
            "/hookout",
            "bind",
            out_dir.to_str().unwrap(),
            &["rbind", "rw"],
        )
        .set("process.noNewPrivileges", Value::Bool(nnp))
        .set(
            "linux.seccomp",
            js(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#),
        )
        .push(
            "hooks.startContainer",
            hook(
                "grep Seccomp: /proc/self/status > $1/seccomp; mkdir $1/made 2>/dev/null; echo mkdir=$? >> $1/seccomp",
                "/hookout",
            ),
        )
        .sh("true");
        let _ = fs::remove_file(out_dir.join("seccomp"));
        ctx.run_config(&c).ok();
        let seen = fs::read_to_string(out_dir.join("seccomp")).expect("the hook ran");
        assert_eq!(
            seen, "Seccomp:\t2\nmkdir=1\n",
            "nnp {nnp}: the filter holds in the hook"
        );
        assert!(!out_dir.join("made").exists());
    }
}

/// The status on each hook's stdin is the spec's: `created` up to
/// startContainer, `running` for poststart, `stopped` for poststop.
#[test]
fn hooks_see_the_spec_status() {
    let ctx = Ctx::new("hookstatus");
    let out_dir = ctx.path("hookout");
    fs::create_dir(&out_dir).unwrap();
    fs::create_dir(ctx.rootfs().join("hookout")).unwrap();
    let host = out_dir.to_str().unwrap().to_string();
    let mut c = ctx.config();
    c.mount("/hookout", "bind", &host, &["rbind", "rw"])
        .sh("exec sleep 1000");
    let kinds = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    for kind in kinds {
        let dir = if kind == "startContainer" {
            "/hookout"
        } else {
            &host
        };
        c.push(
            &format!("hooks.{kind}"),
            hook(&format!("cat > $1/{kind}"), dir),
        );
    }
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
    for kind in kinds {
        let text =
            fs::read_to_string(out_dir.join(kind)).unwrap_or_else(|e| panic!("{kind} ran: {e}"));
        let state = js(&text);
        let want = match kind {
            // runc 1.1.5 runs poststart during create.
            "poststart" if !is_skiff() => "created",
            "poststart" => "running",
            "poststop" => "stopped",
            // runc 1.1.5 says "creating" before startContainer.
            "prestart" | "createRuntime" | "createContainer" if !is_skiff() => "creating",
            _ => "created",
        };
        assert_eq!(as_str(jget(&state, "status")), Some(want), "{kind}: {text}");
    }
}

/// A failing poststart or poststop hook is a warning: the hooks after it
/// still run, and so does the lifecycle.
#[test]
fn failing_poststart_and_poststop_leave_the_other_hooks_to_run() {
    let ctx = Ctx::new("hookrest");
    let out_dir = ctx.path("hookout");
    fs::create_dir(&out_dir).unwrap();
    let host = out_dir.to_str().unwrap().to_string();
    let mut c = ctx.config();
    c.sh("exec sleep 1000");
    for kind in ["poststart", "poststop"] {
        c.push(
            &format!("hooks.{kind}"),
            hook(&format!("echo {kind}-broke >&2; exit 2"), &host),
        )
        .push(
            &format!("hooks.{kind}"),
            hook(&format!("echo ran > $1/{kind}"), &host),
        );
    }
    ctx.write_config(&c);
    let id = ctx.id();
    if !is_skiff() {
        // runc 1.1.5 runs poststart during create, and fails it.
        ctx.create(&id).fails();
        ctx.assert_gone(&id);
        return;
    }
    ctx.create(&id).ok();
    let out = ctx.start(&id);
    out.ok();
    // Reported as a warning in runc's log format, not as an error.
    assert!(
        out.stderr.contains("level=warning") && out.stderr.contains("poststart-broke"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("level=error"), "{}", out.stderr);
    assert_eq!(ctx.status(&id), "running");
    assert!(
        out_dir.join("poststart").exists(),
        "the second poststart hook ran"
    );
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    let out = ctx.delete(&id);
    out.ok();
    assert!(
        out.stderr.contains("level=warning") && out.stderr.contains("poststop-broke"),
        "{}",
        out.stderr
    );
    assert!(
        out_dir.join("poststop").exists(),
        "the second poststop hook ran"
    );
    ctx.assert_gone(&id);
}

// ---------------------------------------------------------------------------
// Device cgroup rules

/// The v1 devices cgroup of a running container's init.
fn devices_list(pid: i32) -> Option<String> {
    let dir = cgroup_dir(pid, "devices")?;
    fs::read_to_string(dir.join("devices.list")).ok()
}

fn devices_v1() -> bool {
    cgroup_mount("devices").is_some()
}

/// A prerequisite is missing: say so, and fail in CI.
fn missing(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("prerequisite missing: {what}");
    }
    eprintln!("skipped: {what}");
}

/// A detached container running `sleep`, with the given device rules.
fn sleeper_with_devices(ctx: &Ctx, rules: &str) -> (String, i32) {
    let mut c = ctx.config();
    c.set("linux.resources.devices", js(rules))
        .writable_rootfs()
        .args(&["sleep", "1000"]);
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    let pid = ctx.pid_of(&id);
    (id, pid)
}

/// `access` takes what runc takes: letters other than r, w and m are
/// ignored ("rwa" is "rw"), in create and in update.
#[test]
fn device_access_ignores_unknown_letters() {
    if !devices_v1() {
        missing("a cgroup v1 devices controller");
        return;
    }
    let ctx = Ctx::new("devaccess");
    let (id, pid) = sleeper_with_devices(
        &ctx,
        r#"[{"allow":false,"access":"rwm"},
            {"allow":true,"type":"c","major":4,"minor":1,"access":"rwa"},
            {"allow":true,"type":"b","major":7,"minor":0,"access":"xr"}]"#,
    );
    let list = devices_list(pid).expect("devices.list");
    assert!(list.contains("c 4:1 rw\n"), "{list}");
    assert!(list.contains("b 7:0 r\n"), "{list}");
    assert!(list.contains("c 1:3 rwm\n"), "{list}");
    let out = ctx.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo x > /dev/null && echo null-ok",
    ]);
    out.ok();
    assert_eq!(out.stdout, "null-ok\n");
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

/// The default rules every container gets, as devices.list shows them.
const DEFAULT_DEVICES_LIST: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:8 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:5 rwm",
    "c 1:9 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
    "c 10:200 rwm",
];

/// `update` with device rules changes what differs and nothing else: the
/// rules added appear, those dropped go, the defaults stay, and the
/// cgroup's devices.list is exactly what the rules ask for. (The order of
/// the writes, gains first and no "deny all", is checked by the unit tests
/// of cgroups::device_rules; the process using /dev/null all along here is
/// a smoke check.)
#[test]
fn update_of_device_rules_is_minimal() {
    if !devices_v1() {
        missing("a cgroup v1 devices controller");
        return;
    }
    let ctx = Ctx::new("devupdate");
    let mut c = ctx.config();
    c.set(
        "linux.resources.devices",
        js(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":237,"access":"rwm"}]"#),
    )
    .writable_rootfs()
    .sh("while :; do echo x > /dev/null || echo denied >> /denied; usleep 2000; done");
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    let pid = ctx.pid_of(&id);
    let before = devices_list(pid).expect("devices.list");
    let mut want: Vec<&str> = DEFAULT_DEVICES_LIST.to_vec();
    want.push("c 10:237 rwm");
    assert_eq!(line_set(&before), line_set(&want.join("\n")));
    let res = ctx.path("res.json");
    let rules = [
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":4,"minor":1,"access":"rw"}]}"#,
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":237,"access":"rwm"}]}"#,
    ];
    for i in 0..10 {
        fs::write(&res, rules[i % 2]).unwrap();
        ctx.rt(&["update", "-r", res.to_str().unwrap(), &id]).ok();
    }
    fs::write(&res, rules[0]).unwrap();
    ctx.rt(&["update", "-r", res.to_str().unwrap(), &id]).ok();
    let after = devices_list(pid).expect("devices.list");
    if is_skiff() {
        let mut want: Vec<&str> = DEFAULT_DEVICES_LIST.to_vec();
        want.push("c 4:1 rw");
        assert_eq!(line_set(&after), line_set(&want.join("\n")));
    } else {
        // runc's update never changes device rules.
        assert_eq!(after, before);
    }
    let denied = ctx.rootfs().join("denied");
    assert!(
        !denied.exists(),
        "/dev/null was denied {} time(s) during the updates",
        fs::read_to_string(&denied)
            .unwrap_or_default()
            .lines()
            .count()
    );
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

/// A container's cgroup limits, read from the v1 memory controller.
fn memory_limit(pid: i32) -> u64 {
    let dir = cgroup_dir(pid, "memory").expect("a v1 memory cgroup");
    fs::read_to_string(dir.join("memory.limit_in_bytes"))
        .expect("memory.limit_in_bytes")
        .trim()
        .parse()
        .expect("a number")
}

/// A privileged container (all devices allowed) that has made a
/// sub-cgroup (systemd in a container, docker-in-docker do) takes the
/// updates containerd's CRI sends, which carry its device rules each time:
/// nothing is written to its devices cgroup. An update that would have to
/// reset its rules (the kernel refuses that once a cgroup has children) is
/// refused before anything is written.
#[test]
fn update_of_a_privileged_container_with_sub_cgroups() {
    if !devices_v1() || cgroup_mount("memory").is_none() {
        missing("cgroup v1 devices and memory controllers");
        return;
    }
    let ctx = Ctx::new("devpriv");
    let (id, pid) = sleeper_with_devices(&ctx, r#"[{"allow":true,"access":"rwm"}]"#);
    let dir = cgroup_dir(pid, "devices").expect("devices cgroup");
    assert_eq!(devices_list(pid).as_deref(), Some("a *:* rwm\n"));
    fs::create_dir(dir.join("child")).expect("make a sub-cgroup");
    let res = ctx.path("res.json");
    fs::write(
        &res,
        r#"{"memory":{"limit":209715200},"devices":[{"allow":true,"access":"rwm"}]}"#,
    )
    .unwrap();
    let out = ctx.rt(&["update", "-r", res.to_str().unwrap(), &id]);
    out.ok();
    assert_eq!(memory_limit(pid), 209715200);
    assert_eq!(devices_list(pid).as_deref(), Some("a *:* rwm\n"));
    if is_skiff() {
        // Taking the devices away needs a reset: refused, and the memory
        // limit of the same update not written either.
        fs::write(
            &res,
            r#"{"memory":{"limit":104857600},"devices":[{"allow":false,"access":"rwm"}]}"#,
        )
        .unwrap();
        let out = ctx.rt(&["update", "-r", res.to_str().unwrap(), &id]);
        out.fails();
        assert!(
            out.stderr.contains("sub-cgroups") && out.stderr.contains("linux.resources.devices"),
            "{}",
            out.stderr
        );
        assert_eq!(memory_limit(pid), 209715200, "nothing written");
        assert_eq!(devices_list(pid).as_deref(), Some("a *:* rwm\n"));
    }
    let _ = fs::remove_dir(dir.join("child"));
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

/// Device rules that a v1 cgroup cannot express fail the whole `update`:
/// the memory limit given with them is not written, the device rules stay,
/// and the message names the rule as the config gives it.
#[test]
fn update_with_bad_device_rules_changes_nothing() {
    if !devices_v1() || cgroup_mount("memory").is_none() {
        missing("cgroup v1 devices and memory controllers");
        return;
    }
    let ctx = Ctx::new("devbad");
    let (id, pid) = sleeper_with_devices(&ctx, r#"[{"allow":false,"access":"rwm"}]"#);
    let limit = memory_limit(pid);
    let before = devices_list(pid).expect("devices.list");
    let res = ctx.path("res.json");
    fs::write(
        &res,
        r#"{"memory":{"limit":104857600},"devices":[{"allow":false,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"access":"rw"},
            {"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]}"#,
    )
    .unwrap();
    let out = ctx.rt(&["update", "-r", res.to_str().unwrap(), &id]);
    if is_skiff() {
        out.fails();
        assert_eq!(memory_limit(pid), limit, "the memory limit not written");
        assert!(
            out.stderr.contains("`deny c 1:3 w`") && out.stderr.contains("`c 1:* rw`"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(devices_list(pid).expect("devices.list"), before);
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

// ---------------------------------------------------------------------------
// delete

/// `delete` without --force of a container that is not stopped fails and
/// changes nothing (runtime spec), created and paused ones included: the
/// created one still starts afterwards.
#[test]
fn delete_without_force_leaves_a_live_container_alone() {
    let ctx = Ctx::new("delalone");
    let mut c = ctx.config();
    c.args(&["sleep", "1000"]);
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    let out = ctx.delete(&id);
    if !is_skiff() {
        // runc 1.1.5 deletes a created container without --force.
        out.ok();
        ctx.assert_gone(&id);
        return;
    }
    out.fails();
    assert!(
        out.stderr.contains("not stopped: created"),
        "{}",
        out.stderr
    );
    assert_eq!(ctx.status(&id), "created");
    ctx.start(&id).ok();
    assert_eq!(ctx.status(&id), "running");
    ctx.rt(&["pause", &id]).ok();
    let out = ctx.delete(&id);
    out.fails();
    assert!(out.stderr.contains("not stopped: paused"), "{}", out.stderr);
    assert_eq!(ctx.status(&id), "paused");
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}
