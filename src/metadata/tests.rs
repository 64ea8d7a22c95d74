use super::*;
use crate::image::oci;
use crate::image::store::Store;
use crate::snapshot::Driver;
use crate::Kind;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "skiff-meta-{tag}-{}-{}",
            std::process::id(),
            now_nanos()
        ));
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn desc(data: &[u8], media_type: &str) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::of(data),
        size: data.len() as u64,
        platform: None,
        annotations: Vec::new(),
    }
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> Kind {
    r.unwrap_err().kind()
}

#[test]
fn namespaces_images_containers_leases_round_trip() {
    let tmp = Scratch::new("rt");
    let db = Db::open(&tmp.0).unwrap();
    db.create_namespace("default", labels(&[("a", "1")]))
        .unwrap();
    assert_eq!(
        kind(db.create_namespace("default", Labels::new())),
        Kind::AlreadyExists
    );
    assert_eq!(
        kind(db.create_namespace("bad/ns", Labels::new())),
        Kind::InvalidArgument
    );
    assert_eq!(kind(db.namespace("other")), Kind::NotFound);

    let target = desc(b"manifest", oci::OCI_MANIFEST);
    let img = Image {
        name: "docker.io/library/busybox:latest".into(),
        target: target.clone(),
        labels: labels(&[("x", "y")]),
        created: 0,
        updated: 0,
    };
    let made = db.create_image("default", img.clone()).unwrap();
    assert!(made.created > 0);
    assert_eq!(
        kind(db.create_image("default", img.clone())),
        Kind::AlreadyExists
    );
    assert_eq!(db.image("default", &img.name).unwrap(), made);
    assert_eq!(kind(db.image("default", "nope")), Kind::NotFound);

    let mut c = Container {
        id: "c1".into(),
        image: img.name.clone(),
        runtime: Runtime {
            name: "io.containerd.skiff.v2".into(),
            options: Some(Any {
                type_url: "types/Options".into(),
                value: vec![0, 1, 2, 255],
            }),
        },
        spec: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
            value: b"{\"ociVersion\":\"1.0.2\"}".to_vec(),
        }),
        snapshotter: "overlayfs".into(),
        snapshot_key: "c1".into(),
        labels: labels(&[("k", "v")]),
        ..Default::default()
    };
    c.extensions.insert(
        "ext".into(),
        Any {
            type_url: "t".into(),
            value: vec![9; 3],
        },
    );
    let made_c = db.create_container("default", c.clone()).unwrap();
    assert_eq!(
        kind(db.create_container("default", c.clone())),
        Kind::AlreadyExists
    );
    c.id = "bad id".into();
    assert_eq!(
        kind(db.create_container("default", c)),
        Kind::InvalidArgument
    );

    db.create_lease("default", "pull-1", Labels::new()).unwrap();
    let r = Resource {
        id: target.digest.to_string(),
        kind: "content".into(),
    };
    db.add_lease_resource("default", "pull-1", r.clone())
        .unwrap();
    db.add_lease_resource("default", "pull-1", r.clone())
        .unwrap();
    db.add_content_label("default", &target.digest, "containerd.io/gc.root", "x")
        .unwrap();

    assert_eq!(
        kind(db.add_lease_resource(
            "default",
            "pull-1",
            Resource {
                id: "not-a-digest".into(),
                kind: "content".into()
            }
        )),
        Kind::InvalidArgument
    );
    assert_eq!(
        kind(db.create_lease("default", "big", labels(&[("k", &"v".repeat(4096))]))),
        Kind::InvalidArgument
    );
    assert_eq!(
        kind(db.delete_namespace("default", |_| None)),
        Kind::FailedPrecondition,
        "a namespace in use cannot go"
    );

    // Everything loads again from disk.
    drop(db);
    let db = Db::open(&tmp.0).unwrap();
    assert_eq!(
        db.namespace("default").unwrap().labels,
        labels(&[("a", "1")])
    );
    assert_eq!(db.images("default").unwrap(), vec![made]);
    assert_eq!(db.container("default", "c1").unwrap(), made_c);
    assert_eq!(db.lease("default", "pull-1").unwrap().resources, vec![r]);
    assert_eq!(
        db.content_labels("default", &target.digest).unwrap(),
        labels(&[("containerd.io/gc.root", "x")])
    );

    db.delete_image("default", &img.name).unwrap();
    assert_eq!(kind(db.delete_image("default", &img.name)), Kind::NotFound);
    db.delete_container("default", "c1").unwrap();
    db.delete_lease("default", "pull-1").unwrap();
    // A blob's record (labelled or not) keeps the namespace in use.
    db.set_content_labels("default", &target.digest, Labels::new())
        .unwrap();
    assert_eq!(
        kind(db.delete_namespace("default", |_| None)),
        Kind::FailedPrecondition
    );
    db.delete_content("default", &target.digest).unwrap();
    assert_eq!(
        kind(db.delete_content("default", &target.digest)),
        Kind::NotFound
    );
    db.delete_namespace("default", |_| None).unwrap();
    assert!(db.namespaces().unwrap().is_empty());
}

