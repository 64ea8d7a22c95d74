//! Hostile layers: nothing outside the target is created, changed, linked
//! or removed; what cannot be honoured safely fails naming the entry and
//! leaves no partial rootfs.

#[path = "fetch_support/mod.rs"]
mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use support::*;

struct Outside {
    dir: std::path::PathBuf,
}

impl Outside {
    fn new(work: &TempDir) -> Outside {
        let dir = work.join("outside");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("victim"), "precious").unwrap();
        fs::write(dir.join("sub/victim"), "precious").unwrap();
        fs::set_permissions(dir.join("victim"), fs::Permissions::from_mode(0o600)).unwrap();
        Outside { dir }
    }
    fn s(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }
    #[track_caller]
    fn check(&self, case: &str) {
        let v = fs::metadata(self.dir.join("victim"))
            .unwrap_or_else(|_| panic!("{case}: victim removed"));
        assert_eq!(read(&self.dir.join("victim")), "precious", "{case}");
        assert_eq!(
            v.permissions().mode() & 0o7777,
            0o600,
            "{case}: mode changed"
        );
        assert_eq!(v.nlink(), 1, "{case}: victim was hardlinked");
        assert_eq!(read(&self.dir.join("sub/victim")), "precious", "{case}");
        let names: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "{case}: something was created outside: {names:?}"
        );
        assert!(!Path::new("/pwned").exists(), "{case}: /pwned");
    }
}

fn no_partial(work: &TempDir, target: &str, case: &str) {
    assert!(!work.join(target).exists(), "{case}: partial rootfs left");
    let left: Vec<_> = fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(left.is_empty(), "{case}: temporary tree left");
}

