use super::*;
use crate::h2::frame::*;
use std::sync::mpsc;

/// A server and a client connection over a socket pair; the server's
/// new streams arrive on the channel.
fn pair(limits: Limits) -> (Arc<Conn>, mpsc::Receiver<StreamRef>) {
    let (a, b) = UnixStream::pair().unwrap();
    let (tx, rx) = mpsc::channel();
    let server_limits = limits.clone();
    std::thread::spawn(move || {
        let server = Conn::open(b, Role::Server, server_limits).unwrap();
        server.run_reader(&mut |s| tx.send(s).is_ok());
    });
    let client = Conn::open(a, Role::Client, limits).unwrap();
    let reader = client.clone();
    std::thread::spawn(move || reader.run_reader(&mut |_| false));
    (client, rx)
}

fn read_all(s: &StreamRef) -> (usize, Vec<Vec<u8>>) {
    let (mut n, mut blocks) = (0, Vec::new());
    loop {
        match s
            .next(Some(Instant::now() + Duration::from_secs(20)))
            .expect("an event in time")
        {
            Event::Data { data, end } => {
                n += data.len();
                if end {
                    return (n, blocks);
                }
            }
            Event::Headers { fields, end } => {
                blocks.push(
                    fields
                        .iter()
                        .flat_map(|f| [f.name.clone(), f.value.clone()])
                        .flatten()
                        .collect(),
                );
                if end {
                    return (n, blocks);
                }
            }
            Event::Reset(c) => panic!("reset {c}"),
            Event::Closed(why) => panic!("closed: {why}"),
        }
    }
}

#[test]
fn bodies_larger_than_the_windows_flow_both_ways() {
    let limits = Limits {
        stream_window: 64 << 10,
        conn_window: 100 << 10,
        ..Limits::default()
    };
    let (client, streams) = pair(limits);
    let body = vec![7u8; 3 << 20];
    let stream = client.open_stream(&[(b":path", b"/x")], false).unwrap();
    let sent = std::thread::scope(|sc| {
        let sender = sc.spawn(|| stream.send_data(&body, true));
        let srv = streams.recv_timeout(Duration::from_secs(10)).unwrap();
        let server = sc.spawn(move || {
            let (n, blocks) = read_all(&srv);
            assert_eq!(n, 3 << 20);
            assert_eq!(blocks.len(), 1, "the request headers only");
            // The answer: headers, a body over the client's window, trailers.
            srv.send_headers(&[(b":status", b"200")], false).unwrap();
            srv.send_data(&vec![1u8; 1 << 20], false).unwrap();
            srv.send_headers(&[(b"grpc-status", b"0")], true).unwrap();
        });
        let (n, blocks) = read_all(&stream);
        assert_eq!(n, 1 << 20);
        assert_eq!(blocks.len(), 2);
        server.join().unwrap();
        sender.join().unwrap()
    });
    sent.unwrap();
}

#[test]
fn a_sender_waits_for_window_and_gives_up_when_it_stays_shut() {
    let limits = Limits {
        stream_window: 16 << 10,
        send_stall_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (client, streams) = pair(limits);
    let stream = client.open_stream(&[(b":path", b"/x")], false).unwrap();
    let _srv = streams.recv_timeout(Duration::from_secs(10)).unwrap();
    // The server never reads: 16 KiB go, the rest waits, then fails.
    let t = Instant::now();
    let err = stream.send_data(&vec![0u8; 64 << 10], false).unwrap_err();
    assert!(err.0.contains("window stayed shut"), "{err}");
    assert!(t.elapsed() >= Duration::from_millis(300));
}

/// A raw peer: preface and SETTINGS sent, the server's SETTINGS read.
fn raw_server(limits: Limits) -> (UnixStream, mpsc::Receiver<StreamRef>) {
    let (a, b) = UnixStream::pair().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let server = Conn::open(b, Role::Server, limits).unwrap();
        server.run_reader(&mut |s| tx.send(s).is_ok());
    });
    let mut out = PREFACE.to_vec();
    put_settings(&mut out, &[]);
    (&a).write_all(&out).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (a, rx)
}

