//! Bad input: every case exits 1 with a message on stderr (one line for
//! skiff) and leaves nothing behind — no state dir, no mount, no process
//! (the `Ctx` drop check verifies the last two for every test).
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test runc_errors`.

mod common;

use common::*;
use std::fs;
use std::time::Duration;

/// `create` and `run` of the current bundle under fresh ids both fail
/// cleanly; returns create's stderr.
#[track_caller]
fn create_and_run_fail(ctx: &Ctx, bundle: &str) -> String {
    let id = ctx.id();
    let out = ctx.rt(&["create", "--bundle", bundle, &id]);
    out.fails();
    assert!(
        !ctx.root.join(&id).exists(),
        "state dir left after a failed create"
    );
    ctx.assert_gone(&id);
    let id2 = ctx.id();
    ctx.rt(&["run", "--bundle", bundle, &id2]).fails();
    assert!(
        !ctx.root.join(&id2).exists(),
        "state dir left after a failed run"
    );
    out.stderr
}

#[test]
fn missing_bundle_dir() {
    let ctx = Ctx::new("nobundle");
    let missing = ctx.path("no-such-bundle");
    create_and_run_fail(&ctx, missing.to_str().unwrap());
}

#[test]
fn missing_config_json() {
    let ctx = Ctx::new("noconfig");
    fs::remove_file(ctx.bundle.join("config.json")).unwrap();
    let err = create_and_run_fail(&ctx, &ctx.bundle_str());
    if is_skiff() {
        assert!(err.contains("config.json"), "names the file: {err}");
    }
}

#[test]
fn invalid_json() {
    let ctx = Ctx::new("badjson");
    fs::write(ctx.bundle.join("config.json"), "{\"ociVersion\": ").unwrap();
    create_and_run_fail(&ctx, &ctx.bundle_str());
    fs::write(ctx.bundle.join("config.json"), "not json at all").unwrap();
    create_and_run_fail(&ctx, &ctx.bundle_str());
}

#[test]
fn wrongly_typed_field_is_named() {
    let ctx = Ctx::new("badtype");
    let mut c = ctx.config();
    c.set("process.user.uid", jstr("0"));
    ctx.write_config(&c);
    let err = create_and_run_fail(&ctx, &ctx.bundle_str());
    // runc: `json: cannot unmarshal string into Go struct field
    // User.process.user.uid of type uint32`; skiff names the field its own way.
    if is_skiff() {
        assert!(
            err.contains("process.user.uid"),
            "error names the field: {err}"
        );
    } else {
        assert!(err.contains("uid"), "{err}");
    }
}

#[test]
fn missing_rootfs() {
    let ctx = Ctx::new("norootfs");
    let mut c = ctx.config();
    c.set("root.path", jstr("no-such-rootfs"));
    ctx.write_config(&c);
    create_and_run_fail(&ctx, &ctx.bundle_str());
}

#[test]
fn executable_not_found() {
    let ctx = Ctx::new("noexec");
    let mut c = ctx.config();
    c.args(&["/no/such/program"]);
    ctx.write_config(&c);
    create_and_run_fail(&ctx, &ctx.bundle_str());
}

#[test]
fn unknown_namespace_type() {
    let ctx = Ctx::new("badns");
    let mut c = ctx.config();
    c.add_namespace("bogus");
    ctx.write_config(&c);
    create_and_run_fail(&ctx, &ctx.bundle_str());
}

#[test]
fn negative_oom_score_adj_without_cap_sys_resource() {
    // Root here lacks CAP_SYS_RESOURCE, so lowering oom_score_adj fails
    // (EACCES); the runtime must report it and clean up.
    let ctx = Ctx::new("oomneg");
    let mut c = ctx.config();
    c.set(
        "process.oomScoreAdj",
        miniserde::json::Value::Number(miniserde::json::Number::I64(-500)),
    )
    .args(&["true"]);
    ctx.write_config(&c);
    let caps = fs::read_to_string("/proc/self/status").unwrap();
    let eff = caps.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    let eff = u64::from_str_radix(eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    if !applies(
        eff & (1 << 24) == 0,
        "this host grants CAP_SYS_RESOURCE, so -500 would succeed",
    ) {
        return;
    }
    create_and_run_fail(&ctx, &ctx.bundle_str());
}

#[test]
fn invalid_container_ids() {
    let ctx = Ctx::new("badid");
    let b = ctx.bundle_str();
    for id in ["../escape", "a/b", ""] {
        ctx.rt(&["create", "--bundle", &b, id]).fails();
    }
    assert!(!ctx.dir.join("escape").exists());
    assert!(fs::read_dir(&ctx.root)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true));
}