#[test]
fn hostile_layers() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("hostile");
    let out = Outside::new(&work);
    let o = out.s();
    let climbs = "../".repeat(12);
    // (case, entries, Some(error) or None when it must succeed, checks on success)
    let cases: Vec<(&str, Vec<Entry>, Option<&str>)> = vec![
        (
            "dotdot",
            vec![file(
                &format!("{climbs}{}/pwned", o.trim_start_matches('/')),
                "x",
            )],
            Some("path climbs out of the root"),
        ),
        (
            "dotdot-mid",
            vec![dir("a/"), file("a/../../pwned", "x")],
            Some("path climbs out of the root"),
        ),
        (
            "absolute",
            vec![file(&format!("{o}/pwned"), "x"), file("/pwned", "x")],
            None,
        ),
        (
            "symlink-parent-abs",
            vec![
                symlink("evil", &o),
                file("evil/pwned", "x"),
                file("evil/victim", "mine"),
            ],
            None,
        ),
        (
            "symlink-parent-rel",
            vec![
                symlink("up", &climbs),
                file(&format!("up/{}/victim", o.trim_start_matches('/')), "mine"),
            ],
            None,
        ),
        (
            "symlink-chain",
            vec![
                dir("d/"),
                symlink("d/l1", "../l2"),
                symlink("l2", &o),
                file("d/l1/sub/victim", "mine"),
            ],
            None,
        ),
        (
            "symlink-final",
            vec![symlink("f", &format!("{o}/victim")), file("f", "replaced")],
            None,
        ),
        (
            "dir-over-symlink",
            vec![
                symlink("d", &o),
                Entry::Dir {
                    path: "d/".into(),
                    mode: 0o777,
                },
            ],
            None,
        ),
        (
            "hardlink-dotdot",
            vec![hardlink(
                "hl",
                &format!("{climbs}{}/victim", o.trim_start_matches('/')),
            )],
            Some("climbs out of the root"),
        ),
        (
            "hardlink-abs",
            vec![hardlink("hl", &format!("{o}/victim"))],
            Some("hardlink target"),
        ),
        (
            "hardlink-via-symlink",
            vec![symlink("s", &o), hardlink("hl", "s/victim")],
            Some("hardlink target"),
        ),
        (
            "whiteout-dotdot",
            vec![file(
                &format!("{climbs}{}/.wh.victim", o.trim_start_matches('/')),
                "",
            )],
            Some("climbs out of the root"),
        ),
        (
            "whiteout-via-symlink",
            vec![
                symlink("w", &o),
                file("w/.wh.victim", ""),
                file("w/sub/.wh..wh..opq", ""),
            ],
            None,
        ),
        (
            "opaque-via-symlink",
            vec![symlink("w", &o), file("w/.wh..wh..opq", "")],
            None,
        ),
        (
            "whiteout-dotdot-name",
            vec![file(".wh...", "")],
            Some("invalid whiteout name"),
        ),
    ];
    for (i, (case, entries, err)) in cases.into_iter().enumerate() {
        let tag = format!("t{i}");
        let layout = work.join(&format!("layout-{i}"));
        // A benign first layer, then the hostile one.
        write_layout(
            &layout,
            &tag,
            &[ImageSpec::new(vec![
                Layer {
                    entries: vec![dir("etc/"), file("etc/hostname", "box")],
                    comp: Comp::Gzip,
                },
                Layer {
                    entries,
                    comp: Comp::Gzip,
                },
            ])],
        );
        push(
            &layout,
            &tag,
            &format!("{}/hostile:{tag}", reg.host()),
            &["--preserve-digests"],
        );
        let target = format!("root-{i}");
        let r = format!("{}/hostile:{tag}", reg.host());
        let res = fetch(&[
            "pull",
            "--plain-http",
            "-q",
            "--store",
            &work.s("store"),
            "--rootfs",
            &work.s(&target),
            &r,
        ]);
        match err {
            Some(why) => {
                let e = fails(res, why);
                assert!(e.contains("entry \""), "{case}: names the entry: {e}");
                no_partial(&work, &target, case);
            }
            None => {
                assert!(res.status.success(), "{case}: {}", stderr(&res));
                assert_eq!(read(&work.join(&format!("{target}/etc/hostname"))), "box");
            }
        }
        out.check(case);
        // Where the in-root cases landed.
        let t = work.join(&target);
        let inner = t.join(o.trim_start_matches('/'));
        match case {
            "absolute" => assert!(
                inner.join("pwned").exists() && t.join("pwned").exists(),
                "{case}"
            ),
            "symlink-parent-abs" => assert_eq!(read(&inner.join("victim")), "mine", "{case}"),
            "symlink-parent-rel" => assert_eq!(read(&inner.join("victim")), "mine", "{case}"),
            "symlink-chain" => assert_eq!(read(&inner.join("sub/victim")), "mine", "{case}"),
            "symlink-final" => assert_eq!(read(&t.join("f")), "replaced", "{case}"),
            "dir-over-symlink" => assert!(
                fs::symlink_metadata(t.join("d")).unwrap().is_dir(),
                "{case}"
            ),
            _ => {}
        }
    }
}