/// Frames from the server until one of `kind`: its head and payload.
fn expect_frame(s: &UnixStream, kind: u8) -> (Head, Vec<u8>) {
    loop {
        let mut h = [0u8; HEADER_LEN];
        (&*s).read_exact(&mut h).expect("a frame");
        let h = Head::parse(&h);
        let mut p = vec![0; h.len];
        (&*s).read_exact(&mut p).unwrap();
        if h.kind == kind {
            return (h, p);
        }
    }
}

fn headers_block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    Encoder::new().encode(fields.iter().copied(), &mut block);
    block
}

#[test]
fn a_peer_overrunning_a_stream_window_gets_that_stream_reset() {
    let limits = Limits {
        stream_window: 32 << 10,
        ..Limits::default()
    };
    let (s, streams) = raw_server(limits);
    let mut out = Vec::new();
    put_headers(
        &mut out,
        1,
        &headers_block(&[(b":path", b"/x")]),
        false,
        16384,
    );
    // 32 KiB fit the window (the server announced it), one byte more not.
    for _ in 0..2 {
        put(&mut out, DATA, 0, 1, &[0; 16 << 10]);
    }
    put(&mut out, DATA, 0, 1, &[0]);
    (&s).write_all(&out).unwrap();
    let _srv = streams.recv_timeout(Duration::from_secs(10)).unwrap();
    let (h, p) = expect_frame(&s, RST_STREAM);
    assert_eq!(h.stream, 1);
    assert_eq!(parse_u32(&p, "").unwrap(), ErrorCode::FlowControl as u32);
    // The connection lives on: a PING is answered.
    let mut out = Vec::new();
    put(&mut out, PING, 0, 0, b"12345678");
    (&s).write_all(&out).unwrap();
    let (h, p) = expect_frame(&s, PING);
    assert!(h.has(FLAG_ACK));
    assert_eq!(p, b"12345678");
}

#[test]
fn protocol_errors_end_the_connection_with_the_right_goaway() {
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (
            {
                let mut o = Vec::new();
                put(&mut o, DATA, 0, 0, b"x");
                o
            },
            ErrorCode::Protocol,
        ),
        (
            {
                let mut o = Vec::new();
                put(&mut o, PING, 0, 0, b"short");
                o
            },
            ErrorCode::FrameSize,
        ),
        (
            {
                let mut o = Vec::new();
                put_window_update(&mut o, 0, 0);
                o
            },
            ErrorCode::Protocol,
        ),
        (
            {
                let mut o = Vec::new();
                put(&mut o, HEADERS, 0, 1, &[]);
                put(&mut o, PING, 0, 0, &[0; 8]);
                o
            },
            ErrorCode::Protocol,
        ),
        (
            {
                let mut o = Vec::new();
                put(&mut o, DATA, 0, 0x10001, &[0; 20000]);
                o
            },
            ErrorCode::FrameSize,
        ),
        (
            {
                let mut o = Vec::new();
                put_window_update(&mut o, 0, 0x7fff_ffff);
                o
            },
            ErrorCode::FlowControl,
        ),
        (
            {
                let mut o = Vec::new();
                put_settings(&mut o, &[(SETTINGS_MAX_FRAME_SIZE, 100)]);
                o
            },
            ErrorCode::Protocol,
        ),
        (
            {
                let mut o = Vec::new();
                put(&mut o, DATA, 0, 3, b"x");
                o
            },
            ErrorCode::Protocol,
        ),
    ];
    for (i, (bytes, code)) in cases.into_iter().enumerate() {
        let (s, _streams) = raw_server(Limits::default());
        (&s).write_all(&bytes).unwrap();
        let (_, p) = expect_frame(&s, GOAWAY);
        assert_eq!(
            parse_goaway(&p).unwrap().1,
            code as u32,
            "case {i}: {}",
            String::from_utf8_lossy(&p[8..])
        );
        // Then the server closes (a reset is a close too).
        let mut rest = Vec::new();
        assert!(!matches!((&s).read_to_end(&mut rest), Err(e) if is_timeout(&e)));
    }
}

