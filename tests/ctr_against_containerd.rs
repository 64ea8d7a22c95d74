//! skiff's `ctr` (it speaks gRPC) drives a private Debian containerd 1.6
//! (tests/common/containerd.rs) through the walkthrough, its outputs
//! compared with Debian's ctr against the same containerd: version,
//! images ls/tag/rm, run --rm (output and exit code), run -d + tasks
//! exec + tasks ps + tasks kill, containers rm. Then a pull from a local
//! docker-registry, which skiff's ctr does client-side against containerd
//! (no skiff Pull service there): content, labels and snapshots as
//! Debian's ctr leaves them; and pulls that fail leave nothing.

mod common;
#[path = "common/containerd.rs"]
mod containerd;
#[path = "fetch_support/mod.rs"]
// The registry fixtures load tests/common/require.rs a second time (harmless).
#[allow(unused_imports, clippy::duplicate_mod)]
mod support;

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
    // Imported (and unpacked) by Debian's ctr; skiff's ctr pulls in the
    // next test.
    ctd.import_busybox();

    let v = sctr_ok(&ctd, &["version"]);
    let server = v.split("Server:").nth(1).unwrap_or_default();
    assert!(server.contains("1.6"), "{v}");
    // The UUID line as Debian's ctr prints it (containerd's introspection).
    let uuid = |v: &str| {
        v.lines()
            .find(|l| l.starts_with("  UUID: "))
            .map(str::to_string)
    };
    assert!(uuid(&v).is_some_and(|l| l.len() == 8 + 36), "{v}");
    assert_eq!(uuid(&v), uuid(&ctd.ctr(&["version"]).stdout));

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

    // A registry that is not there: a clear error naming the reference.
    let o = sctr(
        &ctd,
        &["images", "pull", "--plain-http", "127.0.0.1:1/nothing:v1"],
    );
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("127.0.0.1:1/nothing:v1"), "{err}");
    assert_eq!(sctr_ok(&ctd, &["images", "ls", "-q"]), format!("{IMAGE}\n"));
}

/// A busybox image for `arch` (the binary is the host's: only the amd64
/// one is run); `extra` adds a file, making a layer of its own.
fn busybox_spec(arch: &str, extra: Option<&str>) -> support::ImageSpec {
    let mut entries = support::busybox_entries();
    if let Some(name) = extra {
        entries.push(support::file(name, name));
    }
    let mut spec = support::ImageSpec::new(vec![support::Layer {
        entries,
        comp: support::Comp::Gzip,
    }]);
    spec.arch = arch.into();
    spec
}

