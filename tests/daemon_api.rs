//! The daemon's containerd API as containerd's own clients drive it
//! (client-side pull: content Write, then snapshots Prepare + diff Apply +
//! Commit), over ttrpc with skiff's client against a real daemon:
//! resumable content writes by ref and their errors, content seen per
//! namespace, snapshots with a real busybox layer applied, mounted and
//! read, a diff of a changed snapshot that applies back, and collection
//! of a prepared snapshot no lease holds.
//!
//! The daemon fixture is tests/common/daemon.rs (own root, state, socket;
//! Drop stops the daemon and unmounts what is left under its directory).
#![allow(dead_code)] // the shared fixture has helpers this file does not use

#[path = "fetch_support/mod.rs"]
mod support;

use prost::Message;
use skiff::daemon::spec::{self, SpecOptions, SPEC_TYPE_URL};
use skiff::image::digest::Digest;
use skiff::image::oci::{self, Document};
use skiff::proto::services::{
    containers as pc, content as pct, diff as pd, images as pi, leases as pl, pull as pp,
    snapshots as ps, tasks as pt, FieldMask,
};
use skiff::proto::task as st;
use skiff::proto::types::{Any, Descriptor, Empty, Mount};
use skiff::ttrpc::{Client, ClientStream, Code, Status};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

include!("common/daemon.rs");

use pct::write_action as act;

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

fn md(ns: &str, lease: Option<&str>) -> Vec<(String, String)> {
    let mut v = vec![(NS_KEY.to_string(), ns.to_string())];
    if let Some(l) = lease {
        v.push(("containerd-lease".to_string(), l.to_string()));
    }
    v
}

fn call_leased<Req: Message, Resp: Message + Default>(
    c: &Client,
    ns: &str,
    lease: &str,
    service: &str,
    method: &str,
    req: &Req,
) -> Result<Resp, Status> {
    let out = c.call(
        service,
        method,
        req.encode_to_vec(),
        Some(Duration::from_secs(60)),
        &md(ns, Some(lease)),
    )?;
    Resp::decode(out.as_slice()).map_err(|e| Status::new(Code::Internal, e.to_string()))
}

/// A Write session: the stream and the answer to its first message.
fn open_write(
    c: &Client,
    ns: &str,
    first: &pct::WriteContentRequest,
) -> Result<(ClientStream, pct::WriteContentResponse), Status> {
    let s = c.stream(
        pct::SERVICE,
        "Write",
        first.encode_to_vec(),
        true,
        &md(ns, None),
    )?;
    let r = next(&s)?;
    Ok((s, r))
}

/// [`open_write`] as containerd's client does it: a ref still held by a
/// session that is closing is Unavailable for a moment, and retried.
fn reopen_write(
    c: &Client,
    ns: &str,
    first: &pct::WriteContentRequest,
) -> Result<(ClientStream, pct::WriteContentResponse), Status> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match open_write(c, ns, first) {
            Err(e) if e.code == Code::Unavailable && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r,
        }
    }
}

fn next(s: &ClientStream) -> Result<pct::WriteContentResponse, Status> {
    let m = s
        .recv(Some(Duration::from_secs(60)))?
        .ok_or_else(|| Status::new(Code::Unknown, "the stream ended without an answer"))?;
    Ok(pct::WriteContentResponse::decode(m.as_slice()).unwrap())
}

fn send(
    s: &ClientStream,
    req: pct::WriteContentRequest,
) -> Result<pct::WriteContentResponse, Status> {
    s.send(&req.encode_to_vec())?;
    next(s)
}

fn stat_req(r: &str, total: usize, expected: &Digest) -> pct::WriteContentRequest {
    pct::WriteContentRequest {
        action: act::STAT,
        r#ref: r.into(),
        total: total as i64,
        expected: expected.to_string(),
        ..Default::default()
    }
}

fn data_req(action: i32, offset: usize, data: &[u8]) -> pct::WriteContentRequest {
    pct::WriteContentRequest {
        action,
        offset: offset as i64,
        data: data.to_vec(),
        ..Default::default()
    }
}

/// Write a whole blob in one session (the way ctr's content.Copy does).
fn write_blob(c: &Client, ns: &str, r: &str, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    let (s, st) = open_write(c, ns, &stat_req(r, data.len(), &d)).expect("open write");
    let mut off = st.offset as usize;
    for chunk in data[off..].chunks(1 << 20) {
        let resp = send(&s, data_req(act::WRITE, off, chunk)).expect("write");
        off += chunk.len();
        assert_eq!(resp.offset as usize, off);
    }
    let mut commit = data_req(act::COMMIT, off, &[]);
    commit.total = data.len() as i64;
    commit.expected = d.to_string();
    let resp = send(&s, commit).expect("commit");
    assert_eq!(resp.digest, d.to_string());
    d
}

fn info(c: &Client, ns: &str, d: &Digest) -> Result<pct::Info, Status> {
    let r: pct::InfoResponse = call(
        c,
        ns,
        pct::SERVICE,
        "Info",
        &pct::InfoRequest {
            digest: d.to_string(),
        },
    )?;
    Ok(r.info.unwrap())
}