#[test]
fn namespace_with_snapshots_is_not_deleted() {
    let tmp = Scratch::new("nssnap");
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    db.create_namespace("ns1", Labels::new()).unwrap();
    sn.prepare(&snapshot_key("ns1", "k"), "", Labels::new())
        .unwrap();
    sn.prepare(&snapshot_key("ns10", "k"), "", Labels::new())
        .unwrap();
    assert_eq!(
        kind(db.delete_namespace("ns1", |ns| snapshots_in(&[&sn], ns))),
        Kind::FailedPrecondition
    );
    let seen: Vec<String> = namespace_snapshots(&sn, "ns1")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(seen, ["k"], "ns10's snapshot is not ns1's");
    assert_eq!(split_snapshot_key("ns1/a/b"), Some(("ns1", "a/b")));
    assert_eq!(split_snapshot_key("bad..ns/a"), None);
    sn.remove(&snapshot_key("ns1", "k")).unwrap();
    db.delete_namespace("ns1", |ns| snapshots_in(&[&sn], ns))
        .unwrap();
}

/// A lease protects a blob no image references; once the lease is gone
/// (or expired) the blob is collected. Images keep their whole tree, and
/// the gc.ref.snapshot label on a config keeps the snapshot chain.
#[test]
fn gc_keeps_what_is_referenced_and_sweeps_the_rest() {
    let tmp = Scratch::new("gc");
    let store = Store::open(&tmp.0.join("content")).unwrap();
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();

    let put = |data: &[u8], mt: &str| {
        let d = desc(data, mt);
        store.put(&d, data).unwrap();
        d
    };
    let layer = put(b"layer bytes", "application/vnd.oci.image.layer.v1.tar");
    let config = put(b"{\"config\":1}", oci::OCI_CONFIG);
    let manifest_json = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{}\",\"config\":{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}}},\"layers\":[{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}}}]}}",
        oci::OCI_MANIFEST, config.media_type, config.digest, config.size,
        layer.media_type, layer.digest, layer.size
    );
    let manifest = put(manifest_json.as_bytes(), oci::OCI_MANIFEST);
    let leased = put(b"in-flight pull", "application/octet-stream");
    let garbage = put(b"nobody wants me", "application/octet-stream");
    let expired = put(b"held by an expired lease", "application/octet-stream");

    db.create_image(
        "default",
        Image {
            name: "img".into(),
            target: manifest.clone(),
            labels: Labels::new(),
            created: 0,
            updated: 0,
        },
    )
    .unwrap();
    // The image's chain: two committed layers, referenced from the config.
    sn.prepare(&snapshot_key("default", "l1-a"), "", Labels::new())
        .unwrap();
    sn.commit(
        &snapshot_key("default", "l1"),
        &snapshot_key("default", "l1-a"),
        Labels::new(),
    )
    .unwrap();
    sn.prepare(
        &snapshot_key("default", "l2-a"),
        &snapshot_key("default", "l1"),
        Labels::new(),
    )
    .unwrap();
    sn.commit(
        &snapshot_key("default", "l2"),
        &snapshot_key("default", "l2-a"),
        Labels::new(),
    )
    .unwrap();
    db.add_content_label(
        "default",
        &config.digest,
        "containerd.io/gc.ref.snapshot.overlayfs",
        "l2",
    )
    .unwrap();
    // A container's snapshot, and one nobody references.
    sn.prepare(
        &snapshot_key("default", "ctr"),
        &snapshot_key("default", "l2"),
        Labels::new(),
    )
    .unwrap();
    db.create_container(
        "default",
        Container {
            id: "ctr".into(),
            runtime: Runtime {
                name: "io.containerd.skiff.v2".into(),
                options: None,
            },
            snapshotter: "overlayfs".into(),
            snapshot_key: "ctr".into(),
            ..Default::default()
        },
    )
    .unwrap();
    sn.prepare(
        &snapshot_key("default", "stray"),
        &snapshot_key("default", "l1"),
        Labels::new(),
    )
    .unwrap();

    db.create_lease("default", "pull", Labels::new()).unwrap();
    db.add_lease_resource(
        "default",
        "pull",
        Resource {
            id: leased.digest.to_string(),
            kind: "content".into(),
        },
    )
    .unwrap();
    db.create_lease(
        "default",
        "old",
        labels(&[(LABEL_GC_EXPIRE, "2001-01-01T00:00:00Z")]),
    )
    .unwrap();
    db.add_lease_resource(
        "default",
        "old",
        Resource {
            id: expired.digest.to_string(),
            kind: "content".into(),
        },
    )
    .unwrap();
    db.add_content_label("default", &garbage.digest, "note", "stale")
        .unwrap();

    let report = gc::collect(&db, &store, &[&sn]).unwrap();
    let mut swept = report.blobs.clone();
    swept.sort();
    let mut want = vec![garbage.digest.clone(), expired.digest.clone()];
    want.sort();
    assert_eq!(swept, want);
    assert_eq!(
        report.snapshots,
        vec![("overlayfs".to_string(), snapshot_key("default", "stray"))]
    );
    assert_eq!(
        report.expired_leases,
        vec![("default".to_string(), "old".to_string())]
    );
    for d in [&layer, &config, &manifest, &leased] {
        assert!(store.has(d), "{} was collected", d.digest);
    }
    assert!(!store.has(&garbage));
    assert!(db
        .content_labels("default", &garbage.digest)
        .unwrap()
        .is_empty());
    for k in ["l1", "l2", "ctr"] {
        sn.stat(&snapshot_key("default", k)).unwrap();
    }

    // Without the lease the in-flight blob goes; without the image and
    // the container everything goes.
    db.delete_lease("default", "pull").unwrap();
    let report = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(report.blobs, vec![leased.digest.clone()]);
    db.delete_container("default", "ctr").unwrap();
    db.delete_image("default", "img").unwrap();
    let report = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(report.blobs.len(), 3);
    assert_eq!(report.snapshots.len(), 3, "{:?}", report.snapshots);
    assert!(sn.list().is_empty());
    assert!(content_is_empty(&store));
}

