//! The server and the client together over a socket, with a handler that
//! echoes: unary, server- and bidi-streaming calls, statuses, limits.

use super::*;
use crate::daemon::api::{Ctx, Handler, Sink};
use crate::h2::{Conn, Limits, Role};
use crate::proto::services::content;
use std::sync::Arc;

/// Unary "Echo" answers the payload with the namespace in front;
/// "Fail" fails with the payload as message; the streaming "Read" sends
/// the request back three times; "Write" echoes every client message.
struct Echo;

impl Handler for Echo {
    fn call(&self, ctx: &Ctx, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
        match method {
            "Echo" => Ok([ctx.namespace.as_bytes(), b":", payload].concat()),
            "Fail" => Err(Status::new(
                Code::NotFound,
                String::from_utf8_lossy(payload),
            )),
            _ => Err(crate::ttrpc::unknown_method(method)),
        }
    }

    fn stream(&self, _: &Ctx, method: &str, payload: &[u8], out: &dyn Sink) -> Result<(), Status> {
        match method {
            "Read" => (0..3).try_for_each(|_| out.send(payload)),
            "Write" => {
                out.send(payload)?;
                while let Some(m) = out.recv()? {
                    out.send(&m)?;
                }
                Ok(())
            }
            _ => Err(crate::ttrpc::unknown_method(method)),
        }
    }
}

struct Served {
    path: String,
    stop: ShutdownHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve() -> Served {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = format!("/tmp/skiff-grpc-test-{}-{n}.sock", std::process::id());
    let _ = std::fs::remove_file(&path);
    let listener = crate::ttrpc::listen(&path).unwrap();
    let mut server = Server::new();
    server.register("test.Echo", Arc::new(Echo));
    server.register(content::SERVICE, Arc::new(Echo));
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.serve(listener).unwrap());
    Served {
        path,
        stop,
        thread: Some(thread),
    }
}

fn ns(n: &str) -> Vec<(String, String)> {
    vec![("containerd-namespace".into(), n.into())]
}

#[test]
fn unary_calls_carry_the_namespace_and_statuses_come_back() {
    let s = serve();
    let c = Client::connect(&s.path).unwrap();
    let t = Some(Duration::from_secs(10));
    assert_eq!(
        c.call("test.Echo", "Echo", b"hi".to_vec(), t, &ns("k8s.io"))
            .unwrap(),
        b"k8s.io:hi"
    );
    assert_eq!(
        c.call("test.Echo", "Echo", Vec::new(), t, &[]).unwrap(),
        b"default:"
    );
    // A message with a newline, a percent and non-ASCII survives grpc-message.
    let msg = "image \"x\": 100% gone\n— really";
    let e = c
        .call("test.Echo", "Fail", msg.as_bytes().to_vec(), t, &[])
        .unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (Code::NotFound, msg));
    let e = c.call("test.Nope", "X", Vec::new(), t, &[]).unwrap_err();
    assert_eq!(e.code, Code::Unimplemented, "{e}");
    let e = c.call("test.Echo", "Nope", Vec::new(), t, &[]).unwrap_err();
    assert_eq!(e.code, Code::Unimplemented, "{e}");
    // A large message (over every window) both ways.
    let big = vec![9u8; 5 << 20];
    let back = c.call("test.Echo", "Echo", big.clone(), t, &[]).unwrap();
    assert_eq!(back.len(), big.len() + "default:".len());
    // Over the limit: refused before it is sent.
    let e = c
        .call("test.Echo", "Echo", vec![0; MAX_MESSAGE + 1], t, &[])
        .unwrap_err();
    assert_eq!(e.code, Code::ResourceExhausted, "{e}");
}

#[test]
fn server_and_bidi_streams() {
    let s = serve();
    let c = Client::connect(&s.path).unwrap();
    let t = Some(Duration::from_secs(10));
    let st = c
        .stream(content::SERVICE, "Read", b"r".to_vec(), false, &[])
        .unwrap();
    for _ in 0..3 {
        assert_eq!(st.recv(t).unwrap().as_deref(), Some(&b"r"[..]));
    }
    assert_eq!(st.recv(t).unwrap(), None);

    let st = c
        .stream(content::SERVICE, "Write", b"0".to_vec(), true, &[])
        .unwrap();
    assert_eq!(st.recv(t).unwrap().as_deref(), Some(&b"0"[..]));
    for i in 1..20u8 {
        st.send(&[i; 1000]).unwrap();
        assert_eq!(st.recv(t).unwrap(), Some(vec![i; 1000]));
    }
    st.close_send().unwrap();
    assert_eq!(st.recv(t).unwrap(), None);
    // A receive that times out leaves the stream usable.
    let st = c
        .stream(content::SERVICE, "Write", b"a".to_vec(), true, &[])
        .unwrap();
    assert_eq!(st.recv(t).unwrap().as_deref(), Some(&b"a"[..]));
    let e = st.recv(Some(Duration::from_millis(100))).unwrap_err();
    assert_eq!(e.code, Code::DeadlineExceeded);
    st.send(b"b").unwrap();
    assert_eq!(st.recv(t).unwrap().as_deref(), Some(&b"b"[..]));
}