fn ingest_status(c: &Client, ns: &str, r: &str) -> Result<pct::Status, Status> {
    let s: pct::StatusResponse = call(
        c,
        ns,
        pct::SERVICE,
        "Status",
        &pct::StatusRequest { r#ref: r.into() },
    )?;
    Ok(s.status.unwrap())
}

fn expect_code<T>(r: Result<T, Status>, code: Code, needle: &str) -> Status {
    let Err(e) = r else {
        panic!("expected {code:?} naming {needle:?}, got success");
    };
    assert_eq!(e.code, code, "{e:?}");
    assert!(e.message.contains(needle), "{e:?} should name {needle:?}");
    e
}

/// Deterministic bytes that do not compress to nothing.
fn blob_bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// No ref ingest is left in the daemon's content store.
fn assert_no_ingests(d: &Daemon) {
    let dir = d.dir.join("root/io.containerd.content.v1.content/ingest");
    let left: Vec<String> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ref-"))
        .collect();
    assert!(left.is_empty(), "ingests left: {left:?}");
}

#[test]
fn content_write_resumes_by_ref_and_checks_what_it_commits() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let data = blob_bytes(3 << 20, 1);
    let digest = Digest::of(&data);
    let mb = 1 << 20;

    // Two chunks, then the client goes away without committing.
    let (s, st) = open_write(&c, ns, &stat_req("r1", data.len(), &digest)).unwrap();
    assert_eq!(st.offset, 0);
    assert_eq!(st.total, data.len() as i64);
    send(&s, data_req(act::WRITE, 0, &data[..mb])).unwrap();
    let r = send(&s, data_req(act::WRITE, mb, &data[mb..2 * mb])).unwrap();
    assert_eq!(r.offset as usize, 2 * mb);
    assert_eq!(r.digest, Digest::of(&data[..2 * mb]).to_string());
    // While a session has the ref, another is refused as containerd does.
    expect_code(
        open_write(&c, ns, &stat_req("r1", data.len(), &digest)),
        Code::Unavailable,
        "r1",
    );
    s.close_send().unwrap();
    drop(s);

    let st = ingest_status(&c, ns, "r1").unwrap();
    assert_eq!(st.offset as usize, 2 * mb);
    assert_eq!(st.total as usize, data.len());
    assert_eq!(st.expected, digest.to_string());
    let all: pct::ListStatusesResponse = call(
        &c,
        ns,
        pct::SERVICE,
        "ListStatuses",
        &pct::ListStatusesRequest::default(),
    )
    .unwrap();
    assert_eq!(all.statuses.len(), 1, "{all:?}");

    // Resume: a STAT says where; a write elsewhere is refused and changes nothing.
    let (s, st) = reopen_write(&c, ns, &stat_req("r1", data.len(), &digest)).unwrap();
    assert_eq!(st.offset as usize, 2 * mb);
    expect_code(
        send(&s, data_req(act::WRITE, 5, &data[5..10])),
        Code::OutOfRange,
        "r1",
    );
    drop(s);
    let (s, st) = reopen_write(&c, ns, &stat_req("r1", data.len(), &digest)).unwrap();
    assert_eq!(st.offset as usize, 2 * mb);
    let mut commit = data_req(act::COMMIT, 2 * mb, &data[2 * mb..]);
    commit.expected = digest.to_string();
    let r = send(&s, commit).unwrap();
    assert_eq!(r.digest, digest.to_string());
    assert_eq!(r.offset as usize, data.len());
    drop(s);
    assert_eq!(info(&c, ns, &digest).unwrap().size as usize, data.len());
    assert_eq!(read_blob(&c, ns, &digest.to_string()), data);
    expect_code(ingest_status(&c, ns, "r1"), Code::NotFound, "r1");

    // A second write of what the namespace has.
    expect_code(
        open_write(&c, ns, &stat_req("again", data.len(), &digest)),
        Code::AlreadyExists,
        &digest.to_string(),
    );

    // Wrong digest, wrong size: refused at commit, and the ingest is gone.
    let other = blob_bytes(1000, 2);
    let wrong = Digest::of(b"not these bytes");
    let (s, _) = open_write(&c, ns, &stat_req("r2", other.len(), &wrong)).unwrap();
    expect_code(
        send(&s, data_req(act::COMMIT, 0, &other)),
        Code::FailedPrecondition,
        "unexpected digest",
    );
    drop(s);
    expect_code(ingest_status(&c, ns, "r2"), Code::NotFound, "r2");
    let (s, _) = open_write(
        &c,
        ns,
        &stat_req("r3", other.len() + 10, &Digest::of(&other)),
    )
    .unwrap();
    send(&s, data_req(act::WRITE, 0, &other)).unwrap();
    let e = expect_code(
        send(&s, data_req(act::COMMIT, other.len(), &[])),
        Code::FailedPrecondition,
        "unexpected size",
    );
    assert!(e.message.contains("r3"), "{e}");
    drop(s);
    expect_code(ingest_status(&c, ns, "r3"), Code::NotFound, "r3");
    expect_code(
        info(&c, ns, &Digest::of(&other)),
        Code::NotFound,
        "not found",
    );

    // Abort drops a partial write.
    let (s, _) = open_write(&c, ns, &stat_req("r4", other.len(), &Digest::of(&other))).unwrap();
    send(&s, data_req(act::WRITE, 0, &other[..100])).unwrap();
    drop(s);
    // The session may still be closing (then the ref is locked a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match call::<_, Empty>(
            &c,
            ns,
            pct::SERVICE,
            "Abort",
            &pct::AbortRequest { r#ref: "r4".into() },
        ) {
            Err(e) if e.code == Code::Unavailable && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => {
                r.unwrap();
                break;
            }
        };
    }
    expect_code(ingest_status(&c, ns, "r4"), Code::NotFound, "r4");
    expect_code(
        call::<_, Empty>(
            &c,
            ns,
            pct::SERVICE,
            "Abort",
            &pct::AbortRequest { r#ref: "r4".into() },
        ),
        Code::NotFound,
        "r4",
    );

    // Bad first messages leave nothing.
    let mut no_ref = stat_req("", 10, &digest);
    no_ref.r#ref.clear();
    expect_code(open_write(&c, ns, &no_ref), Code::InvalidArgument, "ref");
    let mut bad = stat_req("r5", 10, &digest);
    bad.expected = "sha256:nothex".into();
    expect_code(open_write(&c, ns, &bad), Code::InvalidArgument, "r5");
    let (s, _) = open_write(&c, ns, &stat_req("r6", 10, &Digest::of(b"x"))).unwrap();
    expect_code(
        send(&s, data_req(act::WRITE, 3, b"abc")),
        Code::OutOfRange,
        "r6",
    );
    drop(s);
    assert_no_ingests(&d);

    // A write with no expectation learns its digest at commit (a push).
    let pushed = blob_bytes(5000, 3);
    let s = c
        .stream(
            pct::SERVICE,
            "Write",
            pct::WriteContentRequest {
                action: act::WRITE,
                r#ref: "push".into(),
                data: pushed.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            true,
            &md(ns, None),
        )
        .unwrap();
    assert_eq!(next(&s).unwrap().offset as usize, pushed.len());
    let r = send(&s, data_req(act::COMMIT, pushed.len(), &[])).unwrap();
    assert_eq!(r.digest, Digest::of(&pushed).to_string());
    drop(s);
    info(&c, ns, &Digest::of(&pushed)).unwrap();
    assert_no_ingests(&d);
}

/// The blob file of `d` in the daemon's content store.
fn blob_file(daemon: &Daemon, d: &Digest) -> PathBuf {
    daemon
        .dir
        .join("root/io.containerd.content.v1.content/blobs/sha256")
        .join(d.hex())
}

/// A session whose first message names a blob another namespace stored
/// ("shared"): data for it never brings the daemon down, and COMMIT
/// records only what was checked and is still there.
#[test]
fn content_write_onto_a_shared_blob() {
    let d = Daemon::new();
    let c = d.client();
    let owner = format!("{}-a", d.ns);
    let data = blob_bytes(10_000, 7);
    let digest = write_blob(&c, &owner, "w", &data);
    let empty = write_blob(&c, &owner, "e", b"");

    // Data past a whole blob: OutOfRange (it aborted the daemon).
    let ns = format!("{}-b", d.ns);
    let (s, st) = open_write(&c, &ns, &stat_req("s1", data.len(), &digest)).unwrap();
    assert_eq!(st.offset as usize, data.len());
    expect_code(
        send(&s, data_req(act::WRITE, data.len(), b"more")),
        Code::OutOfRange,
        "complete",
    );
    drop(s);
    // Data at offset 0 of an empty shared blob: a real ingest of its own.
    let (s, st) = open_write(&c, &ns, &stat_req("s2", 0, &empty)).unwrap();
    assert_eq!(st.offset, 0);
    let r = send(&s, data_req(act::WRITE, 0, b"abc")).unwrap();
    assert_eq!(r.offset, 3);
    let mut commit = data_req(act::COMMIT, 3, &[]);
    commit.expected = Digest::of(b"abc").to_string();
    assert_eq!(
        send(&s, commit).unwrap().digest,
        Digest::of(b"abc").to_string()
    );
    drop(s);
    assert_eq!(info(&c, &ns, &Digest::of(b"abc")).unwrap().size, 3);

    // COMMIT naming another digest than the one the session found.
    let other = Digest::of(b"never written");
    let (s, _) = open_write(&c, &ns, &stat_req("s3", data.len(), &digest)).unwrap();
    let mut commit = data_req(act::COMMIT, data.len(), &[]);
    commit.expected = other.to_string();
    expect_code(
        send(&s, commit),
        Code::FailedPrecondition,
        &digest.to_string(),
    );
    drop(s);
    expect_code(info(&c, &ns, &other), Code::NotFound, &other.to_string());

    // The blob went (collected) between the first message and COMMIT.
    let (s, _) = open_write(&c, &ns, &stat_req("s4", data.len(), &digest)).unwrap();
    fs::remove_file(blob_file(&d, &digest)).unwrap();
    let mut commit = data_req(act::COMMIT, data.len(), &[]);
    commit.expected = digest.to_string();
    expect_code(send(&s, commit), Code::NotFound, &digest.to_string());
    drop(s);
    expect_code(info(&c, &ns, &digest), Code::NotFound, &digest.to_string());
    // The daemon still answers.
    info(&c, &owner, &empty).unwrap();
    assert_no_ingests(&d);
}

#[test]
fn content_is_seen_per_namespace() {
    let d = Daemon::new();
    let c = d.client();
    let (a, b) = (format!("{}-a", d.ns), format!("{}-b", d.ns));
    let data = blob_bytes(100_000, 4);
    let digest = write_blob(&c, &a, "w", &data);

    expect_code(info(&c, &b, &digest), Code::NotFound, &digest.to_string());
    expect_code(
        stream::<_, pct::ReadContentResponse>(
            &c,
            &b,
            pct::SERVICE,
            "Read",
            &pct::ReadContentRequest {
                digest: digest.to_string(),
                ..Default::default()
            },
        ),
        Code::NotFound,
        &digest.to_string(),
    );
    let listed: Vec<pct::ListContentResponse> = stream(
        &c,
        &b,
        pct::SERVICE,
        "List",
        &pct::ListContentRequest::default(),
    )
    .unwrap();
    assert!(listed.iter().all(|l| l.info.is_empty()), "{listed:?}");

    // Written in b too: the stored blob is shared, the write only commits.
    let (s, st) = open_write(&c, &b, &stat_req("w", data.len(), &digest)).unwrap();
    assert_eq!(st.offset as usize, data.len(), "a shared blob is complete");
    let mut commit = data_req(act::COMMIT, data.len(), &[]);
    commit.expected = digest.to_string();
    commit.labels = [("owner".to_string(), "b".to_string())].into();
    assert_eq!(send(&s, commit).unwrap().digest, digest.to_string());
    drop(s);
    assert_eq!(info(&c, &b, &digest).unwrap().labels["owner"], "b");
    assert!(info(&c, &a, &digest).unwrap().labels.is_empty());

    // Update with field paths, in one namespace only.
    let u: pct::UpdateResponse = call(
        &c,
        &a,
        pct::SERVICE,
        "Update",
        &pct::UpdateRequest {
            info: Some(pct::Info {
                digest: digest.to_string(),
                labels: [
                    ("x".to_string(), "1".to_string()),
                    ("y".to_string(), "2".to_string()),
                ]
                .into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["labels.x".into()],
            }),
        },
    )
    .unwrap();
    assert_eq!(
        u.info.unwrap().labels,
        [("x".to_string(), "1".to_string())].into()
    );
    expect_code(
        call::<_, pct::UpdateResponse>(
            &c,
            &a,
            pct::SERVICE,
            "Update",
            &pct::UpdateRequest {
                info: Some(pct::Info {
                    digest: digest.to_string(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["size".into()],
                }),
            },
        ),
        Code::InvalidArgument,
        "size",
    );
    assert!(!info(&c, &b, &digest).unwrap().labels.contains_key("x"));

    // rm in a leaves b's; rm in b too and the blob is gone from disk.
    let rm = |ns: &str| {
        call::<_, Empty>(
            &c,
            ns,
            pct::SERVICE,
            "Delete",
            &pct::DeleteContentRequest {
                digest: digest.to_string(),
            },
        )
    };
    rm(&a).unwrap();
    expect_code(info(&c, &a, &digest), Code::NotFound, "not found");
    assert_eq!(read_blob(&c, &b, &digest.to_string()), data);
    let blob = d
        .dir
        .join("root/io.containerd.content.v1.content/blobs/sha256")
        .join(digest.hex());
    assert!(blob.exists());
    rm(&b).unwrap();
    assert!(!blob.exists(), "no namespace uses the blob: it goes");
    expect_code(rm(&b), Code::NotFound, "not found");
}

/// A session cannot declare (or write) a blob past the maximum size, and
/// the number of ref ingests is bounded: ResourceExhausted, nothing left.
#[test]
fn content_write_limits() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let huge = pct::WriteContentRequest {
        action: act::STAT,
        r#ref: "huge".into(),
        total: 17 << 30,
        ..Default::default()
    };
    expect_code(open_write(&c, ns, &huge), Code::ResourceExhausted, "huge");
    assert_no_ingests(&d);

    let first = |r: String| pct::WriteContentRequest {
        action: act::WRITE,
        r#ref: r,
        data: b"x".to_vec(),
        ..Default::default()
    };
    let max = 1000;
    for i in 0..max {
        let (s, r) = open_write(&c, ns, &first(format!("i{i}"))).unwrap();
        assert_eq!(r.offset, 1);
        drop(s);
    }
    expect_code(
        reopen_write(&c, ns, &first("one-too-many".into())),
        Code::ResourceExhausted,
        "one-too-many",
    );
    // An existing ingest is still written (offset 0: started over).
    let (s, r) = reopen_write(&c, ns, &first("i0".into())).unwrap();
    assert_eq!(r.offset, 1);
    drop(s);
    for i in 0..max {
        let abort = pct::AbortRequest {
            r#ref: format!("i{i}"),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match call::<_, Empty>(&c, ns, pct::SERVICE, "Abort", &abort) {
                Err(e) if e.code == Code::Unavailable && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                r => {
                    r.unwrap();
                    break;
                }
            };
        }
    }
    assert_no_ingests(&d);
}

