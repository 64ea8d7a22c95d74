//! The `containerd` applet end to end over ttrpc, driven by a small client
//! here (skiff's ctr comes on its own branch): version and namespaces, a
//! pull from a docker-registry on 127.0.0.1 (daemon-side, with unpack),
//! content read back, a container run through the skiff shim with its
//! output through fifos, and a daemon `kill -9` + restart with a running
//! container (it keeps running; the new daemon lists and kills it).
//!
//! Each test has its own root, state and socket; the fixture's Drop kills
//! what is left (tasks through the daemon, then the daemon, shims and
//! container processes by pid) and unmounts what is under its directory.

#[path = "fetch_support/mod.rs"]
mod support;

use prost::Message;
use skiff::daemon::spec::{self, SpecOptions, SPEC_TYPE_URL};
use skiff::image::oci::{self, Document};
use skiff::proto::services::{
    containers as pc, content as pct, images as pi, namespaces as pn, pull as pp, snapshots as ps,
    tasks as pt, version as pv,
};
use skiff::proto::task as st;
use skiff::proto::types::{Any, Empty};
use skiff::ttrpc::{Client, Code, Status};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

include!("common/daemon.rs");

/// A fifo read to its end in a thread (the shim opens it for writing).
fn fifo_reader(path: &Path) -> std::thread::JoinHandle<String> {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = fs::File::open(&p).unwrap().read_to_string(&mut s);
        s
    })
}

