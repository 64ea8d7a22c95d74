use super::frame::*;
use super::*;
use crate::proto::task::{StateRequest, StateResponse};
use crate::proto::ttrpc::{KeyValue, Request, Response};
use crate::proto::types::RpcStatus;
use prost::Message;
use std::io::Cursor;

#[test]
fn header_is_ten_big_endian_bytes() {
    let h = Header {
        length: 0x0102_0304,
        stream_id: 0x0a0b_0c0d,
        kind: TYPE_RESPONSE,
        flags: FLAG_REMOTE_CLOSED | FLAG_NO_DATA,
    };
    let b = h.encode();
    assert_eq!(b, [1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 2, 5]);
    assert_eq!(Header::decode(&b), h);
}

#[test]
fn frames_round_trip_back_to_back() {
    let mut wire = Vec::new();
    write_frame(&mut wire, 1, TYPE_REQUEST, 0, b"abc").unwrap();
    write_frame(&mut wire, 3, TYPE_REQUEST, 0, b"").unwrap();
    assert_eq!(&wire[..HEADER_LEN], &[0, 0, 0, 3, 0, 0, 0, 1, 1, 0]);
    let mut r = Cursor::new(wire);
    match read_frame(&mut r).unwrap() {
        Some(Frame::Message(h, d)) => {
            assert_eq!(
                (h.stream_id, h.kind, d.as_slice()),
                (1, TYPE_REQUEST, &b"abc"[..])
            )
        }
        other => panic!("{other:?}"),
    }
    match read_frame(&mut r).unwrap() {
        Some(Frame::Message(h, d)) => assert_eq!((h.stream_id, d.len()), (3, 0)),
        other => panic!("{other:?}"),
    }
    assert!(read_frame(&mut r).unwrap().is_none(), "clean end of stream");
}

#[test]
fn truncated_frames_are_errors() {
    let mut wire = Vec::new();
    write_frame(&mut wire, 1, TYPE_REQUEST, 0, b"abcdef").unwrap();
    for cut in [3, HEADER_LEN, HEADER_LEN + 2] {
        let e = read_frame(&mut Cursor::new(&wire[..cut])).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "cut at {cut}");
    }
}

#[test]
fn oversize_frames_are_skipped_or_refused() {
    // Just over the limit: read through, and the next frame is intact.
    let over = MAX_DATA + 1;
    let mut wire = Header {
        length: over as u32,
        stream_id: 5,
        kind: TYPE_REQUEST,
        flags: 0,
    }
    .encode()
    .to_vec();
    wire.resize(HEADER_LEN + over, 0xaa);
    write_frame(&mut wire, 7, TYPE_REQUEST, 0, b"next").unwrap();
    let mut r = Cursor::new(wire);
    match read_frame(&mut r).unwrap() {
        Some(Frame::TooLarge(h)) => assert_eq!((h.stream_id, h.length as usize), (5, over)),
        other => panic!("{other:?}"),
    }
    match read_frame(&mut r).unwrap() {
        Some(Frame::Message(h, d)) => assert_eq!((h.stream_id, d.as_slice()), (7, &b"next"[..])),
        other => panic!("{other:?}"),
    }
    // Absurd lengths are not read through.
    let absurd = Header {
        length: u32::MAX,
        stream_id: 1,
        kind: TYPE_REQUEST,
        flags: 0,
    }
    .encode();
    let e = read_frame(&mut Cursor::new(absurd.to_vec())).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    // Nor written.
    assert!(encode_frame(1, TYPE_REQUEST, 0, &vec![0; MAX_DATA + 1]).is_err());
    assert!(encode_frame(1, TYPE_REQUEST, 0, &vec![0; MAX_DATA]).is_ok());
}

#[test]
fn request_and_response_envelopes_round_trip() {
    let req = Request {
        service: "containerd.task.v2.Task".into(),
        method: "State".into(),
        payload: StateRequest {
            id: "c1".into(),
            exec_id: String::new(),
        }
        .encode_to_vec(),
        timeout_nano: 2_000_000_000,
        metadata: vec![KeyValue {
            key: "containerd-namespace-ttrpc".into(),
            value: "default".into(),
        }],
    };
    assert_eq!(Request::decode(&req.encode_to_vec()[..]).unwrap(), req);
    let resp = Response {
        status: Some(RpcStatus {
            code: Code::NotFound as i32,
            message: "container c1: not found".into(),
            details: vec![],
        }),
        payload: vec![],
    };
    assert_eq!(Response::decode(&resp.encode_to_vec()[..]).unwrap(), resp);
    // Success carries no status at all (nothing but the payload on the wire).
    let ok = Response {
        status: None,
        payload: vec![1, 2],
    };
    assert_eq!(ok.encode_to_vec(), [0x12, 2, 1, 2]);
}

#[test]
fn codes_keep_grpc_numbers() {
    assert_eq!(Code::InvalidArgument as i32, 3);
    assert_eq!(Code::Unimplemented as i32, 12);
    assert_eq!(Code::Unauthenticated as i32, 16);
    for n in 0..=16 {
        assert_eq!(Code::from_i32(n) as i32, n);
    }
    assert_eq!(Code::from_i32(17), Code::Unknown);
    assert_eq!(Code::from_i32(-1), Code::Unknown);
}

#[test]
fn error_kinds_become_codes_and_back() {
    let s = Status::from(crate::err_kind!(NotFound, "container x: not found"));
    assert_eq!(s, Status::new(Code::NotFound, "container x: not found"));
    assert_eq!(Status::from(crate::err!("boom")).code, Code::Unknown);
    assert_eq!(
        Status::from(crate::err_kind!(FailedPrecondition, "running")).code,
        Code::FailedPrecondition
    );
    let e = crate::Error::from(Status::new(Code::AlreadyExists, "c exists"));
    assert_eq!(
        (e.kind(), e.message()),
        (crate::Kind::AlreadyExists, "c exists")
    );
}

#[test]
fn unary_decodes_runs_and_encodes() {
    let payload = StateRequest {
        id: "c1".into(),
        exec_id: "e1".into(),
    }
    .encode_to_vec();
    let out = unary(&payload, |r: StateRequest| {
        Ok(StateResponse {
            id: r.id,
            exec_id: r.exec_id,
            pid: 42,
            ..Default::default()
        })
    })
    .unwrap();
    let resp = StateResponse::decode(&out[..]).unwrap();
    assert_eq!(
        (resp.id.as_str(), resp.exec_id.as_str(), resp.pid),
        ("c1", "e1", 42)
    );

    let e = unary(&[0x0a, 5, b'x'], |_: StateRequest| {
        Ok(StateResponse::default())
    })
    .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    assert!(e.message.starts_with("decode StateRequest: "), "{e}");

    let e = unary(
        &payload,
        |_: StateRequest| -> Result<StateResponse, Status> {
            Err(Status::new(Code::NotFound, "no c1"))
        },
    )
    .unwrap_err();
    assert_eq!(e.code, Code::NotFound);
}