/// A namespace is a containerd identifier on every call: `NS/x` would
/// otherwise reach NS's snapshot `x/k` as its `k` (keys are `ns/key`) and
/// NS's ingest `x/r` as its `r`.
#[test]
fn a_namespace_must_be_an_identifier() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let sn = snapshotters()[0];
    prepare(&c, ns, sn, "x/k", "").unwrap();
    let first = pct::WriteContentRequest {
        action: act::WRITE,
        r#ref: "x/r".into(),
        data: b"partial".to_vec(),
        ..Default::default()
    };
    let (s, r) = open_write(&c, ns, &first).unwrap();
    assert_eq!(r.offset, 7);
    drop(s);

    let sneaky = format!("{ns}/x");
    expect_code(stat(&c, &sneaky, sn, "k"), Code::InvalidArgument, &sneaky);
    expect_code(
        ingest_status(&c, &sneaky, "r"),
        Code::InvalidArgument,
        &sneaky,
    );
    let first = pct::WriteContentRequest {
        action: act::STAT,
        r#ref: "r".into(),
        ..Default::default()
    };
    expect_code(
        open_write(&c, &sneaky, &first),
        Code::InvalidArgument,
        &sneaky,
    );
    expect_code(stat(&c, "a..b", sn, "k"), Code::InvalidArgument, "a..b");
    // The owner's own are untouched.
    assert_eq!(stat(&c, ns, sn, "x/k").unwrap().name, "x/k");
    assert_eq!(ingest_status(&c, ns, "x/r").unwrap().offset, 7);
    remove(&c, ns, sn, "x/k").unwrap();
    call::<_, Empty>(
        &c,
        ns,
        pct::SERVICE,
        "Abort",
        &pct::AbortRequest {
            r#ref: "x/r".into(),
        },
    )
    .unwrap();
}

/// The busybox layer plus `extra` entries, as an uncompressed tar.
fn busybox_tar(extra: Vec<Entry>) -> Vec<u8> {
    let mut e = busybox_entries();
    e.extend(extra);
    tar(&e)
}

fn prepare(c: &Client, ns: &str, sn: &str, key: &str, parent: &str) -> Result<Vec<Mount>, Status> {
    let r: ps::PrepareSnapshotResponse = call(
        c,
        ns,
        ps::SERVICE,
        "Prepare",
        &ps::PrepareSnapshotRequest {
            snapshotter: sn.into(),
            key: key.into(),
            parent: parent.into(),
            labels: Default::default(),
        },
    )?;
    Ok(r.mounts)
}

fn view(c: &Client, ns: &str, sn: &str, key: &str, parent: &str) -> Vec<Mount> {
    let r: ps::ViewSnapshotResponse = call(
        c,
        ns,
        ps::SERVICE,
        "View",
        &ps::ViewSnapshotRequest {
            snapshotter: sn.into(),
            key: key.into(),
            parent: parent.into(),
            labels: Default::default(),
        },
    )
    .expect("view");
    r.mounts
}

fn commit(c: &Client, ns: &str, sn: &str, name: &str, key: &str) -> Result<Empty, Status> {
    call(
        c,
        ns,
        ps::SERVICE,
        "Commit",
        &ps::CommitSnapshotRequest {
            snapshotter: sn.into(),
            name: name.into(),
            key: key.into(),
            labels: Default::default(),
        },
    )
}

fn remove(c: &Client, ns: &str, sn: &str, key: &str) -> Result<Empty, Status> {
    call(
        c,
        ns,
        ps::SERVICE,
        "Remove",
        &ps::RemoveSnapshotRequest {
            snapshotter: sn.into(),
            key: key.into(),
        },
    )
}

fn stat(c: &Client, ns: &str, sn: &str, key: &str) -> Result<ps::Info, Status> {
    let r: ps::StatSnapshotResponse = call(
        c,
        ns,
        ps::SERVICE,
        "Stat",
        &ps::StatSnapshotRequest {
            snapshotter: sn.into(),
            key: key.into(),
        },
    )?;
    Ok(r.info.unwrap())
}

fn apply(c: &Client, ns: &str, layer: &Descriptor, mounts: &[Mount]) -> Result<Descriptor, Status> {
    let r: pd::ApplyResponse = call(
        c,
        ns,
        pd::SERVICE,
        "Apply",
        &pd::ApplyRequest {
            diff: Some(layer.clone()),
            mounts: mounts.to_vec(),
            payloads: Default::default(),
        },
    )?;
    Ok(r.applied.unwrap())
}

fn desc(media_type: &str, digest: &Digest, size: usize) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: digest.to_string(),
        size: size as i64,
        annotations: Default::default(),
    }
}