#[test]
fn duplicate_id_on_create() {
    let ctx = Ctx::new("dupid");
    let mut c = ctx.config();
    c.sh("exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    let pid = ctx.pid_of(&id);
    ctx.create(&id).fails();
    let b = ctx.bundle_str();
    ctx.rt(&["run", "--bundle", &b, &id]).fails();
    // The first container is untouched.
    assert_eq!(ctx.status(&id), "created");
    assert_eq!(ctx.pid_of(&id), pid);
    let out = ctx.rt(&["list", "-q"]);
    assert_eq!(out.stdout.trim(), id);
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

#[test]
fn unknown_id() {
    let ctx = Ctx::new("unknownid");
    let id = ctx.id();
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
        vec!["ps", &id],
    ] {
        ctx.rt(&args).fails();
    }
    assert!(!ctx.root.join(&id).exists());
}

#[test]
fn delete_force_unknown_id() {
    // RUNC BEHAVIOUR: `delete --force` of an unknown id succeeds quietly in
    // runc 1.1.5 (containerd relies on that being idempotent).
    let ctx = Ctx::new("delforceunknown");
    let id = ctx.id();
    let out = ctx.rt(&["delete", "--force", &id]);
    out.ok();
}

#[test]
fn bad_signal() {
    let ctx = Ctx::new("badsig");
    let mut c = ctx.config();
    c.sh("exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    for sig in ["FOO", "SIGFOO", "999", "-9", "KILLX"] {
        ctx.kill(&id, sig).fails();
    }
    assert_eq!(ctx.status(&id), "running", "a bad signal does nothing");
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

#[test]
fn wrong_state_transitions() {
    let ctx = Ctx::new("transitions");
    let mut c = ctx.config();
    c.sh("exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.start(&id).ok();
    ctx.start(&id).fails(); // already running
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", Duration::from_secs(10));
    ctx.start(&id).fails(); // stopped
    ctx.kill(&id, "KILL").fails(); // not running
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn missing_arguments() {
    let ctx = Ctx::new("missingargs");
    for args in [
        vec!["state"],
        vec!["start"],
        vec!["kill"],
        vec!["delete"],
        vec!["create"],
    ] {
        // runc: exit 1, usage on stdout, one error line on stderr.
        ctx.rt(&args).fails();
    }
    // An unknown command is refused too (runc exits 3 for it).
    let out = ctx.rt(&["no-such-command"]);
    assert!(
        !out.status.success() && !out.stderr.trim().is_empty(),
        "unknown command: {}",
        out.stderr
    );
}

#[test]
fn concurrent_creates_one_wins() {
    let ctx = Ctx::new("race");
    let mut c = ctx.config();
    c.sh("exec sleep 1000");
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    for _ in 0..5 {
        let id = ctx.id();
        let first = ctx.spawn(&["create", "--bundle", &b, &id]);
        let second = ctx.spawn(&["create", "--bundle", &b, &id]);
        let (o1, o2) = (
            first.wait(Duration::from_secs(30)),
            second.wait(Duration::from_secs(30)),
        );
        let wins = [&o1, &o2].iter().filter(|o| o.status.success()).count();
        for o in [&o1, &o2] {
            if !o.status.success() {
                o.fails();
            }
        }
        if is_skiff() {
            assert_eq!(
                wins, 1,
                "exactly one create wins:\n{}\n{}",
                o1.stderr, o2.stderr
            );
            ctx.track_pid(ctx.pid_of(&id));
            assert_eq!(ctx.status(&id), "created");
            let out = ctx.rt(&["list", "-q"]);
            assert_eq!(out.stdout.trim(), id, "one container");
            ctx.rt(&["delete", "--force", &id]).ok();
        } else {
            // RUNC DIFFERS: runc 1.1.5 often fails both creates ("file
            // exists" / "unable to store init state") and sometimes reports
            // success for a container whose state dir the loser removed.
            // Only "no more than one wins, and nothing is left after a
            // forced delete" holds for it.
            // It can also leak the winner's `runc init` and its cgroups
            // (the loser removed the state dir): cleared here, reported.
            assert!(wins <= 1, "two creates of one id both won");
            ctx.rt(&["delete", "--force", &id]).ok();
            let leaked = ctx.clear_known_leaks();
            if !leaked.is_empty() {
                eprintln!("known runtime bug, create race leaked: {leaked:?}");
            }
        }
        ctx.assert_gone(&id);
    }
}

#[test]
fn log_file_json() {
    let ctx = Ctx::new("logjson");
    let log = ctx.path("runc.log");
    let id = ctx.id();
    let root = ctx.root.to_str().unwrap().to_string();
    let out = ctx.rt_noroot(&[
        "--root",
        &root,
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        &id,
    ]);
    assert_eq!(out.code(), Some(1));
    let text = fs::read_to_string(&log).expect("log file written");
    let last = text.lines().last().expect("a log line");
    let v: miniserde::json::Value = miniserde::json::from_str(last).expect("log line is JSON");
    assert_eq!(as_str(jget(&v, "level")), Some("error"), "{last}");
    assert!(
        as_str(jget(&v, "msg")).is_some_and(|m| !m.is_empty()),
        "{last}"
    );
    assert!(as_str(jget(&v, "time")).is_some(), "{last}");
}

#[test]
fn unknown_mount_type() {
    // A mount that cannot be made fails the create, after mounts may
    // already have been made: nothing may stay behind.
    let ctx = Ctx::new("badmount");
    let mut c = ctx.config();
    c.mount("/weird", "nosuchfs", "none", &[]).args(&["true"]);
    ctx.write_config(&c);
    create_and_run_fail(&ctx, &ctx.bundle_str());
}

#[test]
fn bind_mount_of_missing_source() {
    let ctx = Ctx::new("badbind");
    let missing = ctx.path("no-such-source");
    let mut c = ctx.config();
    c.mount("/data", "bind", missing.to_str().unwrap(), &["rbind"])
        .args(&["true"]);
    ctx.write_config(&c);
    create_and_run_fail(&ctx, &ctx.bundle_str());
}
