//! A registry that is briefly overloaded: skiff-fetch retries 503 answers
//! and reports what the registry finally said.

mod fetch_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Answer the first `busy` requests with 503, the rest with 404.
fn flaky_registry(busy: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // Read the request head.
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
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
    (addr, seen)
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
