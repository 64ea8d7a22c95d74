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
        kind(db.delete_namespace("default", &[])),
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
    db.set_content_labels("default", &target.digest, Labels::new())
        .unwrap();
    db.delete_namespace("default", &[]).unwrap();
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
        kind(db.delete_namespace("ns1", &[&sn])),
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
    db.delete_namespace("ns1", &[&sn]).unwrap();
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