#[test]
fn a_message_declared_over_the_limit_is_refused() {
    let s = serve();
    let sock = crate::ttrpc::connect_stream(&s.path).unwrap();
    let conn = Conn::open(sock, Role::Client, Limits::default()).unwrap();
    let reader = conn.clone();
    std::thread::spawn(move || reader.run_reader(&mut |_| false));
    let stream = conn
        .open_stream(
            &[
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", b"/test.Echo/Echo"),
                (b"content-type", b"application/grpc"),
            ],
            false,
        )
        .unwrap();
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&((MAX_MESSAGE + 1) as u32).to_be_bytes());
    stream.send_data(&prefix, false).unwrap();
    let mut r = MessageReader::before_headers();
    let deadline = Some(std::time::Instant::now() + Duration::from_secs(10));
    while r.next(&stream, deadline).unwrap().is_some() {}
    let e = status_of(r.trailers.as_deref().unwrap()).unwrap_err();
    assert_eq!(e.code, Code::ResourceExhausted, "{e}");
    conn.close();
}

/// A raw client stream to `s` with these request headers.
fn raw_call(s: &Served, content_type: &[u8], end: bool) -> (Arc<Conn>, crate::h2::StreamRef) {
    let sock = crate::ttrpc::connect_stream(&s.path).unwrap();
    let conn = Conn::open(sock, Role::Client, Limits::default()).unwrap();
    let reader = conn.clone();
    std::thread::spawn(move || reader.run_reader(&mut |_| false));
    let stream = conn
        .open_stream(
            &[
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", b"/test.Echo/Echo"),
                (b"content-type", content_type),
            ],
            end,
        )
        .unwrap();
    (conn, stream)
}

#[test]
fn a_request_ended_with_its_headers_fails_at_once() {
    let s = serve();
    let (conn, stream) = raw_call(&s, b"application/grpc", true);
    let t = std::time::Instant::now();
    let mut r = MessageReader::before_headers();
    let deadline = Some(t + Duration::from_secs(10));
    while r.next(&stream, deadline).unwrap().is_some() {}
    let e = status_of(r.trailers.as_deref().unwrap()).unwrap_err();
    assert_eq!(e.code, Code::Internal, "{e}");
    assert!(e.message.contains("no request message"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    conn.close();
}

#[test]
fn only_grpc_content_types_are_taken() {
    let s = serve();
    for (ct, ok) in [
        (&b"application/grpc"[..], true),
        (b"application/grpc+proto", true),
        (b"application/grpc; charset=x", true),
        (b"application/grpcx", false),
        (b"application/grpc-web", false),
    ] {
        let (conn, stream) = raw_call(&s, ct, true);
        let mut r = MessageReader::before_headers();
        let deadline = Some(std::time::Instant::now() + Duration::from_secs(10));
        while r.next(&stream, deadline).unwrap().is_some() {}
        let status = r.http_status.clone().unwrap();
        let want: &[u8] = if ok { b"200" } else { b"415" };
        assert_eq!(status, want, "{}", String::from_utf8_lossy(ct));
        conn.close();
    }
}

#[test]
fn connections_over_the_cap_are_closed_at_accept() {
    use std::io::Read;
    let s = serve();
    let held: Vec<_> = (0..super::server::MAX_CONNECTIONS)
        .map(|_| crate::ttrpc::connect_stream(&s.path).unwrap())
        .collect();
    // Each held connection got the server's SETTINGS: all are accepted.
    for c in &held {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        assert_eq!((&*c).read(&mut b).unwrap(), 1);
    }
    let over = crate::ttrpc::connect_stream(&s.path).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    assert_eq!((&over).read(&mut b).unwrap(), 0, "closed without a word");
    drop(held);
}
