//! The daemon's gRPC server bounds the memory a client can make it hold
//! in messages it has not finished sending: one connection opens 32
//! calls (its stream limit) and on each sends 15 MiB of a 16 MiB message
//! (under containerd's 16 MiB limit), never the rest. Without a budget the
//! daemon holds all of it (480 MiB); with one, calls past the connection's
//! budget are refused with RESOURCE_EXHAUSTED, the daemon's peak RSS stays
//! bounded, and another client is still served meanwhile.

#[path = "fetch_support/mod.rs"]
mod support;

use prost::Message;
use skiff::daemon::spec::{self, SpecOptions, SPEC_TYPE_URL};
use skiff::h2::{Conn, Event, Limits, Role, StreamRef};
use skiff::image::oci::{self, Document};
use skiff::proto::services::{
    containers as pc, content as pct, images as pi, pull as pp, snapshots as ps, tasks as pt,
};
use skiff::proto::task as st;
use skiff::proto::types::{Any, Empty};
use skiff::ttrpc::{Client, Code, Status};
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

include!("common/daemon.rs");

const MIB: usize = 1 << 20;
/// The server's SETTINGS_MAX_CONCURRENT_STREAMS.
const STREAMS: usize = 32;
/// What each call sends of its message, never finishing it.
const SENT: usize = 15 * MIB;
/// How much more than before the attack the daemon may hold at its peak
/// (its per-connection budget is 64 MiB; without one it holds 480 MiB).
const BOUND: u64 = 160 * MIB as u64;

/// A status line of /proc/PID/status, in bytes.
fn proc_status_bytes(pid: u32, key: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Open a Version call and send the start of a message too large to be
/// finished: the stream, held open, and how many bytes went out.
fn start_partial_call(conn: &std::sync::Arc<Conn>) -> (StreamRef, usize) {
    let fields: [(&[u8], &[u8]); 6] = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/containerd.services.version.v1.Version/Version"),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ];
    let stream = conn.open_stream(&fields, false).expect("open a stream");
    // Uncompressed, declaring 16 MiB - 1 bytes: under the server's limit.
    let declared = (16 * MIB - 1) as u32;
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&declared.to_be_bytes());
    let mut sent = 0;
    if stream.send_data(&prefix, false).is_err() {
        return (stream, sent);
    }
    let chunk = vec![0x5a; MIB];
    while sent < SENT {
        if stream.send_data(&chunk, false).is_err() {
            break; // refused: the server ended the call
        }
        sent += chunk.len();
    }
    (stream, sent)
}

/// The grpc-status of a call's trailers, if it ended with any within 10 s.
fn final_status(stream: &StreamRef) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stream.next(Some(deadline))? {
            Event::Headers { fields, end: true } => {
                let f = fields.iter().find(|f| f.name == b"grpc-status")?;
                return Some(String::from_utf8_lossy(&f.value).into_owned());
            }
            Event::Headers { .. } | Event::Data { .. } => continue,
            Event::Reset(_) | Event::Closed(_) => return None,
        }
    }
}

#[test]
fn partial_messages_cannot_hold_the_daemons_memory() {
    let d = Daemon::new();
    let pid = d.pid();
    d.ok(&["version"]);
    let rss_before = proc_status_bytes(pid, "VmRSS:");

    let conn = Conn::open(
        UnixStream::connect(d.address()).unwrap(),
        Role::Client,
        Limits::default(),
    )
    .unwrap();
    let reader = conn.clone();
    std::thread::spawn(move || reader.run_reader(&mut |_| false));
    let senders: Vec<_> = (0..STREAMS)
        .map(|_| {
            let conn = conn.clone();
            std::thread::spawn(move || start_partial_call(&conn))
        })
        .collect();
    // Every stream is held open (unfinished) while the daemon is measured.
    let calls: Vec<(StreamRef, usize)> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let peak = proc_status_bytes(pid, "VmHWM:");
    let held: usize = calls.iter().map(|(_, sent)| sent).sum();
    assert!(
        peak < rss_before + BOUND,
        "the daemon's peak RSS went from {} MiB to {} MiB; the client got {} MiB in",
        rss_before / MIB as u64,
        peak / MIB as u64,
        held / MIB
    );

    // Another client is served while those calls hang.
    let started = Instant::now();
    d.ok(&["version"]);
    assert!(started.elapsed() < Duration::from_secs(10));

    // The calls past the budget were told why.
    let refused = calls
        .iter()
        .filter(|(_, sent)| *sent < SENT)
        .map(|(s, _)| final_status(s))
        .collect::<Vec<_>>();
    assert!(
        refused.len() >= STREAMS - 4,
        "only {} of {STREAMS} calls refused",
        refused.len()
    );
    for status in &refused {
        assert_eq!(status.as_deref(), Some("8"), "RESOURCE_EXHAUSTED expected");
    }
    drop(calls);
    conn.close();
    d.ok(&["version"]);
}
