//! The daemon's storage layers together, on the real kernel: an image built
//! into the content store is unpacked into overlay snapshots (whiteouts as
//! overlay markers), a container's snapshot is mounted and run with skiff's
//! runc applet, GC respects leases and then removes everything; and the
//! snapshot and metadata stores survive `kill -9` at random points.

// Both harnesses carry the one skip helper (tests/common/require.rs).
#![allow(clippy::duplicate_mod)]

mod common;
mod fetch_support;

use common::*;
use fetch_support::{busybox_entries, dir, file, write_layout, Comp, ImageSpec, Layer};
use skiff::image::store::Store;
use skiff::metadata::unpack::{prepare_container, unpack_image, unpacked_chain};
use skiff::metadata::{gc, snapshot_key, Container, Db, Image, Runtime};
use skiff::record::Labels;
use skiff::snapshot::mount::{mount_all, unmount, Mount};
use skiff::snapshot::{Driver, SnapshotKind, Snapshotter};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Unmounts on drop (also after a failed assertion), before the test
/// context checks for leftover mounts.
struct Mounted(PathBuf);

impl Mounted {
    fn new(mounts: &[Mount], target: &Path) -> Mounted {
        fs::create_dir_all(target).unwrap();
        mount_all(mounts, target).unwrap();
        Mounted(target.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = unmount(&self.0);
    }
}

/// The three layers: busybox plus files to delete; then a whiteout and an
/// opaque directory; then a whiteout inside a kept directory.
fn layers() -> Vec<Layer> {
    let mut base = busybox_entries();
    base.extend([
        dir("etc/app/"),
        file("etc/app/old1", "1"),
        file("etc/app/old2", "2"),
        file("doomed", "x"),
        dir("keep/"),
        file("keep/a", "a"),
    ]);
    vec![
        Layer {
            entries: base,
            comp: Comp::Gzip,
        },
        Layer {
            entries: vec![
                file(".wh.doomed", ""),
                dir("etc/app/"),
                file("etc/app/.wh..wh..opq", ""),
                file("etc/app/new", "new"),
                file("l2", "2"),
            ],
            comp: Comp::Zstd,
        },
        Layer {
            entries: vec![file("keep/.wh.a", ""), file("keep/b", "b"), file("l3", "3")],
            comp: Comp::None,
        },
    ]
}

fn names_in(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What the three layers make, seen through a container's mount.
fn assert_merged_view(rootfs: &Path) {
    assert!(!rootfs.join("doomed").exists(), "whiteout of layer 2");
    assert_eq!(
        names_in(&rootfs.join("etc/app")),
        ["new"],
        "opaque directory"
    );
    assert_eq!(names_in(&rootfs.join("keep")), ["b"], "whiteout of layer 3");
    assert_eq!(fs::read_to_string(rootfs.join("l2")).unwrap(), "2");
    assert_eq!(fs::read_to_string(rootfs.join("l3")).unwrap(), "3");
    assert!(rootfs.join("bin/busybox").is_file());
}

/// The native snapshotter applies the whiteouts in its copies.
#[test]
fn native_image_unpacks_with_applied_whiteouts() {
    let ctx = Ctx::new("store-native");
    let root = ctx.path("store");
    write_layout(&root.join("content"), "t:1", &[ImageSpec::new(layers())]);
    let store = Store::open(&root.join("content")).unwrap();
    let t1 = store.find("t:1").unwrap().expect("image t:1 in the store");
    let db = Db::open(&root.join("meta")).unwrap();
    let sn = Snapshotter::open(&root.join("native"), Driver::Native).unwrap();
    db.create_lease("default", "u", Labels::new()).unwrap();
    let u = unpack_image(&store, &sn, &db, "default", &t1, "u").unwrap();
    db.delete_lease("default", "u").unwrap();
    assert_eq!(u.applied, 3);
    let mounts = prepare_container(&sn, "default", "c", &u.chain_id, Labels::new()).unwrap();
    assert_eq!(mounts[0].kind, "bind");
    let target = ctx.path("mnt");
    {
        let _m = Mounted::new(&mounts, &target);
        assert_merged_view(&target);
    }
    // skiff-fetch's index.json still names t:1: GC keeps its blobs; the
    // snapshots (no image record, container or lease) go.
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert!(r.blobs.is_empty(), "{r:?}");
    assert_eq!(r.snapshots.len(), 4, "{r:?}");
    assert!(names_in(&root.join("native/snapshots")).is_empty());
}

#[test]
fn overlay_image_unpacks_mounts_runs_and_is_collected() {
    let ctx = Ctx::new("store-snap");
    let root = ctx.path("store");
    let content_dir = root.join("content");
    write_layout(&content_dir, "t:1", &[ImageSpec::new(layers())]);
    // A second image sharing the first two layers.
    let other = ctx.path("other");
    let mut l2 = layers();
    l2[2] = Layer {
        entries: vec![file("other", "o")],
        comp: Comp::None,
    };
    write_layout(&other, "t:2", &[ImageSpec::new(l2)]);
    for e in fs::read_dir(other.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        fs::copy(
            e.path(),
            content_dir.join("blobs/sha256").join(e.file_name()),
        )
        .unwrap();
    }
    let t2 = skiff::image::store::read_index(&other.join("index.json")).unwrap()[0].clone();

    let store = Store::open(&content_dir).unwrap();
    let t1 = store.find("t:1").unwrap().expect("image t:1 in the store");
    // The daemon's images, not skiff-fetch's: GC must not see t:1 as a root
    // through index.json.
    skiff::image::store::write_index(&content_dir.join("index.json"), &[]).unwrap();
    let db = Db::open(&root.join("meta")).unwrap();
    let sn = Snapshotter::open(&root.join("overlayfs"), Driver::Overlay).unwrap();

    db.create_lease("default", "pull", Labels::new()).unwrap();
    for d in skiff::image::content::list_blobs(&store).unwrap() {
        db.add_lease_resource(
            "default",
            "pull",
            skiff::metadata::Resource {
                id: d.digest.to_string(),
                kind: "content".into(),
            },
        )
        .unwrap();
    }
    assert_eq!(
        unpacked_chain(&store, &sn, &db, "default", &t1).unwrap(),
        None,
        "not unpacked yet"
    );
    let u1 = unpack_image(&store, &sn, &db, "default", &t1, "pull").unwrap();
    assert_eq!(
        unpacked_chain(&store, &sn, &db, "default", &t1)
            .unwrap()
            .as_deref(),
        Some(u1.chain_id.as_str())
    );
    assert_eq!(u1.applied, 3);
    let u2 = unpack_image(&store, &sn, &db, "default", &t2, "pull").unwrap();
    assert_eq!(u2.applied, 1, "the shared layers are reused");
    // A crash between the last commit and the config's gc.ref label: the
    // chain is not unpacked (a collection would take it) until an unpack
    // puts the label back.
    let label = format!("containerd.io/gc.ref.snapshot.{}", sn.driver().name());
    let config = u1.config.digest.clone();
    let mut config_labels = db.content_labels("default", &config).unwrap();
    assert_eq!(
        config_labels.remove(&label).as_deref(),
        Some(u1.chain_id.as_str())
    );
    db.set_content_labels("default", &config, config_labels)
        .unwrap();
    assert_eq!(
        unpacked_chain(&store, &sn, &db, "default", &t1).unwrap(),
        None,
        "a chain without its label is not unpacked"
    );
    let again = unpack_image(&store, &sn, &db, "default", &t1, "pull").unwrap();
    assert_eq!((again.applied, &again.chain_id), (0, &u1.chain_id));
    assert_eq!(
        unpacked_chain(&store, &sn, &db, "default", &t1)
            .unwrap()
            .as_deref(),
        Some(u1.chain_id.as_str())
    );
    let committed = sn.list();
    assert_eq!(committed.len(), 4);
    assert!(committed.iter().all(|i| i.kind == SnapshotKind::Committed));

    // The lease alone keeps blobs and snapshots through a collection.
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert!(r.blobs.is_empty() && r.snapshots.is_empty(), "{r:?}");

    for (name, target) in [("t:1", &t1), ("t:2", &t2)] {
        db.create_image(
            "default",
            Image {
                name: name.into(),
                target: target.clone(),
                labels: Labels::new(),
                created: 0,
                updated: 0,
            },
        )
        .unwrap();
    }
    db.delete_lease("default", "pull").unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert!(r.blobs.is_empty() && r.snapshots.is_empty(), "{r:?}");

    // The container's snapshot, mounted as the bundle's rootfs.
    let mounts = prepare_container(&sn, "default", "c1", &u1.chain_id, Labels::new()).unwrap();
    assert_eq!(mounts[0].kind, "overlay");
    db.create_container(
        "default",
        Container {
            id: "c1".into(),
            image: "t:1".into(),
            runtime: Runtime {
                name: "io.containerd.skiff.v2".into(),
                options: None,
            },
            snapshotter: "overlayfs".into(),
            snapshot_key: "c1".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let rootfs = ctx.rootfs();
    fs::remove_dir_all(&rootfs).unwrap();
    {
        let _m = Mounted::new(&mounts, &rootfs);
        assert_merged_view(&rootfs);

        let mut c = ctx.config();
        c.writable_rootfs();
        c.sh("cat /l3; ls /etc/app; test -e /doomed || echo doomed-gone; echo hi > /written");
        let out = ctx.run_config(&c);
        out.ok();
        assert_eq!(out.stdout, "3new\ndoomed-gone\n");
    }
    // The container's write went to its upper dir only.
    let (upper, _) = sn.apply_target(&snapshot_key("default", "c1")).unwrap();
    assert_eq!(fs::read_to_string(upper.join("written")).unwrap(), "hi\n");

    // The container keeps its snapshot; with container and images gone
    // everything is collected.
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert!(r.snapshots.is_empty(), "{r:?}");
    db.delete_container("default", "c1").unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.snapshots.len(), 1);
    db.delete_image("default", "t:1").unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.snapshots.len(), 1, "t:2 keeps the shared layers: {r:?}");
    db.delete_image("default", "t:2").unwrap();
    gc::collect(&db, &store, &[&sn]).unwrap();
    assert!(sn.list().is_empty());
    assert!(skiff::image::content::list_blobs(&store)
        .unwrap()
        .is_empty());
    assert!(names_in(&root.join("overlayfs/snapshots")).is_empty());
    db.delete_namespace("default", |ns| skiff::metadata::snapshots_in(&[&sn], ns))
        .unwrap();
}

// ---- crash consistency ----------------------------------------------------

const CHILD_ENV: &str = "SKIFF_STORE_CRASH_CHILD";

/// Not a test of its own: the body of the child that the crash test kills.
/// It loops over prepare/commit/remove and metadata writes until killed.
#[test]
#[ignore = "the child process of kill_9_during_commit_and_remove_leaves_a_loadable_store"]
fn crash_child() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let sn = Snapshotter::open(&root.join("sn"), Driver::Overlay).unwrap();
    let db = Db::open(&root.join("meta")).unwrap();
    let base = snapshot_key("default", "base");
    if sn.stat(&base).is_err() {
        let _ = sn.remove(&snapshot_key("default", "base-a"));
        sn.prepare(&snapshot_key("default", "base-a"), "", Labels::new())
            .unwrap();
        sn.commit(&base, &snapshot_key("default", "base-a"), Labels::new())
            .unwrap();
    }
    let pid = std::process::id();
    for i in 0u64.. {
        let key = snapshot_key("default", &format!("a-{pid}-{i}"));
        let name = snapshot_key("default", &format!("c-{pid}-{i}"));
        let id = format!("ctr-{pid}-{i}");
        sn.prepare(&key, &base, Labels::new()).unwrap();
        let (dir, _) = sn.apply_target(&key).unwrap();
        fs::write(dir.join("f"), i.to_string()).unwrap();
        db.create_container(
            "default",
            Container {
                id: id.clone(),
                runtime: Runtime {
                    name: "io.containerd.skiff.v2".into(),
                    options: None,
                },
                snapshotter: "overlayfs".into(),
                snapshot_key: format!("c-{pid}-{i}"),
                ..Default::default()
            },
        )
        .unwrap();
        sn.commit(&name, &key, Labels::new()).unwrap();
        // Images and leases (holding nothing, so GC's answer stays the
        // containers' snapshots) are written and removed as well.
        let lease = format!("l-{pid}-{i}");
        let image = format!("example.com/img:{pid}-{i}");
        db.create_lease("default", &lease, Labels::new()).unwrap();
        db.create_image(
            "default",
            Image {
                name: image.clone(),
                target: skiff::image::oci::Descriptor {
                    media_type: skiff::image::oci::OCI_MANIFEST.into(),
                    digest: skiff::image::digest::Digest::of(id.as_bytes()),
                    size: 1,
                    platform: None,
                    annotations: Vec::new(),
                },
                labels: Labels::new(),
                created: 0,
                updated: 0,
            },
        )
        .unwrap();
        db.delete_lease("default", &lease).unwrap();
        if i % 3 != 0 {
            db.delete_container("default", &id).unwrap();
            sn.remove(&name).unwrap();
            db.delete_image("default", &image).unwrap();
        }
    }
}

/// A cheap pseudo-random number from the clock.
fn jitter(max: u64) -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (n ^ (n >> 7)).wrapping_mul(2654435761) % max
}

