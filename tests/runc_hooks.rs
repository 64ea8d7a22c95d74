//! OCI hooks: prestart, createRuntime, createContainer, startContainer,
//! poststart and poststop each run once, at their point of the lifecycle,
//! in their namespace, with the state on stdin and exactly their args and
//! env; failures and timeouts. Also `features` (which lists the hooks).
//!
//! Every hook here is the host's (or the rootfs's) busybox run as
//! `sh -c SCRIPT NAME ARGS...`: busybox picks its applet from argv[0], so a
//! hook that runs at all proves that args[0] became argv[0].
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test runc_hooks`.

mod common;

use common::*;
use miniserde::json::{self, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

const ALL: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Hooks that run in the container's mount namespace.
fn in_container(kind: &str) -> bool {
    kind == "createContainer" || kind == "startContainer"
}

/// The script every hook runs: it appends its name to `order`, and writes
/// what it saw (argv, environment, mount namespace, stdin) to `NAME.out`
/// in `dir`, which is the host's test dir or, after pivot_root, the same
/// dir bind-mounted at /hookout. (argv and environment come through
/// /proc/self opened by the shell itself: createContainer runs in the
/// container's pid namespace with the host's /proc, where /proc/$$ is some
/// other process.)
const RECORD: &str = r#"d=$1; n=$0; exec 3< /proc/self/cmdline 4< /proc/self/environ
echo $n >> $d/order
{
  echo "argv=$(tr '\0\n' '#@' <&3)"
  echo "env=$(tr '\0\n' '#@' <&4)"
  echo "mntns=$(readlink /proc/self/ns/mnt)"
  echo "state=$(cat)"
} > $d/$n.out"#;

fn hook(path: &str, name: &str, dir: &str, extra_env: &str) -> Value {
    js(&format!(
        r#"{{"path":"{path}","args":["sh","-c",{},"{name}","{dir}","two words"],
            "env":["HOOK_NAME={name}","PATH=/bin:/usr/bin","{extra_env}"]}}"#,
        to_json(&jstr(RECORD))
    ))
}

struct Seen {
    argv: Vec<String>,
    env: Vec<String>,
    mntns: String,
    state: Value,
    raw: String,
}

fn seen(dir: &Path, name: &str) -> Option<Seen> {
    let raw = fs::read_to_string(dir.join(format!("{name}.out"))).ok()?;
    let field = |k: &str| -> String {
        raw.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    let split = |s: String| -> Vec<String> {
        s.trim_end_matches('#')
            .split('#')
            .map(str::to_string)
            .collect()
    };
    let state = json::from_str(&field("state")).unwrap_or(Value::Null);
    Some(Seen {
        argv: split(field("argv")),
        env: split(field("env")),
        mntns: field("mntns"),
        state,
        raw,
    })
}

fn order(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_hook_runs_once_in_order_with_state() {
    let ctx = Ctx::new("hooks");
    let out = ctx.path("hookout");
    fs::create_dir(&out).unwrap();
    fs::create_dir(ctx.rootfs().join("hookout")).unwrap();
    let host_dir = out.to_str().unwrap().to_string();
    let mut c = ctx.config();
    c.mount("/hookout", "bind", &host_dir, &["rbind", "rw"])
        .set("annotations", js(r#"{"org.skiff.test":"hooks","b":"2"}"#))
        .sh("echo process >> /hookout/order; exec sleep 1000");
    for kind in ALL {
        // startContainer runs after pivot_root: its busybox and its output
        // dir are the rootfs's. createContainer runs before it, in the
        // container's mount namespace, with the host's paths.
        let dir = if *kind == "startContainer" {
            "/hookout"
        } else {
            host_dir.as_str()
        };
        c.push(
            &format!("hooks.{kind}"),
            hook("/bin/busybox", kind, dir, "EXTRA=x y"),
        );
    }
    ctx.write_config(&c);
    let id = ctx.id();
    let host_mnt = fs::read_link("/proc/self/ns/mnt").unwrap();
    let host_mnt = host_mnt.to_str().unwrap();

    // runc 1.1.5 runs poststart hooks during `create` (fixed in runc
    // 1.2); the order is checked without them there.
    let order = |dir: &Path| -> Vec<String> {
        let mut o = order(dir);
        if !is_skiff() {
            o.retain(|h| h != "poststart");
        }
        o
    };
    ctx.create(&id).ok();
    let pid = ctx.pid_of(&id);
    let init_mnt = fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    let init_mnt = init_mnt.to_str().unwrap().to_string();
    assert_ne!(init_mnt, host_mnt);
    assert_eq!(
        order(&out),
        ["prestart", "createRuntime", "createContainer"],
        "after create"
    );

    ctx.start(&id).ok();
    let n = if is_skiff() { 6 } else { 5 };
    assert!(
        wait_until(T, || order(&out).len() >= n),
        "hooks after start: {:?}",
        order(&out)
    );
    let o = order(&out);
    assert_eq!(
        o[..4],
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer"
        ],
        "{o:?}"
    );
    // poststart runs after the process started; its own first line may
    // come a moment later than poststart's.
    let mut tail = o[4..].to_vec();
    tail.sort();
    if is_skiff() {
        assert_eq!(tail, ["poststart", "process"], "{o:?}");
    } else {
        assert_eq!(tail, ["process"], "{o:?}");
    }
    assert!(seen(&out, "poststop").is_none());

    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    ctx.delete(&id).ok();
    assert_eq!(order(&out).last().map(String::as_str), Some("poststop"));
    assert_eq!(
        order(&out).len(),
        n + 1,
        "each hook once: {:?}",
        order(&out)
    );

    let bundle = fs::canonicalize(&ctx.bundle).unwrap();
    for kind in ALL {
        let s = seen(&out, kind).unwrap_or_else(|| panic!("{kind} left no output"));
        let dir = if *kind == "startContainer" {
            "/hookout"
        } else {
            host_dir.as_str()
        };
        // argv: args exactly (args[0] is argv[0]).
        assert_eq!(s.argv[0], "sh", "{kind}: argv {:?}", s.argv);
        // (the script holds the separator too: look from both ends)
        assert_eq!(s.argv[1], "-c", "{kind}: {:?}", s.argv);
        assert_eq!(
            s.argv[s.argv.len() - 3..],
            [kind, dir, "two words"],
            "{kind}: {:?}",
            s.argv
        );
        // env: exactly the hook's.
        let mut env = s.env.clone();
        env.sort();
        assert_eq!(
            env,
            [
                "EXTRA=x y".to_string(),
                format!("HOOK_NAME={kind}"),
                "PATH=/bin:/usr/bin".to_string()
            ],
            "{kind}: env"
        );
        // Namespace.
        let want_ns = if in_container(kind) {
            init_mnt.as_str()
        } else {
            host_mnt
        };
        assert_eq!(s.mntns, want_ns, "{kind}: mount namespace");
        // State on stdin.
        let st = &s.state;
        assert_eq!(
            as_str(jget(st, "id")),
            Some(id.as_str()),
            "{kind}: {}",
            s.raw
        );
        assert_eq!(
            as_str(jget(st, "bundle")).map(PathBuf::from),
            Some(bundle.clone()),
            "{kind}: {}",
            s.raw
        );
        assert!(
            as_str(jget(st, "ociVersion")).is_some(),
            "{kind}: {}",
            s.raw
        );
        let ann = match jget(st, "annotations") {
            Some(Value::Object(o)) => o
                .iter()
                .map(|(k, v)| format!("{k}={}", as_str(Some(v)).unwrap_or("?")))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert_eq!(ann, ["b=2", "org.skiff.test=hooks"], "{kind}: {}", s.raw);
        let want_status = match *kind {
            // runc 1.1.5 says "creating" until startContainer; the spec
            // (and crun) "created".
            "prestart" | "createRuntime" | "createContainer" if !is_skiff() => "creating",
            "prestart" | "createRuntime" | "createContainer" | "startContainer" => "created",
            // (runc 1.1.5 runs it at create: "created")
            "poststart" if !is_skiff() => "created",
            "poststart" => "running",
            _ => "stopped",
        };
        assert_eq!(
            as_str(jget(st, "status")),
            Some(want_status),
            "{kind}: {}",
            s.raw
        );
        let want_pid = match *kind {
            "poststop" => None,
            // runc 1.1.5 gives the pid inside the container's namespace
            // to the hooks it runs there; the spec wants the host's.
            _ if in_container(kind) && !is_skiff() => Some(1),
            _ => Some(pid as u64),
        };
        let got_pid = as_u64(jget(st, "pid")).filter(|p| *p != 0);
        assert_eq!(got_pid, want_pid, "{kind}: pid in {}", s.raw);
    }
    ctx.assert_gone(&id);
}

fn failing_hook(script: &str, timeout: Option<u64>) -> Value {
    let t = timeout
        .map(|t| format!(r#","timeout":{t}"#))
        .unwrap_or_default();
    js(&format!(
        r#"{{"path":"/bin/busybox","args":["sh","-c",{}]{t}}}"#,
        to_json(&jstr(script))
    ))
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    let ctx = Ctx::new("hookfail");
    let mut c = ctx.config();
    c.push(
        "hooks.createRuntime",
        failing_hook("echo hook-broke >&2; exit 3", None),
    )
    .sh("exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
    let out = ctx.create(&id);
    out.fails();
    if is_skiff() {
        assert!(
            out.stderr.contains("createRuntime") && out.stderr.contains("hook-broke"),
            "the error names the hook and says why: {}",
            out.stderr
        );
    } else {
        assert!(out.stderr.contains("hook"), "{}", out.stderr);
    }
    ctx.assert_gone(&id);
    assert!(cgroups_named(&id).is_empty(), "cgroup removed");
}

#[test]
fn failing_create_container_hook_fails_create() {
    let ctx = Ctx::new("hookfailcc");
    let mut c = ctx.config();
    c.push("hooks.createContainer", failing_hook("exit 1", None))
        .sh("exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
    let out = ctx.create(&id);
    out.fails();
    if is_skiff() {
        assert!(out.stderr.contains("createContainer"), "{}", out.stderr);
    }
    ctx.assert_gone(&id);
}

#[test]
fn hook_timeout_kills_it_and_fails_create() {
    let ctx = Ctx::new("hooktimeout");
    let pidf = ctx.path("hook.pid");
    let mut c = ctx.config();
    c.push(
        "hooks.prestart",
        failing_hook(
            &format!("echo $$ > {}; exec sleep 30", pidf.display()),
            Some(1),
        ),
    )
    .sh("exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
    let t0 = Instant::now();
    let out = ctx.create(&id);
    let took = t0.elapsed();
    out.fails();
    assert!(
        took < Duration::from_secs(10),
        "create gave up at the timeout: {took:?}"
    );
    if is_skiff() {
        assert!(
            out.stderr.contains("prestart") && out.stderr.contains("timed out"),
            "{}",
            out.stderr
        );
    } else {
        assert!(out.stderr.contains("timeout"), "{}", out.stderr);
    }
    let hook_pid: i32 = fs::read_to_string(&pidf)
        .expect("the hook ran")
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || proc_state_of(hook_pid)
            .is_none_or(|s| s == 'Z')
            || !proc_cmdline(hook_pid).starts_with("sleep 30")),
        "the hook {hook_pid} was killed"
    );
    ctx.assert_gone(&id);
}

#[test]
fn failing_poststart_and_poststop_only_warn() {
    let ctx = Ctx::new("hookwarn");
    let mut c = ctx.config();
    c.push(
        "hooks.poststart",
        failing_hook("echo poststart-broke >&2; exit 2", None),
    )
    .push(
        "hooks.poststop",
        failing_hook("echo poststop-broke >&2; exit 2", None),
    )
    .sh("exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
    let out = ctx.create(&id);
    if !is_skiff() {
        // runc 1.1.5 runs poststart during `create` and fails it (and then
        // does not run poststop).
        out.fails();
        ctx.assert_gone(&id);
        return;
    }
    out.ok();
    let out = ctx.start(&id);
    if is_skiff() {
        out.ok();
        assert!(
            out.stderr.contains("poststart"),
            "a warning: {}",
            out.stderr
        );
        assert_eq!(ctx.status(&id), "running");
        ctx.kill(&id, "KILL").ok();
    } else {
        // runc 1.1.5 fails `start` and kills the container.
        assert!(!out.status.success(), "{}", out.stderr);
    }
    ctx.wait_status(&id, "stopped", T);
    let out = ctx.delete(&id);
    out.ok();
    if is_skiff() {
        assert!(out.stderr.contains("poststop"), "a warning: {}", out.stderr);
    }
    ctx.assert_gone(&id);
}

/// `runc features`: the runtime-spec's features.json shape. runc 1.1.5
/// has it too (as an experimental command); the same keys are checked for
/// both.
#[test]
fn features_shape() {
    let ctx = Ctx::new("features");
    let out = ctx.rt_noroot(&["features"]);
    out.ok();
    let v: Value = json::from_str(&out.stdout).expect("features JSON");
    for k in ["ociVersionMin", "ociVersionMax"] {
        let s = as_str(jget(&v, k)).unwrap_or_else(|| panic!("{k}: {}", out.stdout));
        assert!(s.starts_with("1."), "{k} = {s}");
    }
    let list = |path: &str| -> Vec<String> {
        as_array(jget(&v, path))
            .unwrap_or_else(|| panic!("{path} is an array: {}", out.stdout))
            .iter()
            .filter_map(|x| as_str(Some(x)).map(str::to_string))
            .collect()
    };
    let hooks = list("hooks");
    for h in ALL {
        assert!(hooks.iter().any(|x| x == h), "hooks has {h}: {hooks:?}");
    }
    let opts = list("mountOptions");
    for o in [
        "ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "rprivate",
    ] {
        assert!(opts.iter().any(|x| x == o), "mountOptions has {o}");
    }
    let nss = list("linux.namespaces");
    for n in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(nss.iter().any(|x| x == n), "linux.namespaces has {n}");
    }
    let caps = list("linux.capabilities");
    for c in ["CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_NET_ADMIN", "CAP_KILL"] {
        assert!(caps.iter().any(|x| x == c), "linux.capabilities has {c}");
    }
    assert!(
        matches!(jget(&v, "linux.cgroup.v1"), Some(Value::Bool(_))),
        "linux.cgroup.v1: {}",
        out.stdout
    );
    assert!(
        matches!(jget(&v, "linux.cgroup.v2"), Some(Value::Bool(_))),
        "linux.cgroup.v2"
    );
    assert!(
        matches!(jget(&v, "linux.seccomp.enabled"), Some(Value::Bool(_))),
        "linux.seccomp.enabled"
    );
    assert!(
        matches!(jget(&v, "annotations"), Some(Value::Object(_))),
        "annotations"
    );
    if is_skiff() {
        // skiff alone: its keys are a superset of runc's where runc has
        // the command.
        let runc = Path::new("/usr/sbin/runc");
        if runc.exists() {
            let theirs = ctx.rt_at(runc, None, &["features"]);
            if theirs.status.success() {
                let t: Value = json::from_str(&theirs.stdout).expect("runc features JSON");
                let mut paths = vec!["", "linux", "linux.cgroup"];
                // Without seccomp support (yet), skiff says only
                // "enabled": false.
                if matches!(jget(&v, "linux.seccomp.enabled"), Some(Value::Bool(true))) {
                    paths.push("linux.seccomp");
                } else {
                    eprintln!("seccomp is disabled in this build: linux.seccomp not compared");
                }
                for path in paths {
                    let keys = |x: &Value| -> Vec<String> {
                        match jget(x, path) {
                            Some(Value::Object(o)) => o.keys().cloned().collect(),
                            _ => Vec::new(),
                        }
                    };
                    let (ours, theirs_k) = (keys(&v), keys(&t));
                    let missing: Vec<&String> =
                        theirs_k.iter().filter(|k| !ours.contains(k)).collect();
                    assert!(
                        missing.is_empty(),
                        "features.{path}: skiff lacks runc's {missing:?}"
                    );
                }
            }
        }
    }
}

/// A foreground `run` runs poststop when it deletes the container.
#[test]
fn run_runs_poststop() {
    let ctx = Ctx::new("hookrun");
    let out_dir = ctx.path("hookout");
    fs::create_dir(&out_dir).unwrap();
    let host_dir = out_dir.to_str().unwrap().to_string();
    let mut c = ctx.config();
    for kind in ["createRuntime", "poststart", "poststop"] {
        c.push(
            &format!("hooks.{kind}"),
            hook("/bin/busybox", kind, &host_dir, "EXTRA=1"),
        );
    }
    c.sh("echo ran");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "ran\n");
    let mut o = order(&out_dir);
    if !is_skiff() {
        // runc 1.1.5 runs poststart at create, before the process.
        o.retain(|h| h != "poststart");
    } else {
        assert!(o.contains(&"poststart".to_string()), "{o:?}");
        o.retain(|h| h != "poststart");
    }
    assert_eq!(o, ["createRuntime", "poststop"]);
    let s = seen(&out_dir, "poststop").unwrap();
    assert_eq!(
        as_str(jget(&s.state, "status")),
        Some("stopped"),
        "{}",
        s.raw
    );
}

/// A hook whose program does not exist fails create, naming the hook.
#[test]
fn missing_hook_program_fails_create() {
    let ctx = Ctx::new("hookmissing");
    let mut c = ctx.config();
    c.push(
        "hooks.createRuntime",
        js(r#"{"path":"/no/such/hook","args":["hook"]}"#),
    )
    .sh("exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
    let out = ctx.create(&id);
    out.fails();
    assert!(out.stderr.contains("/no/such/hook"), "{}", out.stderr);
    ctx.assert_gone(&id);
}
