//! The daemon's gRPC API (HTTP/2 on `--address`) as containerd's own
//! clients speak it: Debian's `ctr` (containerd 1.6) for version,
//! namespaces, images, containers, content (ingest over a bidi stream,
//! get over a server stream), leases and events; python3-grpcio for unary
//! and streaming calls with deadlines; and raw sockets speaking HTTP/2
//! badly while a good client keeps being served on another connection.
//!
//! Each test has its own daemon (tests/common/daemon.rs); its ttrpc
//! socket (`ADDRESS.ttrpc`) is used to cause events across transports.

// The shared harness (included below) has helpers this file does not use.
#![allow(dead_code)]

#[path = "fetch_support/mod.rs"]
mod support;

use prost::Message;
use skiff::daemon::spec::{self, SpecOptions, SPEC_TYPE_URL};
use skiff::h2::frame::{self, Head};
use skiff::h2::hpack::Encoder;
use skiff::image::oci::{self, Document};
use skiff::proto::services::{
    containers as pc, content as pct, events as pe, images as pi, pull as pp, snapshots as ps,
    tasks as pt,
};
use skiff::proto::task as st;
use skiff::proto::types::{Any, Empty};
use skiff::ttrpc::{Client, Code, Status};
use std::fs;
use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

include!("common/daemon.rs");

const CTR: &str = "/usr/bin/ctr";
const PYTHON: &str = "/usr/bin/python3";

fn have_ctr() -> bool {
    require(
        Path::new(CTR).exists(),
        "/usr/bin/ctr (Debian's containerd package)",
    )
}

