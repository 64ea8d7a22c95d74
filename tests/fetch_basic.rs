//! skiff-fetch against a plain-HTTP registry on 127.0.0.1: pulls, rootfs,
//! bundles run with runc, layouts, platforms, media types, store commands,
//! corruption, resume, mirrors and errors.

#[path = "fetch_support/mod.rs"]
mod support;

use skiff::image::digest::Digest;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use support::*;

fn busybox_image() -> ImageSpec {
    ImageSpec::new(vec![Layer {
        entries: busybox_entries(),
        comp: Comp::Gzip,
    }])
}

/// Push one image built from `images` as `repo:tag`; returns its layer digests.
fn publish(
    reg: &Registry,
    work: &TempDir,
    repo: &str,
    tag: &str,
    images: &[ImageSpec],
    extra: &[&str],
) -> Vec<Digest> {
    let layout = work.join(&format!("src-{repo}-{tag}"));
    let layers = write_layout(&layout, tag, images);
    push(&layout, tag, &format!("{}/{repo}:{tag}", reg.host()), extra);
    layers
}

fn pull(work: &TempDir, extra: &[&str], r: &str) -> std::process::Output {
    let store = work.s("store");
    let mut args = vec!["pull", "--plain-http", "--quiet", "--store", &store];
    args.extend_from_slice(extra);
    args.push(r);
    fetch(&args)
}