/// Mounts `mounts` on a directory for as long as it lives.
struct Mounted(PathBuf);

impl Mounted {
    fn new(at: PathBuf, mounts: &[Mount]) -> Mounted {
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        fs::create_dir_all(&at).unwrap();
        let m = skiff::snapshot::Mount {
            kind: mounts[0].r#type.clone(),
            source: mounts[0].source.clone(),
            options: mounts[0].options.clone(),
        };
        m.mount(&at).expect("mount the snapshot");
        Mounted(at)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Store a layer through content Write: its descriptor and diff_id.
fn store_layer(c: &Client, ns: &str, tar_bytes: &[u8], comp: Comp) -> (Descriptor, Digest) {
    let blob = compress(tar_bytes, comp);
    let digest = write_blob(c, ns, &format!("layer-{}", Digest::of(&blob).hex()), &blob);
    let mt = match comp {
        Comp::None => LAYER_TAR,
        Comp::Gzip => LAYER_GZIP,
        Comp::Zstd => LAYER_ZSTD,
    };
    (desc(mt, &digest, blob.len()), Digest::of(tar_bytes))
}

fn snapshotters() -> Vec<&'static str> {
    let overlay = fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .contains("\toverlay");
    if overlay {
        vec!["overlayfs", "native"]
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "overlayfs is missing"
        );
        eprintln!("overlayfs is missing: testing native only");
        vec!["native"]
    }
}

#[test]
fn layers_unpack_through_prepare_apply_commit() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let base = busybox_tar(vec![
        file("etc/hello", "hello\n"),
        dir("opt/"),
        file("opt/a", "a"),
    ]);
    let (l1, diff1) = store_layer(&c, ns, &base, Comp::Gzip);
    let top = tar(&[
        file("etc/.wh.hello", ""),
        dir("opt/"),
        file("opt/.wh..wh..opq", ""),
        file("opt/b", "b"),
        file("etc/second", "second\n"),
    ]);
    let (l2, diff2) = store_layer(&c, ns, &top, Comp::Zstd);
    let hostile = tar(&[file("../escape", "x")]);
    let (bad, _) = store_layer(&c, ns, &hostile, Comp::None);

    for sn in snapshotters() {
        let m = prepare(&c, ns, sn, "extract-1 sha256:x", "").unwrap();
        let applied = apply(&c, ns, &l1, &m).unwrap();
        assert_eq!(applied.digest, diff1.to_string(), "{sn}");
        assert_eq!(applied.size as usize, base.len());
        assert_eq!(applied.media_type, LAYER_TAR);
        commit(&c, ns, sn, "layer1", "extract-1 sha256:x").unwrap();
        expect_code(
            commit(&c, ns, sn, "layer1b", "extract-1 sha256:x"),
            Code::NotFound,
            "extract-1",
        );
        expect_code(prepare(&c, ns, sn, "k", "nope"), Code::NotFound, "nope");
        expect_code(
            prepare(&c, ns, sn, "layer1", ""),
            Code::AlreadyExists,
            "layer1",
        );

        let m = prepare(&c, ns, sn, "extract-2", "layer1").unwrap();
        expect_code(
            prepare(&c, ns, sn, "k", "extract-2"),
            Code::InvalidArgument,
            "extract-2",
        );
        assert_eq!(
            apply(&c, ns, &l2, &m).unwrap().digest,
            diff2.to_string(),
            "{sn}"
        );
        commit(&c, ns, sn, "layer2", "extract-2").unwrap();
        let info = stat(&c, ns, sn, "layer2").unwrap();
        assert_eq!(info.kind, ps::kind::COMMITTED);
        assert_eq!(info.parent, "layer1");

        // A view of the top layer, mounted and read.
        let vm = view(&c, ns, sn, "v", "layer2");
        let mounts: ps::MountsResponse = call(
            &c,
            ns,
            ps::SERVICE,
            "Mounts",
            &ps::MountsRequest {
                snapshotter: sn.into(),
                key: "v".into(),
            },
        )
        .unwrap();
        assert_eq!(mounts.mounts, vm);
        {
            let at = d.dir.join(&format!("mnt-{sn}"));
            let _m = Mounted::new(at.clone(), &vm);
            assert_eq!(
                fs::read_to_string(at.join("etc/second")).unwrap(),
                "second\n"
            );
            assert!(!at.join("etc/hello").exists(), "{sn}: whited out");
            assert!(!at.join("opt/a").exists(), "{sn}: opaque dir");
            assert_eq!(fs::read_to_string(at.join("opt/b")).unwrap(), "b");
            let out = Command::new(at.join("bin/busybox"))
                .args(["cat", at.join("etc/passwd").to_str().unwrap()])
                .output()
                .unwrap();
            assert!(String::from_utf8_lossy(&out.stdout).starts_with("root:"));
        }

        // Labels through Update; children keep their parents.
        let u: ps::UpdateSnapshotResponse = call(
            &c,
            ns,
            ps::SERVICE,
            "Update",
            &ps::UpdateSnapshotRequest {
                snapshotter: sn.into(),
                info: Some(ps::Info {
                    name: "layer2".into(),
                    labels: [("k".to_string(), "v".to_string())].into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["labels.k".into()],
                }),
            },
        )
        .unwrap();
        assert_eq!(u.info.unwrap().labels["k"], "v");
        expect_code(
            remove(&c, ns, sn, "layer1"),
            Code::FailedPrecondition,
            "layer1",
        );

        // Bad applies: a hostile layer, content the namespace lacks, mounts
        // that are not a snapshot; each names what is wrong.
        let m = prepare(&c, ns, sn, "extract-bad", "layer1").unwrap();
        expect_code(apply(&c, ns, &bad, &m), Code::InvalidArgument, &bad.digest);
        let mut missing = l1.clone();
        missing.digest = Digest::of(b"nothing").to_string();
        expect_code(apply(&c, ns, &missing, &m), Code::NotFound, &missing.digest);
        let elsewhere = [Mount {
            r#type: "bind".into(),
            source: d.dir.s("elsewhere"),
            target: String::new(),
            options: vec!["rbind".into(), "rw".into()],
        }];
        expect_code(
            apply(&c, ns, &l1, &elsewhere),
            Code::InvalidArgument,
            "not a snapshot",
        );
        assert!(!d.dir.join("escape").exists() && !d.dir.join("elsewhere").exists());
        for k in ["extract-bad", "v", "layer2", "layer1"] {
            remove(&c, ns, sn, k).unwrap();
        }
        expect_code(stat(&c, ns, sn, "layer1"), Code::NotFound, "layer1");
    }
}

/// Diff.Apply answers InvalidArgument for what the extractor refuses (the
/// layer's fault) and not for a failure of the host: a snapshot out of
/// space (ENOSPC) is no bad layer.
#[test]
fn a_diff_apply_blames_the_layer_only_for_what_the_extractor_refuses() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let (hostile, _) = store_layer(&c, ns, &tar(&[file("a/../../escape", "x")]), Comp::Gzip);
    let big = "x".repeat(1 << 20);
    let (too_big, _) = store_layer(&c, ns, &tar(&[file("big", &big)]), Comp::Gzip);
    let m = prepare(&c, ns, "native", "apply-blame", "").unwrap();
    expect_code(
        apply(&c, ns, &hostile, &m),
        Code::InvalidArgument,
        &hostile.digest,
    );
    assert!(!d.dir.join("escape").exists());
    {
        // The snapshot's directory on a 64 KiB tmpfs: the layer's 1 MiB
        // file meets ENOSPC.
        assert_eq!(m[0].r#type, "bind", "{m:?}");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs", &m[0].source])
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs on {}", m[0].source);
        let _full = Mounted(PathBuf::from(&m[0].source));
        let e = apply(&c, ns, &too_big, &m).expect_err("a 1 MiB file in 64 KiB");
        assert_ne!(e.code, Code::InvalidArgument, "{e:?}");
        assert!(e.message.contains(&too_big.digest), "{e:?}");
    }
    remove(&c, ns, "native", "apply-blame").unwrap();
}