#[test]
fn kill_9_during_commit_and_remove_leaves_a_loadable_store() {
    let ctx = Ctx::new("store-crash");
    let root = ctx.path("crash");
    fs::create_dir_all(&root).unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..15 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--ignored", "--test-threads=1"])
            .env(CHILD_ENV, &root)
            .env("SKIFF_TEST_MARK", &ctx.mark)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(40 + jitter(400)));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "round {round}: the child ended on its own ({status}); it must be killed"
        );

        // Whatever the moment of death, both stores load...
        let sn = Snapshotter::open(&root.join("sn"), Driver::Overlay)
            .unwrap_or_else(|e| panic!("round {round}: snapshots do not load: {e}"));
        let db = Db::open(&root.join("meta"))
            .unwrap_or_else(|e| panic!("round {round}: metadata does not load: {e}"));
        let containers = db.containers("default").unwrap();
        db.images("default").unwrap();
        db.leases("default").unwrap();
        // ...every directory has its record and no temporary is left.
        assert_eq!(
            names_in(&root.join("sn/snapshots")).len(),
            sn.list().len(),
            "round {round}: orphan snapshot directories"
        );
        for d in [
            root.join("sn/metadata"),
            root.join("meta/ns/default/containers"),
            root.join("meta/ns/default/images"),
            root.join("meta/ns/default/leases"),
        ] {
            if d.exists() {
                assert!(
                    names_in(&d).iter().all(|n| !n.starts_with('.')),
                    "round {round}: temporaries left in {}",
                    d.display()
                );
            }
        }
        // GC keeps exactly the containers' snapshots and their parent.
        gc::collect(&db, &store(&root), &[&sn]).unwrap();
        let mut want: Vec<String> = containers
            .iter()
            .map(|c| snapshot_key("default", &c.snapshot_key))
            .filter(|k| sn.stat(k).is_ok())
            .collect();
        if !want.is_empty() {
            want.push(snapshot_key("default", "base"));
        }
        want.sort();
        let have: Vec<String> = sn.list().into_iter().map(|i| i.name).collect();
        assert_eq!(
            have, want,
            "round {round}: GC left orphans or took too much"
        );
        assert_eq!(names_in(&root.join("sn/snapshots")).len(), have.len());
    }
    // Clean up through the API: containers gone, GC takes the rest.
    let sn = Snapshotter::open(&root.join("sn"), Driver::Overlay).unwrap();
    let db = Db::open(&root.join("meta")).unwrap();
    for c in db.containers("default").unwrap() {
        db.delete_container("default", &c.id).unwrap();
    }
    gc::collect(&db, &store(&root), &[&sn]).unwrap();
    assert!(sn.list().is_empty());
    assert!(names_in(&root.join("sn/snapshots")).is_empty());
}