#[test]
fn pull_single_layer_to_rootfs() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("basic");
    let mut img = busybox_image();
    img.layers[0].entries.extend([
        Entry::File {
            path: "srv/owned".into(),
            data: b"x".to_vec(),
            mode: 0o4750,
            uid: 1234,
            gid: 5678,
        },
        Entry::PaxOwned {
            path: "srv/big-ids".into(),
            uid: 3_000_000,
            gid: 4_000_000,
        },
        Entry::Fifo {
            path: "srv/fifo".into(),
        },
        Entry::Char {
            path: "srv/null".into(),
            major: 1,
            minor: 3,
        },
        symlink("srv/link", "../bin/busybox"),
        Entry::CapFile {
            path: "srv/capped".into(),
            data: b"c".to_vec(),
            cap: vec![1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        },
    ]);
    let layers = publish(&reg, &work, "bb", "v1", &[img], &["--preserve-digests"]);
    let r = format!("{}/bb:v1", reg.host());
    let o = ok(fetch(&[
        "pull",
        "--plain-http",
        "--store",
        &work.s("store"),
        "--rootfs",
        &work.s("rootfs"),
        &r,
    ]));
    assert!(
        stdout(&o).contains(&format!("{r}: sha256:")),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("downloaded"),
        "plain progress lines: {}",
        stderr(&o)
    );
    let root = work.join("rootfs");
    let bb = fs::metadata(root.join("bin/busybox")).unwrap();
    assert_eq!(bb.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::metadata(root.join("bin/sh")).unwrap().ino(),
        bb.ino(),
        "hardlinks share the inode"
    );
    let owned = fs::metadata(root.join("srv/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1234, 5678, 0o4750)
    );
    assert_eq!(owned.mtime(), 1_600_000_000);
    let big = fs::metadata(root.join("srv/big-ids")).unwrap();
    assert_eq!((big.uid(), big.gid()), (3_000_000, 4_000_000));
    assert!(fs::symlink_metadata(root.join("srv/fifo"))
        .unwrap()
        .file_type()
        .is_fifo_like());
    let null = fs::symlink_metadata(root.join("srv/null")).unwrap();
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(
        fs::read_link(root.join("srv/link")).unwrap().to_str(),
        Some("../bin/busybox")
    );
    let mut cap = [0u8; 64];
    let n = rustix::fs::getxattr(root.join("srv/capped"), "security.capability", &mut cap[..])
        .expect("security.capability set");
    assert_eq!(
        &cap[..n],
        &[1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    // The blobs are in the store, verified; nothing is left in ingest.
    for d in &layers {
        assert!(work
            .join(&format!("store/blobs/sha256/{}", d.hex()))
            .exists());
    }
    assert_eq!(fs::read_dir(work.join("store/ingest")).unwrap().count(), 0);

    // A second pull finds everything present; a non-empty target is refused.
    let o = ok(fetch(&[
        "pull",
        "--plain-http",
        "--store",
        &work.s("store"),
        &r,
    ]));
    assert!(stderr(&o).contains("already present"), "{}", stderr(&o));
    fails(
        pull(&work, &["--rootfs", &work.s("rootfs")], &r),
        "exists and is not empty",
    );

    // ls and rm.
    let o = ok(fetch(&["ls", "--store", &work.s("store")]));
    assert!(
        stdout(&o).contains(&r) && stdout(&o).contains("linux/amd64"),
        "{}",
        stdout(&o)
    );
    let o = ok(fetch(&["ls", "-q", "--store", &work.s("store")]));
    assert_eq!(stdout(&o).trim(), r);
    ok(fetch(&["rm", "--store", &work.s("store"), &r]));
    assert_eq!(
        stdout(&ok(fetch(&["ls", "-q", "--store", &work.s("store")]))).trim(),
        ""
    );
    assert_eq!(
        fs::read_dir(work.join("store/blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "rm collects the blobs"
    );
    fails(
        fetch(&["rm", "--store", &work.s("store"), &r]),
        "no such image",
    );
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

struct RuncContainer(Vec<String>, String);
impl Drop for RuncContainer {
    fn drop(&mut self) {
        let _ = Command::new(&self.0[0])
            .args(&self.0[1..])
            .args(["delete", "-f", &self.1])
            .output();
    }
}

/// The runtimes to run bundles with: Debian's runc, and skiff's own runc
/// applet once it answers `--version`.
fn runtimes() -> Vec<Vec<String>> {
    let mut v = vec![vec!["runc".to_string()]];
    let skiff = skiff_bin().to_string_lossy().into_owned();
    if Command::new(&skiff)
        .args(["runc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        v.push(vec![skiff, "runc".into()]);
    }
    v
}

/// Run the bundle with every runtime; each must print the same.
fn runc_run(bundle: &std::path::Path, id: &str) -> String {
    let mut outputs = Vec::new();
    for rt in runtimes() {
        let _guard = RuncContainer(rt.clone(), id.to_string());
        let o = Command::new(&rt[0])
            .args(&rt[1..])
            .args(["run", "-b"])
            .arg(bundle)
            .arg(id)
            .output()
            .expect("runc");
        assert!(
            o.status.success(),
            "{rt:?} run failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        outputs.push((rt, String::from_utf8_lossy(&o.stdout).into_owned()));
    }
    for (rt, out) in &outputs[1..] {
        assert_eq!(out, &outputs[0].1, "{rt:?} differs from runc");
    }
    outputs.remove(0).1
}

#[test]
fn bundle_runs_with_runc() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("bundle");
    let mut img = busybox_image();
    img.entrypoint = vec!["/bin/echo".into(), "entry".into()];
    img.cmd = vec!["from-cmd".into()];
    img.env.push("GREETING=hello".into());
    img.workdir = "/tmp".into();
    img.user = "www".into();
    publish(&reg, &work, "bb", "run", &[img], &[]);
    let r = format!("{}/bb:run", reg.host());
    ok(pull(&work, &["--bundle", &work.s("b1")], &r));
    let cfg = read(&work.join("b1/config.json"));
    assert!(cfg.contains("\"terminal\": false"), "{cfg}");
    assert!(cfg.contains("\"GREETING=hello\""));
    assert!(cfg.contains("\"cwd\": \"/tmp\""));
    assert!(
        cfg.contains("\"uid\": 33") && cfg.contains("\"gid\": 34"),
        "{cfg}"
    );
    let id = format!("skiff-fetch-{}-1", std::process::id());
    assert_eq!(runc_run(&work.join("b1"), &id).trim(), "entry from-cmd");

    // Arguments after -- replace Cmd, keep the Entrypoint.
    let (store, b2) = (work.s("store"), work.s("b2"));
    ok(fetch(&[
        "pull",
        "--plain-http",
        "-q",
        "--store",
        &store,
        "--bundle",
        &b2,
        &r,
        "--",
        "over",
        "ride",
    ]));
    let id = format!("skiff-fetch-{}-3", std::process::id());
    assert_eq!(runc_run(&work.join("b2"), &id).trim(), "entry over ride");
}

#[test]
fn bundle_command_override_and_env() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("bundle2");
    let mut img = busybox_image();
    img.env.push("GREETING=hello".into());
    img.workdir = "/etc".into();
    publish(&reg, &work, "bb", "sh", &[img], &[]);
    let r = format!("{}/bb:sh", reg.host());
    let store = work.s("store");
    let bundle = work.s("b");
    ok(fetch(&[
        "pull",
        "--plain-http",
        "-q",
        "--store",
        &store,
        "--bundle",
        &bundle,
        &r,
        "--",
        "sh",
        "-c",
        "echo $GREETING; pwd; id -u",
    ]));
    let id = format!("skiff-fetch-{}-2", std::process::id());
    assert_eq!(runc_run(&work.join("b"), &id), "hello\n/etc\n0\n");
    // The root is writable, as with docker run.
    let (b2, id2) = (work.s("w"), format!("skiff-fetch-{}-4", std::process::id()));
    ok(fetch(&[
        "pull",
        "--plain-http",
        "-q",
        "--store",
        &store,
        "--bundle",
        &b2,
        &r,
        "--",
        "sh",
        "-c",
        "echo hi > /tmp/x && cat /tmp/x",
    ]));
    assert_eq!(runc_run(&work.join("w"), &id2), "hi\n");
}

#[test]
fn layout_and_inspect() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("layout");
    publish(&reg, &work, "bb", "v2", &[busybox_image()], &[]);
    let r = format!("{}/bb:v2", reg.host());
    ok(pull(&work, &["--layout", &work.s("oci")], &r));
    // skopeo reads our layout back.
    let out = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:v2", work.s("oci"))));
    assert!(
        out.contains("application/vnd.oci.image.manifest.v1+json") || out.contains("layers"),
        "{out}"
    );
    let o = ok(fetch(&["inspect", "--plain-http", &r]));
    let s = stdout(&o);
    // Pull by digest, and by tag plus digest.
    let digest = s
        .lines()
        .find_map(|l| l.strip_prefix("Manifest:   "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let by_digest = format!("{}/bb@{digest}", reg.host());
    ok(pull(&work, &["--rootfs", &work.s("d1")], &by_digest));
    ok(pull(
        &work,
        &["--rootfs", &work.s("d2")],
        &format!("{}/bb:v2@{digest}", reg.host()),
    ));
    assert!(work.join("d1/bin/busybox").exists() && work.join("d2/bin/busybox").exists());
    let wrong = format!("{}/bb@sha256:{}", reg.host(), "0".repeat(64));
    fails(pull(&work, &[], &wrong), "manifest");
    assert!(
        s.contains("Platform:   linux/amd64") && s.contains("Cmd:") && s.contains("Layers:     1"),
        "{s}"
    );
    fails(
        fetch(&[
            "inspect",
            "--plain-http",
            &format!("{}/bb:nope", reg.host()),
        ]),
        "404",
    );
}

#[test]
fn multi_layer_whiteouts_and_hardlinks() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("multi");
    let base = Layer {
        entries: busybox_entries(),
        comp: Comp::Gzip,
    };
    let l2 = Layer {
        entries: vec![
            dir("data/"),
            file("data/a", "a"),
            file("data/b", "b"),
            dir("data/sub/"),
            file("data/sub/c", "c"),
            dir("opq/"),
            file("opq/lower", "lower"),
            file("top", "top"),
            hardlink("top-link", "top"),
        ],
        comp: Comp::None,
    };
    let l3 = Layer {
        entries: vec![
            file("data/.wh.a", ""),
            file("opq/upper", "upper"),
            file("opq/.wh..wh..opq", ""),
            file("data/sub/.wh..wh..opq", ""),
            file("data/b", "b2"),
            hardlink("data/b-link", "data/b"),
            file(".wh.top", ""),
        ],
        comp: Comp::Zstd,
    };
    publish(
        &reg,
        &work,
        "multi",
        "v1",
        &[ImageSpec::new(vec![base, l2, l3])],
        &["--preserve-digests"],
    );
    let r = format!("{}/multi:v1", reg.host());
    ok(pull(&work, &["--rootfs", &work.s("root")], &r));
    let root = work.join("root");
    assert!(
        !root.join("data/a").exists(),
        "whiteout removes a lower file"
    );
    assert_eq!(read(&root.join("data/b")), "b2");
    assert_eq!(
        fs::metadata(root.join("data/b")).unwrap().ino(),
        fs::metadata(root.join("data/b-link")).unwrap().ino()
    );
    assert!(
        root.join("data/sub").is_dir() && fs::read_dir(root.join("data/sub")).unwrap().count() == 0
    );
    assert!(
        !root.join("opq/lower").exists(),
        "opaque dir hides the lower layer"
    );
    assert_eq!(
        read(&root.join("opq/upper")),
        "upper",
        "opaque keeps the same layer's entries"
    );
    assert!(!root.join("top").exists());
    assert_eq!(
        read(&root.join("top-link")),
        "top",
        "the other link survives"
    );
}

#[test]
fn multi_arch_index_platform_selection() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("arch");
    let mk = |arch: &str, variant: Option<&str>, marker: &str| {
        let mut img = ImageSpec::new(vec![Layer {
            entries: vec![file("arch", marker)],
            comp: Comp::Gzip,
        }]);
        img.arch = arch.into();
        img.variant = variant.map(String::from);
        img
    };
    publish(
        &reg,
        &work,
        "multi",
        "arch",
        &[
            mk("amd64", None, "amd64"),
            mk("arm64", Some("v8"), "arm64"),
            mk("arm", Some("v7"), "armv7"),
            mk("arm", Some("v6"), "armv6"),
        ],
        &["--all", "--preserve-digests"],
    );
    let r = format!("{}/multi:arch", reg.host());
    for (i, (plat, want)) in [
        ("linux/amd64", "amd64"),
        ("linux/arm64", "arm64"),
        ("linux/arm/v7", "armv7"),
        ("linux/arm/v6", "armv6"),
        ("linux/arm/v8", "armv7"),
    ]
    .iter()
    .enumerate()
    {
        let dir = work.s(&format!("r{i}"));
        ok(pull(&work, &["--platform", plat, "--rootfs", &dir], &r));
        assert_eq!(read(&work.join(&format!("r{i}/arch"))), *want, "{plat}");
    }
    ok(pull(&work, &["--rootfs", &work.s("host")], &r));
    assert_eq!(read(&work.join("host/arch")), "amd64");
    fails(
        pull(&work, &["--platform", "linux/s390x"], &r),
        "no manifest for platform linux/s390x",
    );
    fails(
        pull(&work, &["--platform", "linux"], &r),
        "invalid platform",
    );
    let o = ok(fetch(&[
        "inspect",
        "--plain-http",
        "--platform",
        "linux/arm64",
        &r,
    ]));
    assert!(
        stdout(&o).contains("Platforms:  linux/amd64, linux/arm64/v8, linux/arm/v7, linux/arm/v6"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn docker_schema2_and_zstd() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("schema2");
    publish(
        &reg,
        &work,
        "docker",
        "v1",
        &[busybox_image()],
        &["--format", "v2s2"],
    );
    let r = format!("{}/docker:v1", reg.host());
    let o = ok(fetch(&["inspect", "--plain-http", &r]));
    assert!(
        stdout(&o).contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{}",
        stdout(&o)
    );
    ok(pull(&work, &["--rootfs", &work.s("d")], &r));
    assert!(work.join("d/bin/busybox").exists());

    let zimg = ImageSpec::new(vec![Layer {
        entries: busybox_entries(),
        comp: Comp::Zstd,
    }]);
    publish(&reg, &work, "zstd", "v1", &[zimg], &["--preserve-digests"]);
    let r = format!("{}/zstd:v1", reg.host());
    let o = ok(fetch(&["inspect", "--plain-http", &r]));
    assert!(stdout(&o).contains("tar+zstd"), "{}", stdout(&o));
    ok(pull(&work, &["--rootfs", &work.s("z")], &r));
    assert!(work.join("z/bin/busybox").exists());
}

#[test]
fn corrupted_blob_is_rejected_and_not_stored() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("corrupt");
    let img = ImageSpec::new(vec![Layer {
        entries: vec![file("a", &"x".repeat(100_000))],
        comp: Comp::None,
    }]);
    let layers = publish(&reg, &work, "bad", "v1", &[img], &["--preserve-digests"]);
    let blob = reg.blob_file(&layers[0]);
    let mut data = fs::read(&blob).unwrap();
    data[5000] ^= 0xff;
    fs::write(&blob, &data).unwrap();
    let r = format!("{}/bad:v1", reg.host());
    let e = fails(
        pull(&work, &["--rootfs", &work.s("root")], &r),
        "digest mismatch",
    );
    assert!(e.contains(&layers[0].to_string()), "names the blob: {e}");
    assert!(!work
        .join(&format!("store/blobs/sha256/{}", layers[0].hex()))
        .exists());
    assert!(!work.join("root").exists(), "no partial rootfs");
    fails(
        pull(&work, &["--bundle", &work.s("bundle")], &r),
        "digest mismatch",
    );
    assert!(!work.join("bundle").exists(), "no partial bundle");

    // A corrupt gzip stream: extraction fails midway, the verdict is still
    // the digest mismatch, and nothing is left.
    let big: String = (0..300_000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let img = ImageSpec::new(vec![
        Layer {
            entries: busybox_entries(),
            comp: Comp::Gzip,
        },
        Layer {
            entries: vec![file("b", &big)],
            comp: Comp::Gzip,
        },
    ]);
    let layers = publish(&reg, &work, "badgz", "v1", &[img], &["--preserve-digests"]);
    for d in &layers {
        let blob = reg.blob_file(d);
        let mut data = fs::read(&blob).unwrap();
        let at = data.len() / 2;
        data[at] ^= 0x55;
        fs::write(&blob, &data).unwrap();
    }
    let r = format!("{}/badgz:v1", reg.host());
    let e = fails(
        pull(&work, &["--rootfs", &work.s("gz")], &r),
        "digest mismatch",
    );
    assert!(
        e.contains(&layers[0].to_string()) || e.contains(&layers[1].to_string()),
        "{e}"
    );
    assert!(!work.join("gz").exists(), "no partial rootfs");
    for d in &layers {
        assert!(!work
            .join(&format!("store/blobs/sha256/{}", d.hex()))
            .exists());
    }
    assert_eq!(
        fs::read_dir(work.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("partial"))
            .count(),
        0
    );
}

#[test]
fn resume_uses_range() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("resume");
    let big: String = (0..400_000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let img = ImageSpec::new(vec![Layer {
        entries: vec![file("big", &big)],
        comp: Comp::None,
    }]);
    let layers = publish(&reg, &work, "res", "v1", &[img], &["--preserve-digests"]);
    // An interrupted earlier pull left the first half in ingest.
    let data = fs::read(reg.blob_file(&layers[0])).unwrap();
    fs::create_dir_all(work.join("store/ingest")).unwrap();
    fs::write(
        work.join(&format!("store/ingest/sha256-{}", layers[0].hex())),
        &data[..data.len() / 2],
    )
    .unwrap();
    let r = format!("{}/res:v1", reg.host());
    let o = ok(fetch(&[
        "pull",
        "--plain-http",
        "--store",
        &work.s("store"),
        "--rootfs",
        &work.s("root"),
        &r,
    ]));
    assert!(stderr(&o).contains("resuming at"), "{}", stderr(&o));
    assert_eq!(read(&work.join("root/big")), big);

    // A corrupt partial: the resumed blob fails verification, the pull
    // starts over and succeeds.
    ok(fetch(&["rm", "--store", &work.s("store"), &r]));
    let mut bad = data[..data.len() / 2].to_vec();
    bad[10] ^= 1;
    fs::write(
        work.join(&format!("store/ingest/sha256-{}", layers[0].hex())),
        &bad,
    )
    .unwrap();
    ok(pull(&work, &["--rootfs", &work.s("root2")], &r));
    assert_eq!(read(&work.join("root2/big")), big);
}

#[test]
fn interrupted_transfer_resumes() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("cut");
    let big: Vec<u8> = (0..600_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let img = ImageSpec::new(vec![Layer {
        entries: vec![Entry::File {
            path: "big".into(),
            data: big.clone(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }],
        comp: Comp::None,
    }]);
    let layers = publish(&reg, &work, "cut", "v1", &[img], &["--preserve-digests"]);
    // Every blob transfer breaks: the pull fails, keeping what it got.
    let proxy = CutProxy::start(reg.port, 100_000, 100);
    let r = format!("127.0.0.1:{}/cut:v1", proxy.port);
    let e = fails(pull(&work, &[], &r), "transfer");
    assert!(e.contains(&layers[0].to_string()), "{e}");
    let partial = work.join(&format!("store/ingest/sha256-{}", layers[0].hex()));
    let kept = fs::metadata(&partial).expect("partial download kept").len();
    assert!(kept > 0);
    assert!(
        !proxy.ranges.lock().unwrap().is_empty(),
        "retries within the run resume with Range"
    );
    drop(proxy);
    // One break, then the next run resumes where the last one stopped.
    let proxy = CutProxy::start(reg.port, 0, 0);
    let r = format!("127.0.0.1:{}/cut:v1", proxy.port);
    let o = ok(fetch(&[
        "pull",
        "--plain-http",
        "--store",
        &work.s("store"),
        "--rootfs",
        &work.s("root"),
        &r,
    ]));
    assert!(stderr(&o).contains("resuming at"), "{}", stderr(&o));
    let ranges = proxy.ranges.lock().unwrap().clone();
    assert!(
        ranges
            .iter()
            .any(|h| h.ends_with(&format!("bytes={kept}-"))),
        "{ranges:?} (kept {kept})"
    );
    assert_eq!(fs::read(work.join("root/big")).unwrap(), big);
    assert!(!partial.exists());
}

/// A layer whose streamed apply breaks with the transfer is applied again
/// from the store: what the broken attempt read must not count against
/// the unpack limits a second time (it was a false "more than N bytes").
#[test]
fn a_retried_layer_is_counted_once() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("recount");
    let big: Vec<u8> = (0..600_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let img = ImageSpec::new(vec![Layer {
        entries: vec![Entry::File {
            path: "big".into(),
            data: big.clone(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }],
        comp: Comp::None,
    }]);
    publish(
        &reg,
        &work,
        "recount",
        "v1",
        &[img],
        &["--preserve-digests"],
    );
    // The layer's first transfer breaks after 400 kB (the config, the
    // first blob, is smaller); the layer is 600 kB, within the limit
    // once, not twice.
    let proxy = CutProxy::start(reg.port, 400_000, 2);
    let r = format!("127.0.0.1:{}/recount:v1", proxy.port);
    ok(pull(
        &work,
        &["--rootfs", &work.s("root"), "--max-bytes", "700000"],
        &r,
    ));
    assert_eq!(fs::read(work.join("root/big")).unwrap(), big);
    assert!(
        !proxy.ranges.lock().unwrap().is_empty(),
        "the transfer broke and was resumed"
    );
}

#[test]
fn mirror_fallback() {
    let Some(upstream) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let Some(mirror) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("mirror");
    let img = || {
        ImageSpec::new(vec![Layer {
            entries: vec![file("from", "x")],
            comp: Comp::Gzip,
        }])
    };
    publish(&upstream, &work, "m", "v1", &[img()], &[]);
    let r = format!("{}/m:v1", upstream.host());
    // A dead mirror first: the pull falls back to upstream.
    let dead = format!("{}=http://127.0.0.1:{}", upstream.host(), free_port());
    ok(pull(
        &work,
        &["--mirror", &dead, "--rootfs", &work.s("a")],
        &r,
    ));
    // A mirror that has the image serves it even when upstream is down.
    publish(&mirror, &work, "m", "v2", &[img()], &[]);
    let down = format!("127.0.0.1:{}", free_port());
    let m = format!("{down}=http://{}", mirror.host());
    ok(pull(
        &work,
        &["--mirror", &m, "--rootfs", &work.s("b")],
        &format!("{down}/m:v2"),
    ));
    // Mirrors from a file.
    fs::write(work.join("mirrors"), format!("# test mirrors\n\n{m}\n")).unwrap();
    let (store, c) = (work.s("store"), work.s("c"));
    let mirrors_file = work.s("mirrors");
    ok(fetch_env(
        &[
            "pull",
            "--plain-http",
            "-q",
            "--store",
            &store,
            "--rootfs",
            &c,
            &format!("{down}/m:v2"),
        ],
        &[("SKIFF_MIRRORS_FILE", &mirrors_file)],
    ));
    fs::write(work.join("mirrors"), "nonsense\n").unwrap();
    fails(
        fetch_env(
            &["pull", "--plain-http", "-q", "--store", &store, "x"],
            &[("SKIFF_MIRRORS_FILE", &mirrors_file)],
        ),
        ":1: invalid mirror",
    );
    // Both down: the error says so.
    let e = fails(
        pull(
            &work,
            &[
                "--mirror",
                &format!("{down}=http://127.0.0.1:{}", free_port()),
            ],
            &format!("{down}/m:v2"),
        ),
        "Connection refused",
    );
    assert!(e.contains("mirrors failed"), "{e}");
}

#[test]
fn bad_references_and_unreachable_registries() {
    let work = TempDir::new("errors");
    fails(
        pull(&work, &[], "Busybox"),
        "invalid reference \"Busybox\": repository name must be lowercase",
    );
    fails(pull(&work, &[], "busybox@sha256:123"), "invalid digest");
    fails(pull(&work, &[], "a//b"), "invalid reference");
    let port = free_port();
    let e = fails(
        pull(&work, &[], &format!("127.0.0.1:{port}/x:y")),
        "Connection refused",
    );
    assert!(e.contains(&format!("pull 127.0.0.1:{port}/x:y")), "{e}");
    fails(
        fetch(&["pull", "--store", &work.s("s"), "--tls-verify=maybe", "x"]),
        "--tls-verify",
    );
    let o = fetch(&["pull", "--store", &work.s("s")]);
    assert_eq!(o.status.code(), Some(2), "usage error: {}", stderr(&o));
    let o = fetch(&["ls", "--store", &work.s("never")]);
    assert!(o.status.success() && stdout(&o).is_empty());
}

#[test]
fn concurrent_pulls_share_the_store() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("concurrent");
    let big: String = (0..2_000_000)
        .map(|i| char::from(b'a' + (i * 13 % 26) as u8))
        .collect();
    let img = ImageSpec::new(vec![
        Layer {
            entries: busybox_entries(),
            comp: Comp::Gzip,
        },
        Layer {
            entries: vec![file("big", &big)],
            comp: Comp::None,
        },
    ]);
    publish(&reg, &work, "conc", "v1", &[img], &[]);
    let r = format!("{}/conc:v1", reg.host());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (store, root, r) = (work.s("store"), work.s(&format!("root{i}")), r.clone());
            std::thread::spawn(move || {
                fetch(&[
                    "pull",
                    "--plain-http",
                    "-q",
                    "--store",
                    &store,
                    "--rootfs",
                    &root,
                    &r,
                ])
            })
        })
        .collect();
    for h in handles {
        ok(h.join().unwrap());
    }
    for i in 0..4 {
        assert_eq!(read(&work.join(&format!("root{i}/big"))), big);
    }
    assert_eq!(
        stdout(&ok(fetch(&["ls", "-q", "--store", &work.s("store")]))).trim(),
        r
    );
}

#[test]
fn docker_hub_names_through_a_mirror() {
    // Any request that would leave for docker.io goes to a dead proxy on
    // loopback instead (with a proxy, the client resolves no names).
    let env = [
        ("ALL_PROXY", "http://127.0.0.1:1"),
        ("NO_PROXY", "127.0.0.1"),
    ];
    let Some(mirror) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("hub");
    publish(&mirror, &work, "library/bb", "hub", &[busybox_image()], &[]);
    let m = format!("docker.io=http://{}", mirror.host());
    let (store, root) = (work.s("store"), work.s("root"));
    ok(fetch_env(
        &[
            "pull", "-q", "--store", &store, "--mirror", &m, "--rootfs", &root, "bb:hub",
        ],
        &env,
    ));
    assert!(work.join("root/bin/busybox").exists());
    let listed = stdout(&ok(fetch(&["ls", "-q", "--store", &store])));
    assert_eq!(listed.trim(), "docker.io/library/bb:hub");
    // Not on the mirror: the fallback goes to registry-1.docker.io (here:
    // the dead proxy) and says so.
    let e = fails(
        fetch_env(
            &["pull", "-q", "--store", &store, "--mirror", &m, "bb:other"],
            &env,
        ),
        "registry-1.docker.io",
    );
    assert!(e.contains("mirrors failed") && e.contains("404"), "{e}");
    ok(fetch(&["rm", "--store", &store, "bb:hub"]));
}

#[test]
fn rm_keeps_blobs_other_images_use() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("gc");
    let base = || Layer {
        entries: busybox_entries(),
        comp: Comp::Gzip,
    };
    let a = publish(
        &reg,
        &work,
        "gc",
        "a",
        &[ImageSpec::new(vec![
            base(),
            Layer {
                entries: vec![file("a", "a")],
                comp: Comp::Gzip,
            },
        ])],
        &["--preserve-digests"],
    );
    let b = publish(
        &reg,
        &work,
        "gc",
        "b",
        &[ImageSpec::new(vec![
            base(),
            Layer {
                entries: vec![file("b", "b")],
                comp: Comp::Gzip,
            },
        ])],
        &["--preserve-digests"],
    );
    assert_eq!(a[0], b[0], "the base layer is shared");
    let (ra, rb) = (
        format!("{}/gc:a", reg.host()),
        format!("{}/gc:b", reg.host()),
    );
    ok(pull(&work, &[], &ra));
    ok(pull(&work, &[], &rb));
    let blob = |d: &Digest| work.join(&format!("store/blobs/sha256/{}", d.hex()));
    ok(fetch(&["rm", "--store", &work.s("store"), &ra]));
    assert!(
        blob(&a[0]).exists() && blob(&b[1]).exists(),
        "b's blobs stay"
    );
    assert!(!blob(&a[1]).exists(), "a's own layer goes");
}