#[test]
fn a_garbage_preface_and_a_continuation_flood_close_the_connection() {
    let (a, b) = UnixStream::pair().unwrap();
    std::thread::spawn(move || {
        Conn::open(b, Role::Server, Limits::default())
            .unwrap()
            .run_reader(&mut |_| true)
    });
    (&a).write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (_, p) = expect_frame(&a, GOAWAY);
    assert_eq!(parse_goaway(&p).unwrap().1, ErrorCode::Protocol as u32);

    let (s, _streams) = raw_server(Limits {
        max_header_list: 8 << 10,
        ..Limits::default()
    });
    let mut o = Vec::new();
    put(&mut o, HEADERS, 0, 1, &[0; 1000]);
    for _ in 0..20 {
        put(&mut o, CONTINUATION, 0, 1, &[0; 1000]);
    }
    let _ = (&s).write_all(&o);
    let (_, p) = expect_frame(&s, GOAWAY);
    assert_eq!(
        parse_goaway(&p).unwrap().1,
        ErrorCode::EnhanceYourCalm as u32
    );
}

/// Events waiting on the server's side of `stream`.
fn queued(srv: &StreamRef) -> usize {
    lock(&srv.conn.st)
        .streams
        .get(&srv.id)
        .map_or(0, |s| s.events.len())
}

/// Send `bytes` then a PING and wait for its ACK: everything before the
/// PING has been applied by then. The frames the server sent before.
fn send_and_sync(s: &UnixStream, bytes: &[u8]) -> Vec<(Head, Vec<u8>)> {
    let mut o = bytes.to_vec();
    put(&mut o, PING, 0, 0, b"syncsync");
    (&*s).write_all(&o).unwrap();
    let mut seen = Vec::new();
    loop {
        let mut h = [0u8; HEADER_LEN];
        (&*s).read_exact(&mut h).expect("a frame");
        let h = Head::parse(&h);
        let mut p = vec![0; h.len];
        (&*s).read_exact(&mut p).unwrap();
        if h.kind == PING && h.has(FLAG_ACK) && p == b"syncsync" {
            return seen;
        }
        seen.push((h, p));
    }
}

#[test]
fn a_headers_flood_on_an_open_stream_queues_at_most_the_trailers() {
    let (s, streams) = raw_server(Limits::default());
    let mut o = Vec::new();
    put_headers(
        &mut o,
        1,
        &headers_block(&[(b":path", b"/x")]),
        false,
        16384,
    );
    for _ in 0..5000 {
        put_headers(&mut o, 1, &headers_block(&[(b"x", b"y")]), false, 16384);
    }
    let seen = send_and_sync(&s, &o);
    let srv = streams.recv_timeout(Duration::from_secs(10)).unwrap();
    // The request headers and the reset the second block caused.
    assert!(queued(&srv) <= 2, "{} events queued", queued(&srv));
    let rst: Vec<_> = seen.iter().filter(|(h, _)| h.kind == RST_STREAM).collect();
    assert_eq!(rst.len(), 1, "one RST_STREAM");
    assert_eq!(rst[0].0.stream, 1);
    assert_eq!(
        parse_u32(&rst[0].1, "").unwrap(),
        ErrorCode::Protocol as u32
    );
}

#[test]
fn resets_and_data_after_the_end_queue_one_reset() {
    let (s, streams) = raw_server(Limits::default());
    let mut o = Vec::new();
    put_headers(&mut o, 1, &headers_block(&[(b":path", b"/x")]), true, 16384);
    for _ in 0..3000 {
        put(&mut o, DATA, 0, 1, b"x");
    }
    put_headers(
        &mut o,
        3,
        &headers_block(&[(b":path", b"/x")]),
        false,
        16384,
    );
    // Fewer than PEER_RESETS: this is about the queue, not the flood.
    for _ in 0..PEER_RESETS - 50 {
        put(&mut o, RST_STREAM, 0, 3, &8u32.to_be_bytes());
    }
    send_and_sync(&s, &o);
    let first = streams.recv_timeout(Duration::from_secs(10)).unwrap();
    let second = streams.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(queued(&first) <= 2, "{} events queued", queued(&first));
    assert!(queued(&second) <= 2, "{} events queued", queued(&second));
}

