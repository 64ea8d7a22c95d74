//! skiff's `ctr` (it speaks gRPC) drives a private Debian containerd 1.6
//! (tests/common/containerd.rs) through the walkthrough, its outputs
//! compared with Debian's ctr against the same containerd: version,
//! images ls/tag/rm, run --rm (output and exit code), run -d + tasks
//! exec + tasks ps + tasks kill, containers rm; and a pull, which needs
//! skiff's daemon-side pull service, fails with a clear error.

mod common;
#[path = "common/containerd.rs"]
mod containerd;

use common::*;
use containerd::*;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

const RUNC: &str = "io.containerd.runc.v2";

/// skiff's ctr against `ctd` in its namespace.
fn sctr(ctd: &Containerd, args: &[&str]) -> Output {
    Command::new(skiff_binary())
        .arg0("ctr")
        .args(["-a", &ctd.sock, "-n", &ctd.ns, "--timeout", "60s"])
        .args(args)
        .env_remove("CONTAINERD_ADDRESS")
        .env_remove("CONTAINERD_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .expect("run skiff's ctr")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn sctr_ok(ctd: &Containerd, args: &[&str]) -> String {
    let o = sctr(ctd, args);
    assert!(
        o.status.success(),
        "skiff ctr {args:?}: {}\nstdout {}stderr {}\ncontainerd log: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr),
        ctd.log()
    );
    text(&o.stdout)
}

#[test]
fn skiff_ctr_drives_debian_containerd() {
    if !have_containerd() && skip("containerd and ctr (package containerd) are not installed") {
        return;
    }
    let ctx = Ctx::new("ctr-vs-containerd");
    let ctd = Containerd::start(&ctx);
    // Imported (and unpacked) by Debian's ctr: skiff's ctr cannot pull
    // from containerd (below).
    ctd.import_busybox();

    let v = sctr_ok(&ctd, &["version"]);
    let server = v.split("Server:").nth(1).unwrap_or_default();
    assert!(server.contains("1.6"), "{v}");

    // Image listing as Debian's ctr prints it.
    assert_eq!(
        sctr_ok(&ctd, &["images", "ls"]),
        ctd.ctr(&["images", "ls"]).stdout
    );
    sctr_ok(&ctd, &["images", "tag", IMAGE, "example.test/bb:two"]);
    let q = ctd.ctr(&["images", "ls", "-q"]).stdout;
    assert!(q.lines().any(|l| l == "example.test/bb:two"), "{q}");
    sctr_ok(&ctd, &["images", "rm", "example.test/bb:two"]);
    assert_eq!(sctr_ok(&ctd, &["images", "ls", "-q"]), format!("{IMAGE}\n"));

    // run --rm: the client prepares the snapshot (containerd does not),
    // output and exit code as with Debian's ctr.
    let script = "echo out-$0; exit 7";
    ctd.track("srm");
    let mine = sctr(
        &ctd,
        &[
            "run",
            "--rm",
            "--runtime",
            RUNC,
            IMAGE,
            "srm",
            "sh",
            "-c",
            script,
        ],
    );
    ctd.track("drm");
    let theirs = ctd.try_ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNC,
        IMAGE,
        "drm",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(
        mine.status.code(),
        Some(7),
        "{}\n{}",
        text(&mine.stderr),
        ctd.log()
    );
    assert_eq!(theirs.code(), Some(7), "{}", theirs.describe());
    assert_eq!(text(&mine.stdout), theirs.stdout);
    assert_eq!(sctr_ok(&ctd, &["containers", "ls", "-q"]), "");
    assert_eq!(
        ctd.ctr(&["snapshots", "--snapshotter", "overlayfs", "ls"])
            .stdout
            .lines()
            .count(),
        2,
        "the image's layer and nothing else"
    );

    // run -d, exec, ps, kill, rm.
    ctd.track("bg");
    sctr_ok(
        &ctd,
        &["run", "-d", "--runtime", RUNC, IMAGE, "bg", "sleep", "300"],
    );
    assert!(ctd.wait_task_status("bg", "RUNNING") > 0);
    let ex = sctr(
        &ctd,
        &[
            "tasks",
            "exec",
            "--exec-id",
            "e1",
            "bg",
            "sh",
            "-c",
            "echo in-$0; exit 5",
        ],
    );
    assert_eq!(ex.status.code(), Some(5), "{}", text(&ex.stderr));
    assert_eq!(text(&ex.stdout), "in-sh\n");
    let (pid, _) = ctd.task_status("bg").expect("bg runs");
    let ps = sctr_ok(&ctd, &["tasks", "ps", "bg"]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{ps}"
    );
    assert_eq!(ps, ctd.ctr(&["tasks", "ps", "bg"]).stdout);
    sctr_ok(&ctd, &["tasks", "kill", "--signal", "SIGKILL", "bg"]);
    ctd.wait_task_status("bg", "STOPPED");
    sctr_ok(&ctd, &["tasks", "rm", "bg"]);
    sctr_ok(&ctd, &["containers", "rm", "bg"]);
    assert_eq!(ctd.container_ids(), Vec::<String>::new());
    ctd.assert_gone("bg");

    // No pull service in containerd: a clear error, nothing left.
    let o = sctr(
        &ctd,
        &["images", "pull", "--plain-http", "127.0.0.1:1/nothing:v1"],
    );
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("no pull service") && err.contains("ctr images import"),
        "{err}"
    );
}