#[test]
fn a_diff_applies_back_to_the_same_tree() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let base = busybox_tar(vec![dir("data/"), file("data/old", "old")]);
    let (l1, _) = store_layer(&c, ns, &base, Comp::Gzip);
    for sn in snapshotters() {
        let m = prepare(&c, ns, sn, "x1", "").unwrap();
        apply(&c, ns, &l1, &m).unwrap();
        commit(&c, ns, sn, "base", "x1").unwrap();

        // Change a container's snapshot: add, change, remove.
        let work = prepare(&c, ns, sn, "work", "base").unwrap();
        {
            let at = d.dir.join(&format!("work-{sn}"));
            let _m = Mounted::new(at.clone(), &work);
            fs::write(at.join("etc/new"), "new\n").unwrap();
            fs::write(at.join("etc/group"), "changed\n").unwrap();
            fs::remove_file(at.join("etc/passwd")).unwrap();
            fs::remove_dir_all(at.join("data")).unwrap();
            fs::create_dir(at.join("data")).unwrap();
            fs::write(at.join("data/fresh"), "fresh").unwrap();
        }
        let lower = view(&c, ns, sn, "lower", "base");
        let r: pd::DiffResponse = call(
            &c,
            ns,
            pd::SERVICE,
            "Diff",
            &pd::DiffRequest {
                left: lower,
                right: work,
                media_type: String::new(),
                r#ref: format!("diff-{sn}"),
                labels: Default::default(),
            },
        )
        .unwrap();
        let diff = r.diff.unwrap();
        assert_eq!(diff.media_type, LAYER_GZIP);
        let stored = info(&c, ns, &Digest::parse(&diff.digest).unwrap()).unwrap();
        let diff_id = stored.labels["containerd.io/uncompressed"].clone();

        // Applied on the same base, it gives the changed tree.
        let m = prepare(&c, ns, sn, "x2", "base").unwrap();
        assert_eq!(apply(&c, ns, &diff, &m).unwrap().digest, diff_id);
        commit(&c, ns, sn, "changed", "x2").unwrap();
        let vm = view(&c, ns, sn, "check", "changed");
        {
            let at = d.dir.join(&format!("check-{sn}"));
            let _m = Mounted::new(at.clone(), &vm);
            assert_eq!(fs::read_to_string(at.join("etc/new")).unwrap(), "new\n");
            assert_eq!(
                fs::read_to_string(at.join("etc/group")).unwrap(),
                "changed\n"
            );
            assert!(!at.join("etc/passwd").exists(), "{sn}: removed file");
            assert!(!at.join("data/old").exists(), "{sn}: replaced dir");
            assert_eq!(fs::read_to_string(at.join("data/fresh")).unwrap(), "fresh");
            assert!(at.join("bin/busybox").exists());
        }
        // ctr's `snapshots diff` of a committed snapshot: views both sides.
        let r: pd::DiffResponse = call(
            &c,
            ns,
            pd::SERVICE,
            "Diff",
            &pd::DiffRequest {
                left: view(&c, ns, sn, "left2", "base"),
                right: vm,
                media_type: LAYER_TAR.into(),
                ..Default::default()
            },
        )
        .unwrap();
        let again = r.diff.unwrap();
        let tar_bytes = read_blob(&c, ns, &again.digest);
        let names: Vec<String> = tar::Archive::new(tar_bytes.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        for want in ["etc/new", "etc/.wh.passwd", "data/fresh"] {
            assert!(names.iter().any(|n| n == want), "{sn}: {want} in {names:?}");
        }
        for k in ["left2", "check", "changed", "lower", "work", "base"] {
            remove(&c, ns, sn, k).unwrap();
        }
    }
    // A diff of mounts that are not this daemon's snapshots is refused.
    expect_code(
        call::<_, pd::DiffResponse>(
            &c,
            ns,
            pd::SERVICE,
            "Diff",
            &pd::DiffRequest {
                right: vec![Mount {
                    r#type: "bind".into(),
                    source: "/etc".into(),
                    target: String::new(),
                    options: vec!["rbind".into(), "ro".into()],
                }],
                r#ref: "bad".into(),
                ..Default::default()
            },
        ),
        Code::InvalidArgument,
        "/etc",
    );
    assert_no_ingests(&d);
}

/// An overlay snapshot's upper directory is its diff against its parent
/// only: a Diff naming another left is refused, not answered wrongly.
/// Snapshot errors name keys as the namespace sees them.
#[test]
fn diff_and_snapshot_errors() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let (l1, _) = store_layer(&c, ns, &busybox_tar(vec![]), Comp::Gzip);
    for sn in snapshotters() {
        let m = prepare(&c, ns, sn, "x1", "").unwrap();
        apply(&c, ns, &l1, &m).unwrap();
        commit(&c, ns, sn, "base", "x1").unwrap();
        let work = prepare(&c, ns, sn, "work", "base").unwrap();
        let other = prepare(&c, ns, sn, "other", "").unwrap();
        let r = call::<_, pd::DiffResponse>(
            &c,
            ns,
            pd::SERVICE,
            "Diff",
            &pd::DiffRequest {
                left: other,
                right: work,
                media_type: LAYER_TAR.into(),
                r#ref: format!("bad-left-{sn}"),
                ..Default::default()
            },
        );
        if sn == "overlayfs" {
            expect_code(r, Code::InvalidArgument, "not the parent");
        } else {
            r.unwrap();
        }

        let prefix = format!("{ns}/");
        let e = expect_code(
            prepare(&c, ns, sn, "work", "base"),
            Code::AlreadyExists,
            "work",
        );
        assert!(!e.message.contains(&prefix), "{e:?}");
        let e = expect_code(remove(&c, ns, sn, "base"), Code::FailedPrecondition, "base");
        assert!(!e.message.contains(&prefix), "{e:?}");
        let e = expect_code(
            call::<_, ps::PrepareSnapshotResponse>(
                &c,
                ns,
                ps::SERVICE,
                "Prepare",
                &ps::PrepareSnapshotRequest {
                    snapshotter: sn.into(),
                    key: "labelled".into(),
                    parent: String::new(),
                    labels: [(String::new(), "v".to_string())].into(),
                },
            ),
            Code::InvalidArgument,
            "labelled",
        );
        assert!(!e.message.contains(&prefix), "{e:?}");
        for k in ["other", "work", "base"] {
            remove(&c, ns, sn, k).unwrap();
        }
    }
    assert_no_ingests(&d);
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    let len = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// A file capability (`setcap cap_net_raw+ep`) survives Diff and Apply.
#[test]
fn a_diff_keeps_file_capabilities() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let (l1, _) = store_layer(&c, ns, &busybox_tar(vec![]), Comp::Gzip);
    // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW (13).
    let mut cap = Vec::new();
    for w in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&w.to_le_bytes());
    }
    for sn in snapshotters() {
        let m = prepare(&c, ns, sn, "x1", "").unwrap();
        apply(&c, ns, &l1, &m).unwrap();
        commit(&c, ns, sn, "base", "x1").unwrap();
        let work = prepare(&c, ns, sn, "work", "base").unwrap();
        {
            let at = d.dir.join(&format!("work-{sn}"));
            let _m = Mounted::new(at.clone(), &work);
            fs::write(at.join("bin/pinger"), "x").unwrap();
            set_xattr(&at.join("bin/pinger"), "security.capability", &cap);
        }
        let r: pd::DiffResponse = call(
            &c,
            ns,
            pd::SERVICE,
            "Diff",
            &pd::DiffRequest {
                left: view(&c, ns, sn, "lower", "base"),
                right: work,
                media_type: LAYER_TAR.into(),
                r#ref: format!("caps-{sn}"),
                labels: Default::default(),
            },
        )
        .unwrap();
        let diff = r.diff.unwrap();
        let m = prepare(&c, ns, sn, "x2", "base").unwrap();
        apply(&c, ns, &diff, &m).unwrap();
        {
            let at = d.dir.join(&format!("x2-{sn}"));
            let _m = Mounted::new(at.clone(), &m);
            assert_eq!(
                get_xattr(&at.join("bin/pinger"), "security.capability").as_deref(),
                Some(cap.as_slice()),
                "{sn}: the capability came through"
            );
        }
        for k in ["x2", "lower", "work", "base"] {
            remove(&c, ns, sn, k).unwrap();
        }
    }
    assert_no_ingests(&d);
}

