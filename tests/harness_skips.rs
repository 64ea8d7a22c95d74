//! The harness's skip helpers: a missing prerequisite that `make test`
//! installs fails the test under CI=true and is a printed skip elsewhere;
//! a host condition is a printed skip everywhere.

mod common;

use std::process::Command;

/// Run one probe of this very test binary with `CI` set or not.
fn probe(name: &str, ci: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--ignored", "--nocapture"])
        .env("SKIFF_SKIP_PROBE", "1")
        .env_remove("CI");
    if let Some(v) = ci {
        cmd.env("CI", v);
    }
    cmd.output().unwrap()
}

#[test]
#[ignore = "run by missing_prerequisites_fail_under_ci"]
fn probe_require() {
    if std::env::var_os("SKIFF_SKIP_PROBE").is_none() {
        return;
    }
    if !common::require(false, "a prerequisite that is never there") {
        return;
    }
    unreachable!("require(false) returned true");
}

#[test]
#[ignore = "run by missing_prerequisites_fail_under_ci"]
fn probe_applies() {
    if std::env::var_os("SKIFF_SKIP_PROBE").is_none() {
        return;
    }
    if !common::applies(false, "a host condition that never holds") {
        return;
    }
    unreachable!("applies(false) returned true");
}

#[test]
fn missing_prerequisites_fail_under_ci() {
    let ci = probe("probe_require", Some("true"));
    let err =
        String::from_utf8_lossy(&ci.stdout).into_owned() + &String::from_utf8_lossy(&ci.stderr);
    assert!(
        !ci.status.success(),
        "CI=true: a missing prerequisite fails: {err}"
    );
    assert!(err.contains("missing prerequisite"), "{err}");
    assert!(err.contains("a prerequisite that is never there"), "{err}");
    for env in [None, Some("false")] {
        let out = probe("probe_require", env);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "CI={env:?}: a skip: {err}");
        assert!(err.contains("skipped at"), "the skip says why: {err}");
    }
    // A host condition is a skip in CI too.
    let out = probe("probe_applies", Some("true"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("a host condition that never holds"), "{err}");
}