fn alive(pid: u32) -> bool {
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[test]
fn version_and_namespaces() {
    let d = Daemon::new();
    let c = d.client();
    let v: pv::VersionResponse = call(&c, "default", pv::SERVICE, "Version", &Empty {}).unwrap();
    assert!(v.version.starts_with('v'), "{v:?}");
    let _: pn::CreateNamespaceResponse = call(
        &c,
        "default",
        pn::SERVICE,
        "Create",
        &pn::CreateNamespaceRequest {
            namespace: Some(pn::Namespace {
                name: "test".into(),
                labels: [("k".to_string(), "v".to_string())].into(),
            }),
        },
    )
    .unwrap();
    let l: pn::ListNamespacesResponse = call(
        &c,
        "default",
        pn::SERVICE,
        "List",
        &pn::ListNamespacesRequest::default(),
    )
    .unwrap();
    assert!(
        l.namespaces
            .iter()
            .any(|n| n.name == "test" && n.labels.get("k").map(String::as_str) == Some("v")),
        "{l:?}"
    );
    let e = call::<_, pc::GetContainerResponse>(
        &c,
        "test",
        pc::SERVICE,
        "Get",
        &pc::GetContainerRequest { id: "nope".into() },
    )
    .unwrap_err();
    assert_eq!(e.code, Code::NotFound, "{e}");
    assert!(e.message.contains("nope"), "{e}");
    let e = call::<_, Empty>(
        &c,
        "test",
        "containerd.services.nothing.v1.Nothing",
        "X",
        &Empty {},
    )
    .unwrap_err();
    assert_eq!(e.code, Code::Unimplemented, "{e}");
    // The socket is the owner's alone.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(d.address()).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // SIGTERM: a clean exit that takes the socket away.
    let mut d = d;
    let mut child = d.child.take().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(!Path::new(&d.address()).exists(), "socket left behind");
    assert!(
        !Path::new(&d.ttrpc_address()).exists(),
        "ttrpc socket left behind"
    );
}

#[test]
fn config_default_prints_the_effective_configuration() {
    let dir = TempDir::new("daemon-config");
    let file = dir.join("config.toml");
    fs::write(
        &file,
        "root = \"/srv/skiff\"\n[grpc]\n  address = \"/tmp/x.sock\"\n",
    )
    .unwrap();
    let out = Command::new(skiff_bin())
        .arg0_containerd()
        .args([
            "--config",
            file.to_str().unwrap(),
            "--state",
            "/run/s2",
            "config",
            "default",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "root = \"/srv/skiff\"",
        "state = \"/run/s2\"",
        "address = \"/tmp/x.sock\"",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    let out = Command::new(skiff_bin())
        .arg0_containerd()
        .args(["--bogus", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--bogus"),
        "{out:?}"
    );
}

#[test]
fn pull_run_and_remove_a_container() {
    let work = TempDir::new("daemon-work");
    let Some((_reg, reference)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    let c = d.client();
    let ns = d.ns.clone();
    let ns = ns.as_str();
    let image = pull(&c, ns, &reference);
    assert_eq!(image.name, reference);
    let l: pi::ListImagesResponse = call(
        &c,
        ns,
        pi::SERVICE,
        "List",
        &pi::ListImagesRequest::default(),
    )
    .unwrap();
    assert_eq!(l.images.len(), 1, "{l:?}");
    // Pulling again is a no-op update.
    pull(&c, ns, &reference);

    create_container(&c, ns, &image, "c1", &["sh", "-c", "echo $GREETING from $(cat /etc/hostname 2>/dev/null || hostname); echo err >&2; exit 3"]);
    let dup = call::<_, pc::CreateContainerResponse>(
        &c,
        ns,
        pc::SERVICE,
        "Create",
        &pc::CreateContainerRequest {
            container: Some(pc::Container {
                id: "c1".into(),
                runtime: Some(pc::Runtime {
                    name: "io.containerd.skiff.v2".into(),
                    options: None,
                }),
                ..Default::default()
            }),
        },
    )
    .unwrap_err();
    assert_eq!(dup.code, Code::AlreadyExists, "{dup}");

    let fifos = work.join("fifos");
    fs::create_dir_all(&fifos).unwrap();
    let out = fifo_reader(&fifos.join("c1-stdout"));
    let err = fifo_reader(&fifos.join("c1-stderr"));
    let created: pt::CreateTaskResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Create",
        &pt::CreateTaskRequest {
            container_id: "c1".into(),
            stdout: fifos.join("c1-stdout").to_string_lossy().into(),
            stderr: fifos.join("c1-stderr").to_string_lossy().into(),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("task create: {e}\n{}", d.log()));
    assert!(created.pid > 0);
    let bundle = d
        .state()
        .join(format!("io.containerd.runtime.v2.task/{ns}/c1"));
    assert!(bundle.join("config.json").exists());
    let listed: pt::ListTasksResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "List",
        &pt::ListTasksRequest::default(),
    )
    .unwrap();
    assert_eq!(listed.tasks.len(), 1);
    assert_eq!(listed.tasks[0].status, pt::status::CREATED, "{listed:?}");
    let _: pt::StartResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Start",
        &pt::StartRequest {
            container_id: "c1".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let w: pt::WaitResponse = call(
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
    assert_eq!(w.exit_status, 3);
    let del: pt::DeleteResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Delete",
        &pt::DeleteTaskRequest {
            container_id: "c1".into(),
        },
    )
    .unwrap();
    assert_eq!(del.exit_status, 3);
    assert_eq!(out.join().unwrap(), "hello from c1\n");
    assert_eq!(err.join().unwrap(), "err\n");
    assert!(!bundle.exists(), "bundle left behind");
    let e = call::<_, pt::GetResponse>(
        &c,
        ns,
        pt::SERVICE,
        "Get",
        &pt::GetRequest {
            container_id: "c1".into(),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.code, Code::NotFound);
    remove_container(&c, ns, "c1");
    let snaps: Vec<ps::ListSnapshotsResponse> = stream(
        &c,
        ns,
        ps::SERVICE,
        "List",
        &ps::ListSnapshotsRequest {
            snapshotter: "overlayfs".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let names: Vec<String> = snaps
        .into_iter()
        .flat_map(|s| s.info)
        .map(|i| i.name)
        .collect();
    assert!(!names.iter().any(|n| n == "c1"), "{names:?}");
    assert!(!names.is_empty(), "the image's layer snapshot stays");

    // Deleting the image with sync collects its blobs and snapshots.
    let _: Empty = call(
        &c,
        ns,
        pi::SERVICE,
        "Delete",
        &pi::DeleteImageRequest {
            name: reference.clone(),
            sync: true,
        },
    )
    .unwrap();
    let blobs: Vec<pct::ListContentResponse> = stream(
        &c,
        ns,
        pct::SERVICE,
        "List",
        &pct::ListContentRequest::default(),
    )
    .unwrap();
    let blobs: Vec<String> = blobs
        .into_iter()
        .flat_map(|b| b.info)
        .map(|i| i.digest)
        .collect();
    assert!(blobs.is_empty(), "{blobs:?}");
    let snaps: Vec<ps::ListSnapshotsResponse> = stream(
        &c,
        ns,
        ps::SERVICE,
        "List",
        &ps::ListSnapshotsRequest {
            snapshotter: "overlayfs".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(snaps.iter().all(|s| s.info.is_empty()), "{snaps:?}");
}

#[test]
fn exec_pids_and_events_of_a_running_container() {
    let work = TempDir::new("daemon-work");
    let Some((_reg, reference)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    let ns = d.ns.clone();
    let ns = ns.as_str();
    let c = d.client();
    // Events of this namespace's exits and execs, from before the task starts.
    let sub = c
        .stream(
            "containerd.services.events.v1.Events",
            "Subscribe",
            skiff::proto::services::events::SubscribeRequest {
                filters: vec![
                    // containerd's syntax: a value starting with `/` is quoted.
                    format!("namespace=={ns},topic==\"/tasks/exit\""),
                    format!("namespace=={ns},topic==\"/tasks/exec-added\""),
                ],
            }
            .encode_to_vec(),
            false,
            &[],
        )
        .unwrap();
    let image = pull(&c, ns, &reference);
    create_container(&c, ns, &image, "c4", &["sleep", "1000"]);
    let t = d.start_task(&c, "c4");

    let container: pc::GetContainerResponse = call(
        &c,
        ns,
        pc::SERVICE,
        "Get",
        &pc::GetContainerRequest { id: "c4".into() },
    )
    .unwrap();
    let spec_json = container.container.unwrap().spec.unwrap().value;
    let process = spec::exec_process(
        &spec_json,
        &["sh".into(), "-c".into(), "echo in $GREETING; exit 5".into()],
        false,
    )
    .unwrap();
    let fifos = work.join("fifos");
    fs::create_dir_all(&fifos).unwrap();
    let out = fifo_reader(&fifos.join("e1-stdout"));
    let _: Empty = call(
        &c,
        ns,
        pt::SERVICE,
        "Exec",
        &pt::ExecProcessRequest {
            container_id: "c4".into(),
            exec_id: "e1".into(),
            stdout: fifos.join("e1-stdout").to_string_lossy().into(),
            spec: Some(Any {
                type_url: spec::PROCESS_TYPE_URL.into(),
                value: process,
            }),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("exec: {e}\n{}", d.log()));
    let started: pt::StartResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Start",
        &pt::StartRequest {
            container_id: "c4".into(),
            exec_id: "e1".into(),
        },
    )
    .unwrap();
    let w: pt::WaitResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Wait",
        &pt::WaitRequest {
            container_id: "c4".into(),
            exec_id: "e1".into(),
        },
    )
    .unwrap();
    assert_eq!(w.exit_status, 5);
    let del: pt::DeleteResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "DeleteProcess",
        &pt::DeleteProcessRequest {
            container_id: "c4".into(),
            exec_id: "e1".into(),
        },
    )
    .unwrap();
    assert_eq!((del.exit_status, del.pid), (5, started.pid));
    assert_eq!(out.join().unwrap(), "in hello\n");

    let pids: pt::ListPidsResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "ListPids",
        &pt::ListPidsRequest {
            container_id: "c4".into(),
        },
    )
    .unwrap();
    assert!(pids.processes.iter().any(|p| p.pid == t.pid), "{pids:?}");
    // sleep as pid 1 of its namespace ignores SIGTERM.
    assert_eq!(d.end_task(&c, "c4", 9), 137);
    remove_container(&c, ns, "c4");

    // exec-added, the exec's exit, the task's exit, in that order.
    let mut topics = Vec::new();
    while topics.len() < 3 {
        let Some(m) = sub.recv(Some(Duration::from_secs(10))).unwrap() else {
            break;
        };
        let env = skiff::proto::events::Envelope::decode(m.as_slice()).unwrap();
        assert_eq!(env.namespace, ns);
        let ev = env.event.unwrap();
        if env.topic == "/tasks/exit" {
            let e = skiff::proto::events::TaskExit::decode(ev.value.as_slice()).unwrap();
            topics.push(format!("exit {} {}", e.id, e.exit_status));
        } else {
            topics.push(env.topic);
        }
    }
    assert_eq!(topics, ["/tasks/exec-added", "exit e1 5", "exit c4 137"]);
}

#[test]
fn containers_outlive_a_killed_daemon() {
    let work = TempDir::new("daemon-work");
    let Some((_reg, reference)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = Daemon::new();
    let ns = d.ns.clone();
    let ns = ns.as_str();
    let pid = {
        let c = d.client();
        let image = pull(&c, ns, &reference);
        create_container(&c, ns, &image, "c2", &["sleep", "1000"]);
        let t = d.start_task(&c, "c2");
        t.pid
    };
    d.note_pids();
    d.kill9();
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(pid), "the container died with the daemon");

    d.start();
    let c = d.client();
    let l: pt::ListTasksResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "List",
        &pt::ListTasksRequest::default(),
    )
    .unwrap();
    assert_eq!(l.tasks.len(), 1, "{l:?}\n{}", d.log());
    assert_eq!(
        (
            l.tasks[0].container_id.as_str(),
            l.tasks[0].pid,
            l.tasks[0].status
        ),
        ("c2", pid, pt::status::RUNNING)
    );
    assert_eq!(d.end_task(&c, "c2", 9), 137);
    remove_container(&c, ns, "c2");
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.pids.iter().any(|p| alive(*p as u32)) {
        assert!(
            Instant::now() < deadline,
            "shim or container still running: {:?}",
            d.pids
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dead_shim_is_cleaned_up_on_restart() {
    let work = TempDir::new("daemon-work");
    let Some((_reg, reference)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = Daemon::new();
    let ns = d.ns.clone();
    let ns = ns.as_str();
    {
        let c = d.client();
        let image = pull(&c, ns, &reference);
        create_container(&c, ns, &image, "c3", &["sleep", "1000"]);
        d.start_task(&c, "c3");
    }
    d.note_pids();
    d.kill9();
    // The shim and the container die while no daemon runs.
    for p in &d.pids {
        unsafe { libc::kill(*p, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(300));
    d.start();
    let c = d.client();
    let l: pt::ListTasksResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "List",
        &pt::ListTasksRequest::default(),
    )
    .unwrap();
    assert!(l.tasks.is_empty(), "{l:?}\n{}", d.log());
    assert!(
        !d.state()
            .join(format!("io.containerd.runtime.v2.task/{ns}/c3"))
            .exists(),
        "bundle left: {}",
        d.log()
    );
    remove_container(&c, ns, "c3");
}

#[test]
fn debians_runc_shim_runs_a_container_too() {
    if !require(
        Path::new("/usr/bin/containerd-shim-runc-v2").exists(),
        "/usr/bin/containerd-shim-runc-v2 (package containerd)",
    ) {
        return;
    }
    let work = TempDir::new("daemon-work");
    let Some((_reg, reference)) = registry_with_busybox(&work) else {
        return;
    };
    let d = Daemon::new();
    let ns = d.ns.clone();
    let ns = ns.as_str();
    let c = d.client();
    let image = pull(&c, ns, &reference);
    create_container_with(
        &c,
        ns,
        &image,
        "r1",
        &["sh", "-c", "echo via runc"],
        "io.containerd.runc.v2",
    );
    let fifos = work.join("fifos");
    fs::create_dir_all(&fifos).unwrap();
    let out = fifo_reader(&fifos.join("r1-stdout"));
    // Debian's shim wants both (ctr always passes both without -t).
    let err = fifo_reader(&fifos.join("r1-stderr"));
    let _: pt::CreateTaskResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Create",
        &pt::CreateTaskRequest {
            container_id: "r1".into(),
            stdout: fifos.join("r1-stdout").to_string_lossy().into(),
            stderr: fifos.join("r1-stderr").to_string_lossy().into(),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("task create: {e}\n{}", d.log()));
    let _: pt::StartResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Start",
        &pt::StartRequest {
            container_id: "r1".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let w: pt::WaitResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Wait",
        &pt::WaitRequest {
            container_id: "r1".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(w.exit_status, 0);
    let bundle = d
        .state()
        .join(format!("io.containerd.runtime.v2.task/{ns}/r1"));
    let addr = fs::read_to_string(bundle.join("address")).unwrap();
    let shim = Client::connect(addr.trim()).unwrap();
    let info: st::ConnectResponse = skiff::ttrpc::call(
        &shim,
        st::SERVICE_V2,
        "Connect",
        &st::ConnectRequest { id: "r1".into() },
        Some(Duration::from_secs(5)),
    )
    .unwrap();
    let exe = fs::read_link(format!("/proc/{}/exe", info.shim_pid)).unwrap();
    assert_eq!(exe, Path::new("/usr/bin/containerd-shim-runc-v2"));
    let _: pt::DeleteResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "Delete",
        &pt::DeleteTaskRequest {
            container_id: "r1".into(),
        },
    )
    .unwrap();
    assert_eq!(out.join().unwrap(), "via runc\n");
    assert_eq!(err.join().unwrap(), "");
    remove_container(&c, ns, "r1");
}

/// One Content.Write stream: each request answered before the next goes.
fn write_blob(
    c: &Client,
    ns: &str,
    reqs: Vec<pct::WriteContentRequest>,
) -> Result<Vec<pct::WriteContentResponse>, Status> {
    let md = [(NS_KEY.to_string(), ns.to_string())];
    let mut reqs = reqs.into_iter();
    let first = reqs.next().unwrap();
    let s = c.stream(pct::SERVICE, "Write", first.encode_to_vec(), true, &md)?;
    let mut out = Vec::new();
    loop {
        match s.recv(Some(Duration::from_secs(30)))? {
            Some(m) => out.push(pct::WriteContentResponse::decode(m.as_slice()).unwrap()),
            None => return Ok(out),
        }
        match reqs.next() {
            Some(r) => s.send(&r.encode_to_vec())?,
            None => {
                s.close_send()?;
            }
        }
    }
}

#[test]
fn content_write_verifies_and_stores_blobs() {
    use pct::write_action as act;
    let d = Daemon::new();
    let ns = d.ns.clone();
    let ns = ns.as_str();
    let c = d.client();
    let data = b"hello, content store".to_vec();
    let digest = skiff::image::digest::Digest::of(&data).to_string();
    let req = |action, offset: usize, part: &[u8]| pct::WriteContentRequest {
        action,
        r#ref: "test-ref".into(),
        total: data.len() as i64,
        expected: digest.clone(),
        offset: offset as i64,
        data: part.to_vec(),
        labels: Default::default(),
    };
    let answers = write_blob(
        &c,
        ns,
        vec![
            req(act::STAT, 0, b""),
            req(act::WRITE, 0, &data[..5]),
            req(act::COMMIT, 5, &data[5..]),
        ],
    )
    .unwrap_or_else(|e| panic!("write: {e}\n{}", d.log()));
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(
        (answers[1].offset, answers[2].digest.as_str()),
        (5, digest.as_str())
    );
    assert_eq!(read_blob(&c, ns, &digest), data);
    let info: pct::InfoResponse = call(
        &c,
        ns,
        pct::SERVICE,
        "Info",
        &pct::InfoRequest {
            digest: digest.clone(),
        },
    )
    .unwrap();
    assert_eq!(info.info.unwrap().size, data.len() as i64);

    // Writing it again: AlreadyExists, as containerd answers.
    let e = write_blob(&c, ns, vec![req(act::STAT, 0, b"")]).unwrap_err();
    assert_eq!(e.code, Code::AlreadyExists, "{e}");

    // Bytes that do not match the expected digest never become a blob.
    let wrong = skiff::image::digest::Digest::of(b"something else!!!!!!").to_string();
    let bad = pct::WriteContentRequest {
        action: act::COMMIT,
        r#ref: "bad".into(),
        total: data.len() as i64,
        expected: wrong.clone(),
        data: data.clone(),
        ..Default::default()
    };
    let e = write_blob(&c, ns, vec![bad]).unwrap_err();
    assert!(
        e.message.contains(&wrong[7..19]) || e.message.contains("digest"),
        "{e}"
    );
    let e = call::<_, pct::InfoResponse>(
        &c,
        ns,
        pct::SERVICE,
        "Info",
        &pct::InfoRequest { digest: wrong },
    )
    .unwrap_err();
    assert_eq!(e.code, Code::NotFound);
}

/// A shim that does not answer while the daemon restarts (stopped, not
/// dead) keeps its container: the new daemon must not clean it up.
#[test]
fn a_stopped_shim_survives_a_daemon_restart() {
    let work = TempDir::new("daemon-work");
    let Some((_reg, reference)) = registry_with_busybox(&work) else {
        return;
    };
    let mut d = Daemon::new();
    let ns = d.ns.clone();
    let ns = ns.as_str();
    let pid = {
        let c = d.client();
        let image = pull(&c, ns, &reference);
        create_container(&c, ns, &image, "c5", &["sleep", "1000"]);
        let t = d.start_task(&c, "c5");
        t.pid
    };
    d.note_pids();
    let bundle = d
        .state()
        .join(format!("io.containerd.runtime.v2.task/{ns}/c5"));
    // note_pids saw the shim first, then its task.
    assert_eq!(d.pids.len(), 2, "{:?}", d.pids);
    let shim_pid = d.pids[0];
    d.kill9();
    unsafe { libc::kill(shim_pid, libc::SIGSTOP) };
    d.start();
    // The daemon listens before it recovers; its recovery gives a shim 5 s
    // to answer: stay stopped past that.
    std::thread::sleep(Duration::from_secs(7));
    unsafe { libc::kill(shim_pid, libc::SIGCONT) };
    assert!(alive(pid), "the container was killed: {}", d.log());
    assert!(bundle.join("config.json").exists(), "bundle removed");
    let c = d.client();
    let l: pt::ListTasksResponse = call(
        &c,
        ns,
        pt::SERVICE,
        "List",
        &pt::ListTasksRequest::default(),
    )
    .unwrap();
    assert_eq!(l.tasks.len(), 1, "{l:?}\n{}", d.log());
    assert_eq!(
        (l.tasks[0].pid, l.tasks[0].status),
        (pid, pt::status::RUNNING)
    );
    assert_eq!(d.end_task(&c, "c5", 9), 137);
    remove_container(&c, ns, "c5");
    assert!(!bundle.exists(), "bundle left after delete");
}

/// `--address` naming something that is not a socket: refused, kept.
#[test]
fn an_address_that_is_not_a_socket_is_refused_and_kept() {
    let dir = TempDir::new("daemon-addr");
    let file = dir.join("not-a-socket");
    fs::write(&file, "precious").unwrap();
    let mut child = Command::new(skiff_bin())
        .arg0_containerd()
        .args(["--root", &dir.s("root"), "--state", &dir.s("state")])
        .arg("--address")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started on a regular file");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "precious");
}