#[test]
fn a_prepared_snapshot_no_lease_holds_is_collected() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let sn = snapshotters()[0];
    let lease = |id: &str| {
        let _: pl::CreateResponse = call(
            &c,
            ns,
            pl::SERVICE,
            "Create",
            &pl::CreateRequest {
                id: id.into(),
                labels: Default::default(),
            },
        )
        .unwrap();
    };
    let collect = || {
        lease("trigger");
        let _: Empty = call(
            &c,
            ns,
            pl::SERVICE,
            "Delete",
            &pl::DeleteRequest {
                id: "trigger".into(),
                sync: true,
            },
        )
        .unwrap();
    };
    lease("held");
    prepare(&c, ns, sn, "orphan", "").unwrap();
    let _: ps::PrepareSnapshotResponse = call_leased(
        &c,
        ns,
        "held",
        ps::SERVICE,
        "Prepare",
        &ps::PrepareSnapshotRequest {
            snapshotter: sn.into(),
            key: "kept".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let res: pl::ListResourcesResponse = call(
        &c,
        ns,
        pl::SERVICE,
        "ListResources",
        &pl::ListResourcesRequest { id: "held".into() },
    )
    .unwrap();
    assert_eq!(
        res.resources,
        vec![pl::Resource {
            id: "kept".into(),
            r#type: format!("snapshots/{sn}"),
        }]
    );
    collect();
    expect_code(stat(&c, ns, sn, "orphan"), Code::NotFound, "orphan");
    stat(&c, ns, sn, "kept").unwrap();
    let _: Empty = call(
        &c,
        ns,
        pl::SERVICE,
        "DeleteResource",
        &pl::DeleteResourceRequest {
            id: "held".into(),
            resource: Some(pl::Resource {
                id: "kept".into(),
                r#type: format!("snapshots/{sn}"),
            }),
        },
    )
    .unwrap();
    collect();
    expect_code(stat(&c, ns, sn, "kept"), Code::NotFound, "kept");
}

#[test]
fn containers_list_stream_and_lease_resources() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    for (id, team) in [("c1", "a"), ("c2", "b"), ("c3", "a")] {
        let _: pc::CreateContainerResponse = call(
            &c,
            ns,
            pc::SERVICE,
            "Create",
            &pc::CreateContainerRequest {
                container: Some(pc::Container {
                    id: id.into(),
                    labels: [("team".to_string(), team.to_string())].into(),
                    ..Default::default()
                }),
            },
        )
        .unwrap();
    }
    let ids = |filters: Vec<String>| -> Vec<String> {
        let msgs: Vec<pc::ListContainerMessage> = stream(
            &c,
            ns,
            pc::SERVICE,
            "ListStream",
            &pc::ListContainersRequest { filters },
        )
        .unwrap();
        let mut v: Vec<String> = msgs.into_iter().map(|m| m.container.unwrap().id).collect();
        v.sort();
        v
    };
    assert_eq!(ids(vec![]), ["c1", "c2", "c3"]);
    assert_eq!(ids(vec!["labels.team==a".into()]), ["c1", "c3"]);
    for id in ["c1", "c2", "c3"] {
        let _: Empty = call(
            &c,
            ns,
            pc::SERVICE,
            "Delete",
            &pc::DeleteContainerRequest { id: id.into() },
        )
        .unwrap();
    }

    // Lease resources: content and ingests are held, unknown types refused.
    let _: pl::CreateResponse = call(
        &c,
        ns,
        pl::SERVICE,
        "Create",
        &pl::CreateRequest {
            id: "l".into(),
            labels: Default::default(),
        },
    )
    .unwrap();
    let add = |id: &str, t: &str| {
        call::<_, Empty>(
            &c,
            ns,
            pl::SERVICE,
            "AddResource",
            &pl::AddResourceRequest {
                id: "l".into(),
                resource: Some(pl::Resource {
                    id: id.into(),
                    r#type: t.into(),
                }),
            },
        )
    };
    let blob = Digest::of(b"x").to_string();
    add(&blob, "content").unwrap();
    add("upload-1", "ingests").unwrap();
    expect_code(add("k", "volumes"), Code::InvalidArgument, "volumes");
    expect_code(
        add("not-a-digest", "content"),
        Code::InvalidArgument,
        "not-a-digest",
    );
    let res: pl::ListResourcesResponse = call(
        &c,
        ns,
        pl::SERVICE,
        "ListResources",
        &pl::ListResourcesRequest { id: "l".into() },
    )
    .unwrap();
    let mut got: Vec<(String, String)> = res
        .resources
        .into_iter()
        .map(|r| (r.r#type, r.id))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("content".to_string(), blob),
            ("ingests".to_string(), "upload-1".to_string())
        ]
    );
    expect_code(
        call::<_, pl::ListResourcesResponse>(
            &c,
            ns,
            pl::SERVICE,
            "ListResources",
            &pl::ListResourcesRequest { id: "nope".into() },
        ),
        Code::NotFound,
        "nope",
    );
}