#[test]
fn small_data_frames_are_coalesced() {
    let (s, streams) = raw_server(Limits::default());
    let mut o = Vec::new();
    put_headers(
        &mut o,
        1,
        &headers_block(&[(b":path", b"/x")]),
        false,
        16384,
    );
    for _ in 0..10000 {
        put(&mut o, DATA, 0, 1, b"x");
    }
    send_and_sync(&s, &o);
    let srv = streams.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(queued(&srv) <= 2, "{} events queued", queued(&srv));
    let _ = srv.next(None); // the headers
    match srv.next(None) {
        Some(Event::Data { data, end: false }) => assert_eq!(data.len(), 10000),
        _ => panic!("expected the data"),
    }
}

#[test]
fn headers_on_a_closed_lower_stream_get_stream_closed() {
    let (s, streams) = raw_server(Limits::default());
    let mut o = Vec::new();
    put_headers(
        &mut o,
        3,
        &headers_block(&[(b":path", b"/x")]),
        false,
        16384,
    );
    put_headers(
        &mut o,
        1,
        &headers_block(&[(b":path", b"/x")]),
        false,
        16384,
    );
    (&s).write_all(&o).unwrap();
    let _srv = streams.recv_timeout(Duration::from_secs(10)).unwrap();
    let (h, p) = expect_frame(&s, RST_STREAM);
    assert_eq!(h.stream, 1);
    assert_eq!(parse_u32(&p, "").unwrap(), ErrorCode::StreamClosed as u32);
}

#[test]
fn a_rapid_reset_flood_ends_the_connection() {
    let (s, _streams) = raw_server(Limits::default());
    let mut o = Vec::new();
    let block = headers_block(&[(b":path", b"/x")]);
    for i in 0..(PEER_RESETS as u32 + 50) {
        let id = 2 * i + 1;
        put_headers(&mut o, id, &block, false, 16384);
        put(&mut o, RST_STREAM, 0, id, &8u32.to_be_bytes());
    }
    let _ = (&s).write_all(&o);
    let (_, p) = expect_frame(&s, GOAWAY);
    assert_eq!(
        parse_goaway(&p).unwrap().1,
        ErrorCode::EnhanceYourCalm as u32
    );
}

/// Write `bytes` one at a time, `gap` apart, until done or the peer closes.
fn drip(s: &UnixStream, bytes: Vec<u8>, gap: Duration) -> std::thread::JoinHandle<()> {
    let s = s.try_clone().unwrap();
    std::thread::spawn(move || {
        for chunk in bytes.chunks(1) {
            if (&s).write_all(chunk).is_err() {
                return;
            }
            std::thread::sleep(gap);
        }
    })
}

#[test]
fn a_frame_dripped_byte_by_byte_times_out_as_a_whole() {
    let (s, _streams) = raw_server(Limits {
        frame_timeout: Duration::from_millis(800),
        ..Limits::default()
    });
    let mut o = Vec::new();
    put(&mut o, PING, 0, 0, b"12345678");
    let t = Instant::now();
    let dripper = drip(&s, o, Duration::from_millis(300));
    let (_, p) = expect_frame(&s, GOAWAY);
    assert_eq!(parse_goaway(&p).unwrap().1, ErrorCode::FrameSize as u32);
    // 17 bytes at 300 ms would take 5 s; the frame's own deadline is 0.8 s.
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let _ = s.shutdown(std::net::Shutdown::Both);
    dripper.join().unwrap();
}

#[test]
fn pings_do_not_keep_a_connection_without_streams_open() {
    let (s, _streams) = raw_server(Limits {
        idle_timeout: Some(Duration::from_millis(800)),
        ..Limits::default()
    });
    let t = Instant::now();
    let mut o = Vec::new();
    for _ in 0..20 {
        put(&mut o, PING, 0, 0, b"12345678");
    }
    // One PING every 250 ms for 5 s.
    let pinger = {
        let s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for f in o.chunks(HEADER_LEN + 8) {
                if (&s).write_all(f).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let (_, p) = expect_frame(&s, GOAWAY);
    assert_eq!(parse_goaway(&p).unwrap().1, ErrorCode::NoError as u32);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let _ = s.shutdown(std::net::Shutdown::Both);
    pinger.join().unwrap();
}