/// The unpack limits are flags; an image over them fails naming the
/// limit and leaves nothing; a bundle is private (0700).
#[test]
fn unpack_limits_and_private_bundles() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("limits");
    let layout = work.join("layout");
    // 2 MiB of zeros: a few KiB once compressed.
    let zeros = Entry::File {
        path: "zeros".into(),
        data: vec![0; 2 << 20],
        mode: 0o4755,
        uid: 0,
        gid: 0,
    };
    write_layout(
        &layout,
        "big",
        &[ImageSpec::new(vec![Layer {
            entries: vec![dir("etc/"), file("etc/hostname", "box"), zeros],
            comp: Comp::Gzip,
        }])],
    );
    let r = format!("{}/limits:big", reg.host());
    push(&layout, "big", &r, &["--preserve-digests"]);
    let pull = |extra: &[&str], bundle: &str| {
        let store = work.s("store");
        let bundle = work.s(bundle);
        let mut args = vec!["pull", "--plain-http", "-q", "--store", &store];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--bundle", &bundle, &r]);
        fetch(&args)
    };
    let e = fails(
        pull(&["--max-bytes", "1048576"], "b1"),
        "uncompressed bytes (the limit)",
    );
    assert!(e.contains("1048576"), "{e}");
    assert!(!work.join("b1").exists(), "no bundle left");
    let e = fails(pull(&["--max-entries", "2"], "b2"), "more than 2 entries");
    assert!(e.contains("limit"), "{e}");
    fails(
        pull(&["--max-path", "5"], "b3"),
        "longer than the limit of 5",
    );
    fails(
        pull(&["--max-depth", "1"], "b4"),
        "deeper than the limit of 1",
    );
    ok(pull(&[], "b5"));
    let mode = fs::metadata(work.join("b5")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the bundle above the rootfs is private");
    assert_eq!(
        fs::metadata(work.join("b5/rootfs/zeros"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    // An existing bundle directory is made private too.
    fs::create_dir(work.join("b6")).unwrap();
    fs::set_permissions(work.join("b6"), fs::Permissions::from_mode(0o755)).unwrap();
    ok(pull(&[], "b6"));
    let mode = fs::metadata(work.join("b6")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
}

/// `--rootfs DIR` where other users could reach DIR (every directory
/// above it open to them) is refused, leaving nothing, unless
/// `--allow-shared-parent`; below a 0700 directory, or one the pull
/// makes (0700), it is unpacked.
#[test]
fn a_rootfs_other_users_could_reach_is_refused() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("shared");
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let layout = work.join("layout");
    write_layout(
        &layout,
        "v1",
        &[ImageSpec::new(vec![Layer {
            entries: vec![dir("etc/"), file("etc/hostname", "box")],
            comp: Comp::Gzip,
        }])],
    );
    let r = format!("{}/shared:v1", reg.host());
    push(&layout, "v1", &r, &["--preserve-digests"]);
    let pull = |extra: &[&str], rootfs: &Path| {
        let store = work.s("store");
        let rootfs = rootfs.to_string_lossy().into_owned();
        let mut args = vec!["pull", "--plain-http", "-q", "--store", &store];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--rootfs", &rootfs, &r]);
        fetch(&args)
    };
    let open = work.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    let e = fails(pull(&[], &open.join("root")), "--allow-shared-parent");
    assert!(e.contains("other users can reach it"), "{e}");
    let left: Vec<_> = fs::read_dir(&open).unwrap().flatten().collect();
    assert!(left.is_empty(), "nothing left: {left:?}");
    ok(pull(&["--allow-shared-parent"], &open.join("root")));
    assert_eq!(read(&open.join("root/etc/hostname")), "box");
    // Below a private directory, or one the pull makes.
    let closed = work.join("closed");
    fs::create_dir(&closed).unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
    ok(pull(&[], &closed.join("root")));
    ok(pull(&[], &work.join("new/root")));
    let mode = fs::metadata(work.join("new")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
}

#[test]
#[ignore = "run by a_missing_tool_is_a_skip_outside_ci"]
fn probe_tool() {
    if std::env::var_os("SKIFF_SKIP_PROBE").is_none() {
        return;
    }
    if !tool("/nonexistent/skiff-tool", "skiff-tool-package") {
        return;
    }
    unreachable!("a missing tool was found");
}

/// The fetch tests' tools follow the one skip rule: missing, a printed
/// skip, and a failure under CI=true (it panicked everywhere).
#[test]
fn a_missing_tool_is_a_skip_outside_ci() {
    let probe = |ci: Option<&str>| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["probe_tool", "--exact", "--ignored", "--nocapture"])
            .env("SKIFF_SKIP_PROBE", "1")
            .env_remove("CI");
        if let Some(v) = ci {
            cmd.env("CI", v);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (passed, text) = probe(None);
    assert!(passed, "outside CI: a skip: {text}");
    assert!(
        text.contains("skipped at") && text.contains("skiff-tool-package"),
        "{text}"
    );
    let (passed, text) = probe(Some("true"));
    assert!(!passed, "CI=true: a failure: {text}");
    assert!(text.contains("skiff-tool-package"), "{text}");
}
