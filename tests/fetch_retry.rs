//! A registry that is briefly overloaded: skiff-fetch retries 503 answers
//! and reports what the registry finally said.

mod fetch_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Answer the first `busy` requests with 503, the rest with 404; keep each
/// request's head.
fn flaky_registry(busy: usize) -> (String, Arc<AtomicUsize>) {
    let (addr, seen, _) = recording_registry(busy);
    (addr, seen)
}

type Heads = Arc<std::sync::Mutex<Vec<String>>>;

fn recording_registry(busy: usize) -> (String, Arc<AtomicUsize>, Heads) {
    let heads: Heads = Arc::default();
    let kept = heads.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let mut head = String::new();
            // Read the request head.
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                head.push_str(&line);
                line.clear();
            }
            kept.lock().unwrap().push(head);
            let n = count.fetch_add(1, Ordering::SeqCst);
            let (status, body) = if n < busy {
                ("503 Service Unavailable", "{}".to_string())
            } else {
                (
                    "404 Not Found",
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                        .to_string(),
                )
            };
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen, heads)
}

#[test]
fn retries_a_busy_registry() {
    let (addr, seen) = flaky_registry(2);
    let reference = format!("{addr}/nothing:here");
    // inspect reads no store: nothing to clean up but the server thread.
    let out = fetch_support::fetch(&["inspect", "--plain-http", &reference]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("404"),
        "the final answer is reported: {stderr}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3, "two 503s, then the 404");
}

#[test]
fn user_credentials_stay_with_the_upstream_registry() {
    // The mirror answers 404 (the pull then falls back to the upstream,
    // which is not there); it must never see --user's password.
    let (mirror, _, heads) = recording_registry(0);
    let upstream = "127.0.0.1:9"; // discard port: nothing listens
    let store = std::env::temp_dir().join(format!("skiff-creds-store-{}", std::process::id()));
    let out = fetch_support::fetch(&[
        "pull",
        "--store",
        store.to_str().unwrap(),
        "--plain-http",
        "--user",
        "alice:secret",
        "--mirror",
        &format!("{upstream}=http://{mirror}"),
        &format!("{upstream}/t/img:x"),
    ]);
    let store_left = store.exists();
    let _ = std::fs::remove_dir_all(&store);
    assert!(!out.status.success());
    assert!(!store_left, "a failed first pull leaves no store behind");
    let heads = heads.lock().unwrap();
    assert!(!heads.is_empty(), "the mirror was asked first");
    for h in heads.iter() {
        assert!(
            !h.to_ascii_lowercase().contains("authorization"),
            "mirror got credentials: {h}"
        );
    }
}