/// `ctr content ls` as (digest, labels) lines, sorted: the age column
/// differs between two pulls, and Go lists a map's labels in any order.
fn content_labels(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .skip(1)
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let mut labels: Vec<&str> = w.last().unwrap_or(&"").split(',').collect();
            labels.sort();
            format!("{} {}", w[0], labels.join(","))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn skiff_ctr_pulls_into_debian_containerd() {
    if !have_containerd() && skip("containerd and ctr (package containerd) are not installed") {
        return;
    }
    let Some(reg) = support::Registry::start(support::RegistryConfig::default()) else {
        return;
    };
    let ctx = Ctx::new("ctr-pull-containerd");
    let ctd = Containerd::start(&ctx);
    // A two-platform index: only the host's manifest is fetched.
    let layout = ctx.path("layout");
    support::write_layout(
        &layout,
        "v1",
        &[busybox_spec("amd64", None), busybox_spec("arm64", None)],
    );
    let image = format!("{}/bb:v1", reg.host());
    support::push(&layout, "v1", &image, &["--all"]);

    let out = sctr_ok(&ctd, &["images", "pull", "--plain-http", &image]);
    assert!(
        out.contains("unpacking linux/amd64 sha256:") && out.contains("done: "),
        "{out}"
    );
    assert_eq!(
        ctd.ctr(&["images", "ls", "-q"]).stdout,
        format!("{image}\n")
    );
    assert_eq!(
        sctr_ok(&ctd, &["images", "ls"]),
        ctd.ctr(&["images", "ls"]).stdout
    );
    // No lease left behind, no extraction snapshot: one committed layer,
    // listed without naming the snapshotter (ctr's default, overlayfs).
    assert_eq!(ctd.ctr(&["leases", "ls", "-q"]).stdout, "");
    let snaps = sctr_ok(&ctd, &["snapshots", "ls"]);
    assert_eq!(
        snaps,
        ctd.ctr(&["snapshots", "--snapshotter", "overlayfs", "ls"])
            .stdout
    );
    let rows: Vec<&str> = snaps.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{snaps}");
    // $CONTAINERD_SNAPSHOTTER names it when --snapshotter does not: the
    // native snapshotter holds nothing here.
    let native = Command::new(skiff_binary())
        .arg0("ctr")
        .args(["-a", &ctd.sock, "-n", &ctd.ns, "snapshots", "ls"])
        .env("CONTAINERD_SNAPSHOTTER", "native")
        .output()
        .expect("run skiff's ctr");
    assert!(native.status.success(), "{}", text(&native.stderr));
    assert_eq!(text(&native.stdout).lines().count(), 1, "header only");
    assert!(rows[0].trim_end().ends_with("Committed"), "{snaps}");

    // The same blobs with the same labels as Debian's ctr pull leaves
    // (gc refs, distribution source, uncompressed, the snapshot ref).
    let other = format!("{}-debian", ctd.ns);
    let dctr = |args: &[&str]| {
        let o = Command::new("ctr")
            .args(["-a", &ctd.sock, "-n", &other])
            .args(args)
            .output()
            .expect("run ctr");
        assert!(o.status.success(), "ctr {args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    dctr(&["images", "pull", "--plain-http", &image]);
    let mine = content_labels(&ctd.ctr(&["content", "ls"]).stdout);
    assert_eq!(mine.len(), 4, "index, manifest, config, layer: {mine:?}");
    assert_eq!(mine, content_labels(&dctr(&["content", "ls"])));
    dctr(&["images", "rm", "--sync", &image]);

    // The pulled image runs.
    ctd.track("pulled");
    let o = sctr(
        &ctd,
        &[
            "run",
            "--rm",
            "--runtime",
            RUNC,
            &image,
            "pulled",
            "sh",
            "-c",
            "echo pulled-$0",
        ],
    );
    assert!(o.status.success(), "{}\n{}", text(&o.stderr), ctd.log());
    assert_eq!(text(&o.stdout), "pulled-sh\n");

    // A second pull finds everything there.
    let again = sctr_ok(&ctd, &["images", "pull", "--plain-http", &image]);
    assert!(again.contains("exists"), "{again}");

    // Failures: a tag the registry lacks, a layer that does not verify.
    let o = sctr(
        &ctd,
        &[
            "images",
            "pull",
            "--plain-http",
            &format!("{}/bb:nope", reg.host()),
        ],
    );
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("bb:nope"), "{err}");
    let broken_layout = ctx.path("broken");
    let (_, layers) =
        support::write_image(&broken_layout, &busybox_spec("amd64", Some("etc/broken")));
    support::write_layout(
        &broken_layout,
        "v1",
        &[busybox_spec("amd64", Some("etc/broken"))],
    );
    let broken = format!("{}/broken:v1", reg.host());
    support::push(&broken_layout, "v1", &broken, &[]);
    let blob = reg.blob_file(&layers[0]);
    let mut data = std::fs::read(&blob).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    std::fs::write(&blob, data).unwrap();
    let o = sctr(&ctd, &["images", "pull", "--plain-http", &broken]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains(&layers[0].to_string()), "{err}");
    assert_eq!(
        ctd.ctr(&["images", "ls", "-q"]).stdout,
        format!("{image}\n")
    );
    assert_eq!(ctd.ctr(&["leases", "ls", "-q"]).stdout, "");
    assert!(
        !ctd.ctr(&["content", "ls", "-q"])
            .stdout
            .contains(layers[0].hex()),
        "the broken layer stays out of the store"
    );

    // rm, and nothing is left.
    sctr_ok(&ctd, &["images", "rm", "--sync", &image]);
    assert_eq!(sctr_ok(&ctd, &["images", "ls", "-q"]), "");
    assert_eq!(ctd.ctr(&["content", "ls", "-q"]).stdout, "");
    assert_eq!(
        sctr_ok(&ctd, &["snapshots", "ls"]).lines().count(),
        1,
        "only the header"
    );
}