fn content_is_empty(store: &Store) -> bool {
    crate::image::content::list_blobs(store).unwrap().is_empty()
}

fn put_blob(store: &Store, data: &[u8], mt: &str) -> Descriptor {
    let d = desc(data, mt);
    store.put(&d, data).unwrap();
    d
}

fn manifest_of(store: &Store, config: &Descriptor, layer: &Descriptor) -> Descriptor {
    let json = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{}\",\"config\":{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}}},\"layers\":[{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}}}]}}",
        oci::OCI_MANIFEST, config.media_type, config.digest, config.size,
        layer.media_type, layer.digest, layer.size
    );
    put_blob(store, json.as_bytes(), oci::OCI_MANIFEST)
}

fn tagged(d: &Descriptor, name: &str) -> Descriptor {
    let mut d = d.clone();
    d.annotations = vec![(oci::REF_NAME.to_string(), name.to_string())];
    d
}

fn image(name: &str, target: &Descriptor) -> Image {
    Image {
        name: name.into(),
        target: target.clone(),
        labels: Labels::new(),
        created: 0,
        updated: 0,
    }
}

/// skiff-fetch pins the store from its first blob to its tag: a daemon
/// collection started meanwhile waits, then sees the blob tagged.
#[test]
fn gc_waits_for_a_pull_in_flight_and_keeps_its_blobs() {
    let tmp = Scratch::new("gcpin");
    let store = Store::open(&tmp.0.join("content")).unwrap();
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    let pin = store.pin().unwrap();
    let blob = put_blob(
        &store,
        b"pulled, not tagged yet",
        "application/octet-stream",
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let report = std::thread::scope(|s| {
        let collector = s.spawn(|| {
            let r = gc::collect(&db, &store, &[&sn]).unwrap();
            tx.send(()).unwrap();
            r
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(500))
                .is_err(),
            "a collection ran while a pull was in flight"
        );
        store.tag(&tagged(&blob, "example.com/a:1")).unwrap();
        drop(pin);
        collector.join().unwrap()
    });
    assert!(report.blobs.is_empty(), "{report:?}");
    assert!(store.has(&blob));
}

/// `skiff-fetch rm` in a store the daemon uses only untags: the daemon's
/// content stays, and the daemon's collection takes the untagged blobs.
/// In a store the daemon never used, rm still collects.
#[test]
fn fetch_rm_leaves_the_daemons_content_to_the_daemons_gc() {
    let tmp = Scratch::new("gcrm");
    let store = Store::open(&tmp.0.join("content")).unwrap();
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    let layer = put_blob(
        &store,
        b"daemon layer",
        "application/vnd.oci.image.layer.v1.tar",
    );
    let config = put_blob(&store, b"{\"daemon\":1}", oci::OCI_CONFIG);
    let daemons = manifest_of(&store, &config, &layer);
    db.create_image("default", image("daemon/img:1", &daemons))
        .unwrap();
    store.delegate_collection().unwrap();
    let fetched = put_blob(&store, b"{\"fetched\":1}", oci::OCI_CONFIG);
    store.tag(&tagged(&fetched, "example.com/f:1")).unwrap();

    assert!(store.remove("example.com/f:1").unwrap());
    assert!(store.find("example.com/f:1").unwrap().is_none());
    for d in [&layer, &config, &daemons, &fetched] {
        assert!(store.has(d), "rm deleted {}", d.digest);
    }
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.blobs, vec![fetched.digest.clone()]);
    for d in [&layer, &config, &daemons] {
        assert!(store.has(d), "{}", d.digest);
    }

    let alone = Store::open(&tmp.0.join("alone")).unwrap();
    let b = put_blob(&alone, b"only skiff-fetch", "application/octet-stream");
    alone.tag(&tagged(&b, "example.com/b:1")).unwrap();
    assert!(alone.remove("example.com/b:1").unwrap());
    assert!(!alone.has(&b), "without the daemon, rm collects");
}