/// Every list call parses its filters once: a filter that does not parse
/// fails the call with InvalidArgument naming it (it used to answer an
/// empty list), and each kind is filtered on containerd's fields for it
/// (it used to know only a name and labels).
#[test]
fn list_filters_use_each_kinds_fields_and_refuse_bad_ones() {
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();

    // Containers: `runtime.name` and `image` besides `id` and labels.
    for (id, runtime, image) in [
        ("c1", "io.containerd.skiff.v2", ""),
        ("c2", "io.containerd.runc.v2", "example.com/a:1"),
    ] {
        let _: pc::CreateContainerResponse = call(
            &c,
            ns,
            pc::SERVICE,
            "Create",
            &pc::CreateContainerRequest {
                container: Some(pc::Container {
                    id: id.into(),
                    image: image.into(),
                    runtime: Some(pc::Runtime {
                        name: runtime.into(),
                        options: None,
                    }),
                    ..Default::default()
                }),
            },
        )
        .unwrap();
    }
    let containers = |filters: &[&str]| -> Result<Vec<String>, Status> {
        let filters: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        let r: pc::ListContainersResponse = call(
            &c,
            ns,
            pc::SERVICE,
            "List",
            &pc::ListContainersRequest {
                filters: filters.clone(),
            },
        )?;
        let streamed: Vec<pc::ListContainerMessage> = stream(
            &c,
            ns,
            pc::SERVICE,
            "ListStream",
            &pc::ListContainersRequest { filters },
        )?;
        let mut ids: Vec<String> = r.containers.into_iter().map(|c| c.id).collect();
        let mut s: Vec<String> = streamed
            .into_iter()
            .map(|m| m.container.unwrap().id)
            .collect();
        ids.sort();
        s.sort();
        assert_eq!(ids, s, "List and ListStream agree");
        Ok(ids)
    };
    assert_eq!(
        containers(&["runtime.name==io.containerd.runc.v2"]).unwrap(),
        ["c2"]
    );
    assert_eq!(containers(&["image"]).unwrap(), ["c2"]);
    assert_eq!(containers(&["id==c1"]).unwrap(), ["c1"]);
    assert_eq!(containers(&["name==c1"]).unwrap(), Vec::<String>::new());
    assert_eq!(containers(&["", "id==c1"]).unwrap(), ["c1", "c2"]);

    // Images: `target.digest`, `target.mediatype`, not a `digest`.
    let target = |mt: &str, seed: u8| Descriptor {
        media_type: mt.into(),
        digest: Digest::of(&[seed]).to_string(),
        size: 1,
        annotations: Default::default(),
    };
    let manifest = target("application/vnd.oci.image.manifest.v1+json", 1);
    for (name, t) in [
        ("example.com/m:1", manifest.clone()),
        (
            "example.com/i:1",
            target("application/vnd.oci.image.index.v1+json", 2),
        ),
    ] {
        let _: pi::CreateImageResponse = call(
            &c,
            ns,
            pi::SERVICE,
            "Create",
            &pi::CreateImageRequest {
                image: Some(pi::Image {
                    name: name.into(),
                    target: Some(t),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let images = |filters: &[&str]| -> Result<Vec<String>, Status> {
        let r: pi::ListImagesResponse = call(
            &c,
            ns,
            pi::SERVICE,
            "List",
            &pi::ListImagesRequest {
                filters: filters.iter().map(|s| s.to_string()).collect(),
            },
        )?;
        let mut v: Vec<String> = r.images.into_iter().map(|i| i.name).collect();
        v.sort();
        Ok(v)
    };
    assert_eq!(
        images(&["target.mediatype~=index"]).unwrap(),
        ["example.com/i:1"]
    );
    let by_digest = format!("target.digest=={}", manifest.digest);
    assert_eq!(images(&[&by_digest]).unwrap(), ["example.com/m:1"]);
    assert_eq!(images(&["name~=/m:1$/"]).unwrap(), ["example.com/m:1"]);
    assert!(images(&[&format!("digest=={}", manifest.digest)])
        .unwrap()
        .is_empty());

    // Content: `digest` and labels, not a `name`.
    let blob = write_blob(&c, ns, "filter-blob", b"filtered content");
    let content = |filters: &[&str]| -> Result<Vec<String>, Status> {
        let msgs: Vec<pct::ListContentResponse> = stream(
            &c,
            ns,
            pct::SERVICE,
            "List",
            &pct::ListContentRequest {
                filters: filters.iter().map(|s| s.to_string()).collect(),
            },
        )?;
        Ok(msgs
            .into_iter()
            .flat_map(|m| m.info)
            .map(|i| i.digest)
            .collect())
    };
    assert_eq!(
        content(&[&format!("digest=={blob}")]).unwrap(),
        [blob.to_string()]
    );
    assert!(content(&[&format!("name=={blob}")]).unwrap().is_empty());

    // Snapshots: `kind` and `parent` besides the name.
    let sn = snapshotters()[0];
    prepare(&c, ns, sn, "filter-active", "").unwrap();
    let snapshots = |filters: &[&str]| -> Result<Vec<String>, Status> {
        let msgs: Vec<ps::ListSnapshotsResponse> = stream(
            &c,
            ns,
            ps::SERVICE,
            "List",
            &ps::ListSnapshotsRequest {
                snapshotter: sn.into(),
                filters: filters.iter().map(|s| s.to_string()).collect(),
            },
        )?;
        Ok(msgs
            .into_iter()
            .flat_map(|m| m.info)
            .map(|i| i.name)
            .collect())
    };
    assert_eq!(snapshots(&["kind==active"]).unwrap(), ["filter-active"]);
    assert!(snapshots(&["kind==committed"]).unwrap().is_empty());
    assert_eq!(
        snapshots(&["name==filter-active,parent==\"\""]).unwrap(),
        ["filter-active"]
    );

    // A filter that does not parse fails every list call, naming it.
    for bad in [vec!["name=x"], vec!["", "labels.a==1,"]] {
        let bad: Vec<String> = bad.into_iter().map(String::from).collect();
        let refused = |what: &str, r: Result<(), Status>| {
            let e = r.expect_err(what);
            assert_eq!(e.code, Code::InvalidArgument, "{what}: {e:?}");
            assert!(
                e.message.starts_with("filters: parse error: ["),
                "{what}: {e:?}"
            );
        };
        let strs: Vec<&str> = bad.iter().map(String::as_str).collect();
        refused("containers", containers(&strs).map(drop));
        refused("images", images(&strs).map(drop));
        refused("content", content(&strs).map(drop));
        refused("snapshots", snapshots(&strs).map(drop));
        refused(
            "leases",
            call::<_, pl::ListResponse>(
                &c,
                ns,
                pl::SERVICE,
                "List",
                &pl::ListRequest {
                    filters: bad.clone(),
                },
            )
            .map(drop),
        );
        refused(
            "ingests",
            call::<_, pct::ListStatusesResponse>(
                &c,
                ns,
                pct::SERVICE,
                "ListStatuses",
                &pct::ListStatusesRequest {
                    filters: bad.clone(),
                },
            )
            .map(drop),
        );
        refused(
            "metrics",
            call::<_, pt::MetricsResponse>(
                &c,
                ns,
                pt::SERVICE,
                "Metrics",
                &pt::MetricsRequest {
                    filters: bad.clone(),
                },
            )
            .map(drop),
        );
    }

    remove(&c, ns, sn, "filter-active").unwrap();
    for id in ["c1", "c2"] {
        let _: Empty = call(
            &c,
            ns,
            pc::SERVICE,
            "Delete",
            &pc::DeleteContainerRequest { id: id.into() },
        )
        .unwrap();
    }
    for name in ["example.com/m:1", "example.com/i:1"] {
        let _: Empty = call(
            &c,
            ns,
            pi::SERVICE,
            "Delete",
            &pi::DeleteImageRequest {
                name: name.into(),
                sync: true,
            },
        )
        .unwrap();
    }
}

/// Tasks.Metrics filters on a task's id and namespace only: containerd
/// 1.6 has no `runtime` field there, so a filter on it matches nothing.
#[test]
fn task_metrics_filter_on_id_and_namespace_only() {
    let work = TempDir::new("metrics-filter");
    let Some((_reg, r)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    d.ok(&["i", "pull", "--plain-http", &r]);
    d.ok(&["run", "-d", &r, "m1", "sleep", "1000"]);
    let metrics = |filter: &str| -> Vec<String> {
        let m: pt::MetricsResponse = call(
            &d.client(),
            &d.ns,
            pt::SERVICE,
            "Metrics",
            &pt::MetricsRequest {
                filters: vec![filter.into()],
            },
        )
        .expect("metrics");
        m.metrics.into_iter().map(|m| m.id).collect()
    };
    let ns_filter = format!("namespace=={}", d.ns);
    let found = (metrics("id==m1"), metrics(&ns_filter));
    let by_runtime = (
        metrics("runtime"),
        metrics("runtime==io.containerd.runc.v2"),
    );
    d.ok(&["t", "kill", "-s", "KILL", "m1"]);
    d.wait_for(20, "m1 to stop", || {
        tasks(&d).iter().all(|t| t.2 == "STOPPED")
    });
    d.ok(&["t", "rm", "m1"]);
    d.ok(&["c", "rm", "m1"]);
    assert_eq!(found, (vec!["m1".to_string()], vec!["m1".to_string()]));
    assert_eq!(by_runtime, (vec![], vec![]), "no runtime field");
}

/// `all_platforms` pulls every platform of the index it resolved the
/// host's from: the index is fetched once (it was fetched again for each
/// other platform, twice, and once more to store it).
#[test]
fn a_pull_of_all_platforms_fetches_the_index_once() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("allplat-once");
    let mut specs = Vec::new();
    let mut layers_of = Vec::new();
    for arch in ["amd64", "arm64", "s390x"] {
        let mut spec = ImageSpec::new(vec![Layer {
            entries: vec![file(&format!("{arch}-only"), arch)],
            comp: Comp::Gzip,
        }]);
        spec.arch = arch.into();
        specs.push(spec);
        layers_of.push(arch);
    }
    let layout = work.join("layout");
    let layers = write_layout(&layout, "multi", &specs);
    let reference = format!("{}/library/multi:latest", reg.host());
    push(&layout, "multi", &reference, &["--all"]);
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let tag_fetches = || {
        reg.log()
            .lines()
            .filter(|l| l.contains("/v2/library/multi/manifests/latest"))
            .count()
    };
    let before = tag_fetches();
    let progress: Vec<pp::PullProgress> = stream(
        &c,
        ns,
        pp::SERVICE,
        pp::METHOD,
        &pp::PullRequest {
            reference: reference.clone(),
            plain_http: true,
            all_platforms: true,
            ..Default::default()
        },
    )
    .expect("pull");
    let image = progress.last().unwrap().image.clone().expect("the image");
    assert_eq!(
        image.target.unwrap().media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    // The access log is written as requests are answered.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tag_fetches() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(tag_fetches() - before, 1, "{}", reg.log());
    // Every platform's layer came.
    let msgs: Vec<pct::ListContentResponse> = stream(
        &c,
        ns,
        pct::SERVICE,
        "List",
        &pct::ListContentRequest::default(),
    )
    .unwrap();
    let stored: Vec<String> = msgs
        .into_iter()
        .flat_map(|m| m.info)
        .map(|i| i.digest)
        .collect();
    for (layer, arch) in layers.iter().zip(&layers_of) {
        assert!(stored.contains(&layer.to_string()), "{arch}: {stored:?}");
    }
    let _: Empty = call(
        &c,
        ns,
        pi::SERVICE,
        "Delete",
        &pi::DeleteImageRequest {
            name: reference,
            sync: true,
        },
    )
    .unwrap();
}

/// An index that lacks the requested platform answers NotFound (as
/// containerd), and one that lacks the host's platform is still pulled
/// whole with `all_platforms` (the host's was resolved first and failed it).
#[test]
fn a_pull_of_all_platforms_needs_no_host_platform() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("allplat-foreign");
    let arches = ["arm64", "s390x"];
    let specs: Vec<ImageSpec> = arches
        .iter()
        .map(|arch| {
            let mut spec = ImageSpec::new(vec![Layer {
                entries: vec![file(&format!("{arch}-only"), arch)],
                comp: Comp::Gzip,
            }]);
            spec.arch = arch.to_string();
            spec
        })
        .collect();
    let layout = work.join("layout");
    let layers = write_layout(&layout, "foreign", &specs);
    let reference = format!("{}/library/foreign:latest", reg.host());
    push(&layout, "foreign", &reference, &["--all"]);
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let pull = |platform: &str, all_platforms: bool| {
        stream::<_, pp::PullProgress>(
            &c,
            ns,
            pp::SERVICE,
            pp::METHOD,
            &pp::PullRequest {
                reference: reference.clone(),
                platform: platform.into(),
                plain_http: true,
                all_platforms,
                ..Default::default()
            },
        )
    };
    expect_code(
        pull("linux/ppc64le", false),
        Code::NotFound,
        "no manifest for platform linux/ppc64le",
    );
    let progress = pull("", true).expect("pull of all platforms");
    let image = progress.last().unwrap().image.clone().expect("the image");
    assert_eq!(
        image.target.unwrap().media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    for (layer, arch) in layers.iter().zip(arches) {
        info(&c, ns, layer).unwrap_or_else(|e| panic!("{arch} {layer}: {e:?}"));
    }
    let _: Empty = call(
        &c,
        ns,
        pi::SERVICE,
        "Delete",
        &pi::DeleteImageRequest {
            name: reference,
            sync: true,
        },
    )
    .unwrap();
}

/// A layer the unpacker refuses reaches the client as InvalidArgument
/// naming the layer and the entry (they were Unknown, or NotFound for a
/// hardlink to nothing); a blob that is not what its descriptor says is
/// FailedPrecondition naming it (containerd's commit answers that).
#[test]
fn hostile_layers_reach_the_client_as_invalid_argument() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("hostile-daemon");
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let pull = |reference: &str| {
        stream::<_, pp::PullProgress>(
            &c,
            ns,
            pp::SERVICE,
            pp::METHOD,
            &pp::PullRequest {
                reference: reference.into(),
                plain_http: true,
                unpack: true,
                ..Default::default()
            },
        )
    };
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "dotdot",
            vec![dir("a/"), file("a/../../pwned", "x")],
            "entry \"a/../../pwned\"",
        ),
        (
            "hardlink-to-nothing",
            vec![hardlink("hl", "/no/such/victim")],
            "entry \"hl\"",
        ),
        (
            "hardlink-via-symlink",
            vec![symlink("s", "/"), hardlink("hl", "s/etc/hostname")],
            "entry \"hl\"",
        ),
        (
            "whiteout-name",
            vec![file(".wh...", "")],
            "entry \".wh...\"",
        ),
    ];
    for (i, (case, entries, names)) in cases.into_iter().enumerate() {
        let tag = format!("t{i}");
        let layout = work.join(&format!("layout-{i}"));
        let layers = write_layout(
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
        let reference = format!("{}/hostile:{tag}", reg.host());
        push(&layout, &tag, &reference, &["--preserve-digests"]);
        let e = pull(&reference).expect_err(case);
        assert_eq!(e.code, Code::InvalidArgument, "{case}: {e:?}");
        assert!(
            e.message.contains(&format!("layer {}: {names}", layers[1])),
            "{case}: names the layer and entry: {e:?}"
        );
    }

    // A registry that serves other bytes than the manifest names.
    let layout = work.join("layout-corrupt");
    let layers = write_layout(
        &layout,
        "corrupt",
        &[ImageSpec::new(vec![Layer {
            entries: vec![file("f", "the real content")],
            comp: Comp::None,
        }])],
    );
    let reference = format!("{}/hostile:corrupt", reg.host());
    push(&layout, "corrupt", &reference, &["--preserve-digests"]);
    let blob = reg.blob_file(&layers[0]);
    let mut bytes = fs::read(&blob).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0xff;
    fs::write(&blob, bytes).unwrap();
    let e = pull(&reference).expect_err("corrupt");
    assert_eq!(e.code, Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message.contains(&layers[0].to_string()) && e.message.contains("digest mismatch"),
        "{e:?}"
    );

    let images: pi::ListImagesResponse = call(
        &c,
        ns,
        pi::SERVICE,
        "List",
        &pi::ListImagesRequest::default(),
    )
    .unwrap();
    assert!(images.images.is_empty(), "{images:?}");
}

/// An index as BuildKit pushes it: each platform's manifest with an
/// attestation manifest (platform unknown/unknown, an in-toto layer)
/// beside it. `all_platforms` pulls the image and leaves the attestation
/// alone (pulling it as a platform failed the whole pull).
#[test]
fn a_pull_of_all_platforms_keeps_attestations_as_content() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("allplat-attest");
    let layout = work.join("layout");
    let layers = write_layout(
        &layout,
        "attested",
        &[ImageSpec::new(vec![Layer {
            entries: vec![file("f", "x")],
            comp: Comp::Gzip,
        }])],
    );
    // The single manifest write_layout named, then an index over it and
    // an attestation manifest.
    let top = fs::read_to_string(layout.join("index.json")).unwrap();
    let field = |name: &str| -> String {
        let at = top.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
        top[at..]
            .trim_start_matches('"')
            .chars()
            .take_while(|c| *c != '"' && *c != ',' && *c != '}')
            .collect()
    };
    let (manifest_digest, manifest_size) = (field("digest"), field("size"));
    let put = |data: &[u8]| -> (Digest, usize) {
        let d = Digest::of(data);
        fs::write(layout.join("blobs/sha256").join(d.hex()), data).unwrap();
        (d, data.len())
    };
    let (cfg, cfg_size) = put(b"{}");
    let (stmt, stmt_size) = put(br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#);
    let attestation = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg}","size":{cfg_size}}},"layers":[{{"mediaType":"application/vnd.in-toto+json","digest":"{stmt}","size":{stmt_size},"annotations":{{"in-toto.io/predicate-type":"https://slsa.dev/provenance/v0.2"}}}}]}}"#
    );
    let (att, att_size) = put(attestation.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{manifest_size},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{att}","size":{att_size},"annotations":{{"vnd.docker.reference.digest":"{manifest_digest}","vnd.docker.reference.type":"attestation-manifest"}},"platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#
    );
    let (idx, idx_size) = put(index.as_bytes());
    fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{idx}","size":{idx_size},"annotations":{{"org.opencontainers.image.ref.name":"attested"}}}}]}}"#
        ),
    )
    .unwrap();
    let reference = format!("{}/library/attested:latest", reg.host());
    push(
        &layout,
        "attested",
        &reference,
        &["--all", "--preserve-digests"],
    );
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.as_str();
    let progress: Vec<pp::PullProgress> = stream(
        &c,
        ns,
        pp::SERVICE,
        pp::METHOD,
        &pp::PullRequest {
            reference: reference.clone(),
            plain_http: true,
            all_platforms: true,
            unpack: true,
            ..Default::default()
        },
    )
    .expect("pull");
    let image = progress.last().unwrap().image.clone().expect("the image");
    assert_eq!(image.target.unwrap().digest, idx.to_string());
    let layer = layers[0].to_string();
    info(&c, ns, &layers[0]).unwrap_or_else(|e| panic!("layer {layer}: {e:?}"));
    // As containerd, the attestation is fetched as plain content (manifest,
    // config, in-toto blob), not unpacked: the index's every entry can be
    // read, so an export of all platforms works.
    for (what, d) in [
        ("attestation", &att),
        ("its config", &cfg),
        ("statement", &stmt),
    ] {
        info(&c, ns, d).unwrap_or_else(|e| panic!("{what} {d}: {e:?}"));
    }
    let archive = work.join("all.tar");
    d.ok(&[
        "i",
        "export",
        "--all-platforms",
        archive.to_str().unwrap(),
        &reference,
    ]);
    let listing = Command::new("tar")
        .arg("tf")
        .arg(&archive)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for d in [&att, &cfg, &stmt] {
        assert!(
            listing.contains(&format!("blobs/sha256/{}", d.hex())),
            "{d} not in the export: {listing}"
        );
    }
    let _: Empty = call(
        &c,
        ns,
        pi::SERVICE,
        "Delete",
        &pi::DeleteImageRequest {
            name: reference,
            sync: true,
        },
    )
    .unwrap();
}