fn store(root: &Path) -> Store {
    Store::open(&root.join("content")).unwrap()
}

/// Two unpacks of one image at once: each layer is applied by one of them
/// (the other's copy loses the commit race and is dropped), both end on
/// the same chain, and no temporary snapshot is left.
#[test]
fn concurrent_unpacks_share_layers() {
    let ctx = Ctx::new("store-race");
    let root = ctx.path("store");
    write_layout(&root.join("content"), "t:1", &[ImageSpec::new(layers())]);
    let store = Store::open(&root.join("content")).unwrap();
    let t1 = store.find("t:1").unwrap().expect("image t:1 in the store");
    let db = Db::open(&root.join("meta")).unwrap();
    let sn = Snapshotter::open(&root.join("overlayfs"), Driver::Overlay).unwrap();
    db.create_lease("default", "u", Labels::new()).unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let run = || unpack_image(&store, &sn, &db, "default", &t1, "u").unwrap();
        let a = s.spawn(run);
        let b = s.spawn(run);
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert_eq!(results[0].chain_id, results[1].chain_id);
    assert_eq!(results[0].applied + results[1].applied, 3, "{results:?}");
    let all = sn.list();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().all(|i| i.kind == SnapshotKind::Committed));
    assert_eq!(names_in(&root.join("overlayfs/snapshots")).len(), 3);
    db.delete_lease("default", "u").unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.snapshots.len(), 3);
}