/// Labels added to one blob from many threads at once are all kept.
#[test]
fn concurrent_content_labels_are_not_lost() {
    let tmp = Scratch::new("labels");
    let db = Db::open(&tmp.0).unwrap();
    let d = Digest::of(b"shared");
    std::thread::scope(|s| {
        for t in 0..8 {
            let db = &db;
            let d = &d;
            s.spawn(move || {
                for i in 0..16 {
                    db.add_content_label("default", d, &format!("t{t}.{i}"), "x")
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(db.content_labels("default", &d).unwrap().len(), 8 * 16);
}

/// What is made while a collection runs is not swept by it: a blob
/// written, a snapshot prepared, and a held active snapshot committed
/// under a new name (its id was marked) between marking and sweeping.
#[test]
fn gc_sweeps_only_what_existed_when_marking_began() {
    let tmp = Scratch::new("gcrace");
    let store = Store::open(&tmp.0.join("content")).unwrap();
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    let key = |k: &str| snapshot_key("default", k);
    sn.prepare(&key("extract"), "", Labels::new()).unwrap();
    sn.prepare(&key("stray"), "", Labels::new()).unwrap();
    db.create_lease("default", "pull", Labels::new()).unwrap();
    db.add_lease_resource(
        "default",
        "pull",
        Resource {
            id: "extract".into(),
            kind: "snapshots/overlayfs".into(),
        },
    )
    .unwrap();
    let late = desc(b"written during the collection", "application/octet-stream");
    let report = gc::collect_with(&db, &store, &[&sn], &|| {
        store.put(&late, b"written during the collection").unwrap();
        sn.commit(&key("layer"), &key("extract"), Labels::new())
            .unwrap();
        sn.prepare(&key("new"), "", Labels::new()).unwrap();
    })
    .unwrap();
    assert!(report.blobs.is_empty(), "{report:?}");
    assert_eq!(
        report.snapshots,
        vec![("overlayfs".to_string(), key("stray"))]
    );
    assert!(store.has(&late));
    sn.stat(&key("layer")).unwrap();
    sn.stat(&key("new")).unwrap();
}

/// Partial downloads: an old one nobody holds goes; one a lease holds, one
/// a writer has open, and a recent one stay.
#[test]
fn gc_expires_abandoned_partial_downloads() {
    let tmp = Scratch::new("ingest");
    let store = Store::open(&tmp.0.join("content")).unwrap();
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    let old = std::time::SystemTime::now() - gc::INGEST_MAX_AGE * 2;
    let partial = |data: &[u8], age: Option<std::time::SystemTime>| {
        let d = desc(data, "application/octet-stream");
        let name = format!("{}-{}", d.digest.algorithm().name(), d.digest.hex());
        let p = store.root().join("ingest").join(&name);
        fs::write(&p, &data[..2]).unwrap();
        if let Some(t) = age {
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        (d, name)
    };
    let (_, abandoned) = partial(b"abandoned", Some(old));
    let (held, held_name) = partial(b"held by a lease", Some(old));
    let (_, recent) = partial(b"recent", None);
    let (open_d, open_name) = partial(b"being written", None);
    let writer = store.ingest(&open_d).unwrap();
    fs::File::options()
        .write(true)
        .open(store.root().join("ingest").join(&open_name))
        .unwrap()
        .set_modified(old)
        .unwrap();
    db.create_lease("default", "pull", Labels::new()).unwrap();
    db.add_lease_resource(
        "default",
        "pull",
        Resource {
            id: held.digest.to_string(),
            kind: "ingests".into(),
        },
    )
    .unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.ingests, vec![abandoned.clone()]);
    let left: Vec<String> = crate::image::content::list_ingests(&store)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut want = vec![held_name, recent, open_name];
    want.sort();
    assert_eq!(left, want);
    drop(writer);
}

/// An image whose target is a multi-platform index keeps every platform's
/// manifest, config and layer; deleting the image frees them all.
#[test]
fn gc_keeps_every_platform_of_an_index() {
    let tmp = Scratch::new("gcindex");
    let store = Store::open(&tmp.0.join("content")).unwrap();
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    let mut kept = Vec::new();
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layer = put_blob(
            &store,
            format!("layer {arch}").as_bytes(),
            "application/vnd.oci.image.layer.v1.tar",
        );
        let config = put_blob(
            &store,
            format!("{{\"a\":\"{arch}\"}}").as_bytes(),
            oci::OCI_CONFIG,
        );
        let m = manifest_of(&store, &config, &layer);
        entries.push(format!(
            "{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{},\"platform\":{{\"architecture\":\"{arch}\",\"os\":\"linux\"}}}}",
            m.media_type, m.digest, m.size
        ));
        kept.extend([layer, config, m]);
    }
    let index = put_blob(
        &store,
        format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{}\",\"manifests\":[{}]}}",
            oci::OCI_INDEX,
            entries.join(",")
        )
        .as_bytes(),
        oci::OCI_INDEX,
    );
    kept.push(index.clone());
    let stray = put_blob(&store, b"stray", "application/octet-stream");
    db.create_image("default", image("multi:1", &index))
        .unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.blobs, vec![stray.digest]);
    for d in &kept {
        assert!(store.has(d), "{} was collected", d.digest);
    }
    db.delete_image("default", "multi:1").unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.blobs.len(), kept.len());
    assert!(content_is_empty(&store));
}

/// A container keeps the snapshot of its own namespace only: the same key
/// in another namespace is another snapshot, and is collected.
#[test]
fn a_containers_snapshot_is_kept_in_its_namespace_only() {
    let tmp = Scratch::new("gcns");
    let store = Store::open(&tmp.0.join("content")).unwrap();
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    for ns in ["ns1", "ns2"] {
        sn.prepare(&snapshot_key(ns, "rootfs"), "", Labels::new())
            .unwrap();
    }
    db.create_container(
        "ns1",
        Container {
            id: "c".into(),
            runtime: Runtime {
                name: "io.containerd.skiff.v2".into(),
                options: None,
            },
            snapshotter: "overlayfs".into(),
            snapshot_key: "rootfs".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(
        r.snapshots,
        vec![("overlayfs".to_string(), snapshot_key("ns2", "rootfs"))]
    );
    sn.stat(&snapshot_key("ns1", "rootfs")).unwrap();
}

/// A blob two namespaces have: one namespace's unreferenced record goes
/// at collection, the blob stays while the other's image reaches it, and
/// goes with the last reference.
#[test]
fn gc_keeps_a_blob_while_any_namespace_reaches_it() {
    let tmp = Scratch::new("nsblob");
    let store = Store::open(&tmp.0.join("content")).unwrap();
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    let layer = put_blob(&store, b"layer", "application/vnd.oci.image.layer.v1.tar");
    let config = put_blob(&store, b"{}", oci::OCI_CONFIG);
    let manifest = manifest_of(&store, &config, &layer);
    for ns in ["a", "b"] {
        for d in [&layer, &config, &manifest] {
            db.add_content(ns, &d.digest, d.size, Labels::new())
                .unwrap();
        }
    }
    db.create_image("a", image("img", &manifest)).unwrap();

    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert!(r.blobs.is_empty(), "{r:?}");
    assert_eq!(r.records.len(), 3, "b's records go: {r:?}");
    assert!(r.records.iter().all(|(ns, _)| ns == "b"));
    assert!(db.content("b", &layer.digest).unwrap().is_none());
    assert!(db.content("a", &layer.digest).unwrap().is_some());
    assert!(store.has(&layer));

    db.delete_image("a", "img").unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.blobs.len(), 3, "{r:?}");
    assert!(db.contents("a").unwrap().is_empty());
    assert!(content_is_empty(&store));
}

/// Ref ingests (content Write) resume with their bytes and digest, lock
/// out a second writer, and expire unless a lease holds them.
#[test]
fn ref_ingests_resume_lock_and_expire() {
    use crate::image::content as ic;
    let tmp = Scratch::new("refingest");
    let store = Store::open(&tmp.0.join("content")).unwrap();
    let db = Db::open(&tmp.0.join("meta")).unwrap();
    let sn = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    let data = b"hello, ingest";
    let d = Digest::of(data);
    let mut w = ic::open_ref_ingest(&store, "ns", "r", data.len() as u64, Some(&d))
        .unwrap()
        .unwrap();
    assert!(w.created);
    w.write(&data[..5]).unwrap();
    assert!(
        ic::open_ref_ingest(&store, "ns", "r", 0, None)
            .unwrap()
            .is_none(),
        "locked while open"
    );
    drop(w);
    let w = ic::open_ref_ingest(&store, "ns", "r", 0, None)
        .unwrap()
        .unwrap();
    assert!(!w.created);
    assert_eq!(w.offset(), 5);
    assert_eq!(w.digest(), Digest::of(&data[..5]));
    assert_eq!(w.status().expected.as_ref(), Some(&d));
    drop(w);
    // The same ref in another namespace is another ingest.
    let other = ic::open_ref_ingest(&store, "ns2", "r", 0, None)
        .unwrap()
        .unwrap();
    assert_eq!(other.offset(), 0);
    drop(other);
    assert_eq!(ic::list_ref_ingests(&store, "ns").len(), 1);

    // Old: the leased one stays, the other goes.
    let old = std::time::SystemTime::now() - gc::INGEST_MAX_AGE * 2;
    for e in fs::read_dir(store.root().join("ingest")).unwrap().flatten() {
        fs::File::options()
            .write(true)
            .open(e.path().join("data"))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    db.create_lease("ns", "l", Labels::new()).unwrap();
    db.add_lease_resource(
        "ns",
        "l",
        Resource {
            id: "r".into(),
            kind: "ingests".into(),
        },
    )
    .unwrap();
    let r = gc::collect(&db, &store, &[&sn]).unwrap();
    assert_eq!(r.ingests, vec!["ns2/r".to_string()]);
    let w = ic::open_ref_ingest(&store, "ns", "r", 0, None)
        .unwrap()
        .unwrap();
    assert_eq!(w.offset(), 5);
    let mut w = w;
    w.write(&data[5..]).unwrap();
    let (got, size, new) = w.commit(data.len() as u64, Some(&d)).unwrap();
    assert_eq!((got, size, new), (d.clone(), data.len() as u64, true));
    assert!(ic::ref_ingest_status(&store, "ns", "r").is_none());
    assert_eq!(fs::read(store.blob_path(&d)).unwrap(), data);
}