/// Debian's ctr against the daemon: (success, stdout, stderr).
fn ctr(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(CTR)
        .args(["-a", &d.address(), "--timeout", "30s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ctr");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ctr_ok(d: &Daemon, args: &[&str]) -> String {
    let (ok, out, err) = ctr(d, args);
    assert!(ok, "ctr {args:?} failed: {err}\n{}", d.log());
    out
}

fn sha256(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[test]
fn debian_ctr_talks_grpc_to_the_daemon() {
    if !have_ctr() {
        return;
    }
    let d = Daemon::new();
    let ns = d.ns.clone();
    let v = ctr_ok(&d, &["version"]);
    let server = v
        .split("Server:")
        .nth(1)
        .unwrap_or_else(|| panic!("no server part: {v}"));
    assert!(server.contains(env!("CARGO_PKG_VERSION")), "{v}");

    ctr_ok(&d, &["namespaces", "create", &ns, "team=a"]);
    let ls = ctr_ok(&d, &["namespaces", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&ns) && l.contains("team=a")),
        "{ls}"
    );
    // Empty lists still come back with their headers.
    for (what, header) in [
        ("images", "REF"),
        ("containers", "CONTAINER"),
        ("content", "DIGEST"),
        ("leases", "ID"),
    ] {
        let out = ctr_ok(&d, &["-n", &ns, what, "ls"]);
        assert!(out.starts_with(header), "{what} ls: {out}");
        assert_eq!(out.lines().count(), 1, "{what} ls: {out}");
    }

    // A blob in through a bidi stream (content Write), out through a
    // server stream (content Read), listed through another (List).
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256(&blob);
    let mut ingest = Command::new(CTR)
        .args(["-a", &d.address(), "-n", &ns, "content", "ingest"])
        .args([
            "--expected-size",
            &blob.len().to_string(),
            "--expected-digest",
            &digest,
        ])
        .arg("test-ref")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ingest.stdin.take().unwrap().write_all(&blob).unwrap();
    let out = ingest.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ingest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ls = ctr_ok(&d, &["-n", &ns, "content", "ls"]);
    assert!(ls.contains(&digest), "{ls}");
    let got = Command::new(CTR)
        .args(["-a", &d.address(), "-n", &ns, "content", "get", &digest])
        .output()
        .unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(
        got.stdout == blob,
        "content get gave {} bytes",
        got.stdout.len()
    );
    ctr_ok(&d, &["-n", &ns, "content", "rm", &digest]);

    // A status comes back with its code and message (grpc-message).
    let (ok, _, err) = ctr(&d, &["-n", &ns, "content", "get", &sha256(b"nothing")]);
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");

    ctr_ok(&d, &["namespaces", "rm", &ns]);
    let ls = ctr_ok(&d, &["namespaces", "ls"]);
    assert!(!ls.lines().any(|l| l.starts_with(&ns)), "{ls}");
}

/// A NamespaceCreate event (containerd.events.NamespaceCreate, name = 1)
/// that ctr knows how to print.
fn namespace_event(name: &str) -> Any {
    let mut value = vec![0x0a, name.len() as u8];
    value.extend_from_slice(name.as_bytes());
    Any {
        type_url: "containerd.events.NamespaceCreate".into(),
        value,
    }
}

#[test]
fn debian_ctr_events_streams_an_event_published_over_ttrpc() {
    if !have_ctr() {
        return;
    }
    let d = Daemon::new();
    let c = d.client();
    let pid = d.child.as_ref().unwrap().id();
    // Only the gRPC call threads: other threads (readers, timers) come
    // and go on their own.
    let threads = || {
        fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|t| {
                fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "grpc-call")
            })
            .count()
    };
    // Both servers up and the ttrpc client's connection served: the
    // baseline before anyone subscribes.
    call::<_, Empty>(
        &c,
        &d.ns,
        pe::SERVICE,
        "Publish",
        &pe::PublishRequest {
            topic: "/skiff/test/warm-up".into(),
            event: Some(namespace_event("warm-up")),
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let idle_threads = threads();
    let mut events = Command::new(CTR)
        .args(["-a", &d.address(), "events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = events.stdout.take().unwrap();
    let mut events = Kill(events);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // Published until ctr (subscribing meanwhile) prints it.
    let topic = "/skiff/test/grpc";
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        assert!(
            Instant::now() < deadline,
            "no event from ctr events\n{}",
            d.log()
        );
        call::<_, Empty>(
            &c,
            &d.ns,
            pe::SERVICE,
            "Publish",
            &pe::PublishRequest {
                topic: topic.into(),
                event: Some(namespace_event("from-ttrpc")),
            },
        )
        .unwrap();
        // Events of the daemon's first seconds (the warm-up) are replayed
        // to new subscribers: look for this one.
        let mut found = None;
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
            if l.contains(topic) {
                found = Some(l);
                break;
            }
        }
        if let Some(l) = found {
            break l;
        }
    };
    assert!(line.contains(topic) && line.contains(&d.ns), "{line}");
    assert!(line.contains("from-ttrpc"), "{line}");
    assert!(events.0.try_wait().unwrap().is_none(), "ctr events ended");
    assert!(threads() > idle_threads);
    // ctr goes away: its subscription's thread ends too, without waiting
    // for another event.
    drop(events);
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads() > idle_threads {
        assert!(
            Instant::now() < deadline,
            "{} threads, {idle_threads} before ctr events",
            threads()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The subset of containerd's protos the python client uses (field
/// numbers from containerd 1.6's api/services).
const PROTOS: &[(&str, &str)] = &[
    (
        "version.proto",
        r#"syntax = "proto3";
package containerd.services.version.v1;
message VersionResponse { string version = 1; string revision = 2; }
"#,
    ),
    (
        "namespaces.proto",
        r#"syntax = "proto3";
package containerd.services.namespaces.v1;
message Namespace { string name = 1; map<string, string> labels = 2; }
message GetNamespaceRequest { string name = 1; }
message GetNamespaceResponse { Namespace namespace = 1; }
message ListNamespacesRequest { string filter = 1; }
message ListNamespacesResponse { repeated Namespace namespaces = 1; }
message CreateNamespaceRequest { Namespace namespace = 1; }
message CreateNamespaceResponse { Namespace namespace = 1; }
"#,
    ),
    (
        "events.proto",
        r#"syntax = "proto3";
package containerd.services.events.v1;
import "google/protobuf/any.proto";
import "google/protobuf/timestamp.proto";
message PublishRequest { string topic = 1; google.protobuf.Any event = 2; }
message SubscribeRequest { repeated string filters = 1; }
message Envelope {
  google.protobuf.Timestamp timestamp = 1;
  string namespace = 2;
  string topic = 3;
  google.protobuf.Any event = 4;
}
"#,
    ),
    (
        "content.proto",
        r#"syntax = "proto3";
package containerd.services.content.v1;
message WriteContentRequest {
  int32 action = 1; string ref = 2; int64 total = 3; string expected = 4;
  int64 offset = 5; bytes data = 6;
}
message WriteContentResponse {
  int32 action = 1; int64 offset = 4; int64 total = 5; string digest = 6;
}
message ReadContentRequest { string digest = 1; int64 offset = 2; int64 size = 3; }
message ReadContentResponse { int64 offset = 1; bytes data = 2; }
"#,
    ),
];

/// Unary and streaming calls through grpcio; one JSON-ish `key=value`
/// line per check, asserted by the test.
const CLIENT_PY: &str = r#"
import sys, threading, time, hashlib, grpc
from google.protobuf import empty_pb2, any_pb2
import version_pb2 as v, namespaces_pb2 as n, events_pb2 as e, content_pb2 as c

sock, ns = sys.argv[1], sys.argv[2]
ch = grpc.insecure_channel("unix://" + sock)
md = (("containerd-namespace", ns),)
def unary(path, req, resp, **kw):
    return ch.unary_unary(path, request_serializer=req.SerializeToString,
                          response_deserializer=resp.FromString)
def out(k, val):
    print(f"{k}={val}", flush=True)

r = ch.unary_unary("/containerd.services.version.v1.Version/Version",
    request_serializer=empty_pb2.Empty.SerializeToString,
    response_deserializer=v.VersionResponse.FromString)(empty_pb2.Empty(), timeout=10)
out("version", r.version)

create = ch.unary_unary("/containerd.services.namespaces.v1.Namespaces/Create",
    request_serializer=n.CreateNamespaceRequest.SerializeToString,
    response_deserializer=n.CreateNamespaceResponse.FromString)
create(n.CreateNamespaceRequest(namespace=n.Namespace(name=ns, labels={"k": "v"})), timeout=10)
lst = ch.unary_unary("/containerd.services.namespaces.v1.Namespaces/List",
    request_serializer=n.ListNamespacesRequest.SerializeToString,
    response_deserializer=n.ListNamespacesResponse.FromString)(n.ListNamespacesRequest(), timeout=10)
out("namespaces", ",".join(x.name for x in lst.namespaces))
try:
    ch.unary_unary("/containerd.services.namespaces.v1.Namespaces/Get",
        request_serializer=n.GetNamespaceRequest.SerializeToString,
        response_deserializer=n.GetNamespaceResponse.FromString)(
            n.GetNamespaceRequest(name="no-such-ns"), timeout=10)
    out("get_missing", "OK")
except grpc.RpcError as err:
    out("get_missing", err.code().name + " " + err.details())

subscribe = ch.unary_stream("/containerd.services.events.v1.Events/Subscribe",
    request_serializer=e.SubscribeRequest.SerializeToString,
    response_deserializer=e.Envelope.FromString)
# A deadline on a stream that stays quiet.
t = time.monotonic()
try:
    for _ in subscribe(e.SubscribeRequest(filters=['topic=="/never"']), timeout=1.0, metadata=md):
        pass
    out("quiet", "ended")
except grpc.RpcError as err:
    out("quiet", "%s %.2f" % (err.code().name, time.monotonic() - t))

# An event published while subscribed.
publish = ch.unary_unary("/containerd.services.events.v1.Events/Publish",
    request_serializer=e.PublishRequest.SerializeToString,
    response_deserializer=empty_pb2.Empty.FromString)
stream = subscribe(e.SubscribeRequest(filters=['topic=="/py/test"']), timeout=20, metadata=md)
def pub():
    for _ in range(40):
        time.sleep(0.25)
        ev = any_pb2.Any(type_url="containerd.events.NamespaceCreate", value=b"\x0a\x02py")
        publish(e.PublishRequest(topic="/py/test", event=ev), timeout=10, metadata=md)
threading.Thread(target=pub, daemon=True).start()
env = next(stream)
out("event", env.topic + " " + env.namespace)
stream.cancel()

# Bidi: a blob written in two messages (write, commit), then read back.
data = bytes(range(256)) * 1000
dg = "sha256:" + hashlib.sha256(data).hexdigest()
def reqs():
    yield c.WriteContentRequest(action=1, ref="py-ref", total=len(data), expected=dg, offset=0, data=data[:100000])
    yield c.WriteContentRequest(action=2, ref="py-ref", total=len(data), expected=dg, offset=100000, data=data[100000:])
write = ch.stream_stream("/containerd.services.content.v1.Content/Write",
    request_serializer=c.WriteContentRequest.SerializeToString,
    response_deserializer=c.WriteContentResponse.FromString)
resps = list(write(reqs(), timeout=20, metadata=md))
out("write", "%d %s" % (len(resps), resps[-1].digest))
read = ch.unary_stream("/containerd.services.content.v1.Content/Read",
    request_serializer=c.ReadContentRequest.SerializeToString,
    response_deserializer=c.ReadContentResponse.FromString)
got = b"".join(m.data for m in read(c.ReadContentRequest(digest=dg), timeout=20, metadata=md))
out("read", "%d %s" % (len(got), got == data))
"#;

#[test]
fn python_grpcio_unary_and_streaming_calls_with_deadlines() {
    let dir = TempDir::new("grpc-py");
    for (name, text) in PROTOS {
        fs::write(dir.join(name), text).unwrap();
    }
    fs::write(dir.join("client.py"), CLIENT_PY).unwrap();
    let protoc = Command::new("protoc")
        .arg(format!("--proto_path={}", dir.path().display()))
        .arg(format!("--python_out={}", dir.path().display()))
        .args(PROTOS.iter().map(|(n, _)| dir.join(n)))
        .output();
    let probe = Command::new(PYTHON)
        .args(["-c", "import grpc, google.protobuf"])
        .output();
    let ready = matches!(&protoc, Ok(o) if o.status.success())
        && matches!(&probe, Ok(o) if o.status.success());
    if !require(ready, "protoc + python3-grpcio + python3-protobuf") {
        return;
    }
    let d = Daemon::new();
    let out = Command::new(PYTHON)
        .arg(dir.join("client.py"))
        .args([&d.address(), &d.ns])
        .env("PYTHONPATH", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "client failed: {}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    let get = |k: &str| -> String {
        let prefix = format!("{k}=");
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {k} in {stdout}"))
            .to_string()
    };
    assert_eq!(get("version"), format!("v{}", env!("CARGO_PKG_VERSION")));
    assert!(get("namespaces").split(',').any(|n| n == d.ns), "{stdout}");
    let missing = get("get_missing");
    assert!(
        missing.starts_with("NOT_FOUND ") && missing.contains("no-such-ns"),
        "{missing}"
    );
    let quiet = get("quiet");
    let (code, secs) = quiet.split_once(' ').unwrap();
    assert_eq!(code, "DEADLINE_EXCEEDED", "{quiet}");
    let secs: f64 = secs.parse().unwrap();
    assert!((0.9..5.0).contains(&secs), "{quiet}");
    assert_eq!(get("event"), format!("/py/test {}", d.ns));
    let data: Vec<u8> = (0..1000).flat_map(|_| 0..=255u8).collect();
    assert_eq!(get("write"), format!("2 {}", sha256(&data)));
    assert_eq!(get("read"), format!("{} True", data.len()));
}

/// A raw connection to the daemon's gRPC socket.
fn raw(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(d.address()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Preface and SETTINGS, as a client opens.
fn opened(d: &Daemon) -> UnixStream {
    let s = raw(d);
    let mut out = frame::PREFACE.to_vec();
    frame::put_settings(&mut out, &[]);
    (&s).write_all(&out).unwrap();
    s
}

/// What the server sent until it closed: the GOAWAY error code, if any.
fn goaway_then_close(s: &UnixStream) -> Option<u32> {
    let mut code = None;
    loop {
        let mut h = [0u8; frame::HEADER_LEN];
        if (&*s).read_exact(&mut h).is_err() {
            return code;
        }
        let h = Head::parse(&h);
        let mut p = vec![0; h.len];
        if (&*s).read_exact(&mut p).is_err() {
            return code;
        }
        if h.kind == frame::GOAWAY {
            code = frame::parse_goaway(&p).ok().map(|(_, c)| c);
        }
    }
}

#[test]
fn bad_http2_clients_do_not_disturb_a_good_one() {
    let d = Daemon::new();
    let good = skiff::grpc::Client::connect(&d.address()).unwrap();
    let version = |c: &skiff::grpc::Client| {
        c.call(
            skiff::proto::services::version::SERVICE,
            "Version",
            Vec::new(),
            Some(Duration::from_secs(10)),
            &[],
        )
    };
    version(&good).expect("the good client before");

    // Garbage instead of the preface.
    let s = raw(&d);
    (&s).write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(goaway_then_close(&s), Some(1), "PROTOCOL_ERROR");

    // A truncated frame, then the end of the connection.
    let s = opened(&d);
    (&s).write_all(&[0, 0, 100, frame::PING, 0, 0, 0, 0, 0, 1, 2, 3])
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(goaway_then_close(&s), Some(6), "FRAME_SIZE_ERROR");

    // A header block that never ends (CONTINUATION flood).
    let s = opened(&d);
    let mut out = Vec::new();
    frame::put(&mut out, frame::HEADERS, 0, 1, &[0; 16 << 10]);
    for _ in 0..64 {
        frame::put(&mut out, frame::CONTINUATION, 0, 1, &[0; 16 << 10]);
    }
    let writer = {
        let s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = (&s).write_all(&out);
        })
    };
    assert_eq!(goaway_then_close(&s), Some(0xb), "ENHANCE_YOUR_CALM");
    writer.join().unwrap();

    // A frame over the maximum size.
    let s = opened(&d);
    let mut out = Vec::new();
    frame::put(&mut out, frame::DATA, 0, 1, &vec![0; 20 << 10]);
    let _ = (&s).write_all(&out);
    assert_eq!(goaway_then_close(&s), Some(6), "FRAME_SIZE_ERROR");

    // Streams that open and never send their request: they hold their
    // handlers (up to the connection's limit, then refused) but nobody
    // else's.
    let hog = opened(&d);
    // One encoder for all the blocks: its table is the connection's.
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    let fields: [(&[u8], &[u8]); 5] = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/containerd.services.version.v1.Version/Version"),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
    ];
    for i in 0..33u32 {
        let mut b = Vec::new();
        enc.encode(fields, &mut b);
        frame::put_headers(&mut out, 2 * i + 1, &b, false, 16 << 10);
    }
    (&hog).write_all(&out).unwrap();
    // The 33rd is refused (REFUSED_STREAM): 32 per connection.
    let refused = loop {
        let mut h = [0u8; frame::HEADER_LEN];
        (&hog)
            .read_exact(&mut h)
            .expect("the server answers the hog");
        let h = Head::parse(&h);
        let mut p = vec![0; h.len];
        (&hog).read_exact(&mut p).unwrap();
        if h.kind == frame::RST_STREAM {
            break (h.stream, frame::parse_u32(&p, "").unwrap());
        }
    };
    assert_eq!(refused, (65, 7), "stream 65 refused");

    // A stream with a deadline that never sends its request: the server
    // answers DEADLINE_EXCEEDED when the deadline passes.
    let late = opened(&d);
    let mut block = Vec::new();
    let fields: [(&[u8], &[u8]); 6] = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/containerd.services.version.v1.Version/Version"),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"grpc-timeout", b"1S"),
    ];
    Encoder::new().encode(fields, &mut block);
    let mut out = Vec::new();
    frame::put_headers(&mut out, 1, &block, false, 16 << 10);
    let t = Instant::now();
    (&late).write_all(&out).unwrap();
    let mut decoder = skiff::h2::hpack::Decoder::new(4096);
    let status = loop {
        let mut h = [0u8; frame::HEADER_LEN];
        (&late)
            .read_exact(&mut h)
            .expect("an answer to the late stream");
        let h = Head::parse(&h);
        let mut p = vec![0; h.len];
        (&late).read_exact(&mut p).unwrap();
        if h.kind == frame::HEADERS && h.stream == 1 {
            let fields = decoder.decode(&p, 1 << 16).unwrap();
            let get = |n: &str| {
                fields
                    .iter()
                    .find(|f| f.name == n.as_bytes())
                    .map(|f| String::from_utf8_lossy(&f.value).into_owned())
            };
            if let Some(s) = get("grpc-status") {
                break (s, get("grpc-message").unwrap_or_default());
            }
        }
    };
    assert_eq!(status.0, "4", "DEADLINE_EXCEEDED: {status:?}");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A connection that never says anything is closed after the
    // handshake timeout; meanwhile the good client is served.
    let silent = raw(&d);
    let t = Instant::now();
    for _ in 0..10 {
        version(&good).expect("the good client while others misbehave");
        let other = skiff::grpc::Client::connect(&d.address()).unwrap();
        version(&other).expect("a new good client");
    }
    if have_ctr() {
        ctr_ok(&d, &["version"]);
    }
    let mut buf = Vec::new();
    let _ = (&silent).read_to_end(&mut buf);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(25),
        "{waited:?}"
    );
    version(&good).expect("the good client after");
    drop(hog);
    let mut d = d;
    assert!(
        d.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the daemon died\n{}",
        d.log()
    );
}
