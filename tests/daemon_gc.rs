//! Containers and pulls against the daemon's garbage collection: a
//! Create that fails leaves no snapshot behind, a container with a task
//! cannot be deleted, and a container's snapshot key cannot be changed.
//!
//! The daemon fixture follows tests/daemon_basic.rs (each test has its own
//! root, state, socket and namespace; Drop kills and unmounts what is left).

#[path = "fetch_support/mod.rs"]
mod support;

use prost::Message;
use skiff::daemon::spec::{self, SpecOptions, SPEC_TYPE_URL};
use skiff::image::oci::{self, Document};
use skiff::proto::services::{
    containers as pc, content as pct, images as pi, pull as pp, snapshots as ps, tasks as pt,
    FieldMask,
};
use skiff::proto::task as st;
use skiff::proto::types::{Any, Empty};
use skiff::ttrpc::{Client, Code, Status};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

include!("common/daemon.rs");

/// The names of the namespace's overlayfs snapshots.
fn snapshot_names(c: &Client, ns: &str) -> Vec<String> {
    let snaps: Vec<ps::ListSnapshotsResponse> = stream(
        c,
        ns,
        ps::SERVICE,
        "List",
        &ps::ListSnapshotsRequest {
            snapshotter: "overlayfs".into(),
            ..Default::default()
        },
    )
    .expect("list snapshots");
    snaps
        .into_iter()
        .flat_map(|s| s.info)
        .map(|i| i.name)
        .collect()
}

fn try_create(c: &Client, ns: &str, container: pc::Container) -> Result<pc::Container, Status> {
    call::<_, pc::CreateContainerResponse>(
        c,
        ns,
        pc::SERVICE,
        "Create",
        &pc::CreateContainerRequest {
            container: Some(container),
        },
    )
    .map(|r| r.container.unwrap())
}

/// A container the daemon prepares the snapshot `key` for, from `image`.
fn container(image: &pi::Image, id: &str, key: &str) -> pc::Container {
    pc::Container {
        id: id.into(),
        image: image.name.clone(),
        runtime: Some(pc::Runtime {
            name: "io.containerd.skiff.v2".into(),
            options: None,
        }),
        snapshotter: "overlayfs".into(),
        snapshot_key: key.into(),
        ..Default::default()
    }
}

#[test]
fn a_create_that_fails_leaves_no_snapshot() {
    let work = TempDir::new("daemon-gc-work");
    let Some((_reg, reference)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let image = pull(&c, ns, &reference);
    let before = snapshot_names(&c, ns);

    let e = try_create(&c, ns, container(&image, "bad/id", "snap-bad-id")).unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    let mut bad_labels = container(&image, "good-id", "snap-bad-labels");
    bad_labels.labels.insert(String::new(), "v".into());
    let e = try_create(&c, ns, bad_labels).unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    assert_eq!(
        snapshot_names(&c, ns),
        before,
        "a failed Create left a snapshot"
    );

    // A racing (duplicate) Create must not take the first one's snapshot.
    try_create(&c, ns, container(&image, "c1", "c1")).expect("create c1");
    let e = try_create(&c, ns, container(&image, "c1", "c1")).unwrap_err();
    assert_eq!(e.code, Code::AlreadyExists, "{e}");
    assert!(snapshot_names(&c, ns).iter().any(|n| n == "c1"));
    remove_container(&c, ns, "c1");
}

#[test]
fn a_container_with_a_task_is_not_deleted_and_keeps_its_snapshot_key() {
    let work = TempDir::new("daemon-gc-work");
    let Some((_reg, reference)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.clone();
    let ns = ns.as_str();
    let image = pull(&c, ns, &reference);
    create_container(&c, ns, &image, "c1", &["sleep", "100"]);

    let update = |paths: &[&str], key: &str| {
        let mut new = container(&image, "c1", key);
        new.spec = Some(spec_for(&c, ns, &image, "c1", &["sleep", "100"]));
        call::<_, pc::UpdateContainerResponse>(
            &c,
            ns,
            pc::SERVICE,
            "Update",
            &pc::UpdateContainerRequest {
                container: Some(new),
                update_mask: Some(FieldMask {
                    paths: paths.iter().map(|p| p.to_string()).collect(),
                }),
            },
        )
    };
    let e = update(&["snapshot_key"], "other").unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    let e = update(&[], "other").unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    let e = update(&["no_such_field"], "c1").unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    let kept = update(&["labels", "spec"], "c1").expect("update labels and spec");
    assert_eq!(kept.container.unwrap().snapshot_key, "c1");

    d.start_task(&c, "c1");
    let e = call::<_, Empty>(
        &c,
        ns,
        pc::SERVICE,
        "Delete",
        &pc::DeleteContainerRequest { id: "c1".into() },
    )
    .unwrap_err();
    assert_eq!(e.code, Code::FailedPrecondition, "{e}");
    let got: pc::GetContainerResponse = call(
        &c,
        ns,
        pc::SERVICE,
        "Get",
        &pc::GetContainerRequest { id: "c1".into() },
    )
    .expect("the container is still there");
    assert_eq!(got.container.unwrap().id, "c1");

    let _: Empty = call(
        &c,
        ns,
        pt::SERVICE,
        "Kill",
        &pt::KillRequest {
            container_id: "c1".into(),
            signal: 9,
            all: true,
            ..Default::default()
        },
    )
    .unwrap();
    let _: pt::WaitResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Wait",
        &pt::WaitRequest {
            container_id: "c1".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let _: pt::DeleteResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Delete",
        &pt::DeleteTaskRequest {
            container_id: "c1".into(),
        },
    )
    .unwrap();
    remove_container(&c, ns, "c1");
}

/// Every index.json under `dir` that mentions `needle`.
fn indexes_naming(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(indexes_naming(&p, needle));
        } else if e.file_name() == "index.json"
            && fs::read_to_string(&p).is_ok_and(|s| s.contains(needle))
        {
            found.push(p);
        }
    }
    found
}

#[test]
fn a_pull_that_fails_to_unpack_leaves_no_gc_root() {
    let work = TempDir::new("daemon-gc-work");
    let Some((_reg, reference)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let e = stream::<_, pp::PullProgress>(
        &c,
        ns,
        pp::SERVICE,
        pp::METHOD,
        &pp::PullRequest {
            reference: reference.clone(),
            plain_http: true,
            unpack: true,
            snapshotter: "no-such-snapshotter".into(),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_ne!(e.code, Code::Ok, "{e}");
    let left = indexes_naming(&d.dir.join("root"), &reference);
    assert!(left.is_empty(), "the failed pull's tag stays: {left:?}");
    let images: pi::ListImagesResponse = call(
        &c,
        ns,
        pi::SERVICE,
        "List",
        &pi::ListImagesRequest::default(),
    )
    .unwrap();
    assert!(images.images.is_empty(), "{images:?}");
    // A retry with a working snapshotter still pulls.
    let image = pull(&c, ns, &reference);
    assert_eq!(image.name, reference);
}