/// Collections running all through an unpack do not take what its lease
/// holds: the layer being extracted, the layers committed so far, the blobs.
#[test]
fn gc_during_an_unpack_spares_what_its_lease_holds() {
    let ctx = Ctx::new("store-gcrace");
    let root = ctx.path("store");
    write_layout(&root.join("content"), "t:1", &[ImageSpec::new(layers())]);
    let store = Store::open(&root.join("content")).unwrap();
    let t1 = store.find("t:1").unwrap().expect("image t:1 in the store");
    skiff::image::store::write_index(&root.join("content/index.json"), &[]).unwrap();
    let db = Db::open(&root.join("meta")).unwrap();
    let sn = Snapshotter::open(&root.join("overlayfs"), Driver::Overlay).unwrap();
    db.create_lease("default", "pull", Labels::new()).unwrap();
    for d in skiff::image::content::list_blobs(&store).unwrap() {
        db.add_lease_resource(
            "default",
            "pull",
            skiff::metadata::Resource {
                id: d.digest.to_string(),
                kind: "content".into(),
            },
        )
        .unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let (u, collections) = std::thread::scope(|s| {
        let gc_loop = s.spawn(|| {
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let r = gc::collect(&db, &store, &[&sn]).unwrap();
                assert!(r.blobs.is_empty() && r.snapshots.is_empty(), "{r:?}");
                n += 1;
            }
            n
        });
        let u = unpack_image(&store, &sn, &db, "default", &t1, "pull");
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (u, gc_loop.join().unwrap())
    });
    let u = u.unwrap();
    assert!(collections > 1, "the collections ran during the unpack");
    assert_eq!(u.applied, 3);
    assert_eq!(sn.list().len(), 3);
    // The extraction snapshots left the lease again; the layers stay in it.
    let held = db.lease("default", "pull").unwrap().resources;
    assert_eq!(
        held.iter()
            .filter(|r| r.kind == "snapshots/overlayfs")
            .count(),
        3,
        "{held:?}"
    );
    db.delete_lease("default", "pull").unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.snapshots.len(), 3);
    assert!(skiff::image::content::list_blobs(&store)
        .unwrap()
        .is_empty());
}
