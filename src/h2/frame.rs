//! HTTP/2 framing (RFC 9113 §4, §6): the 9-byte frame header, the frame
//! types and flags gRPC uses, and the payload layouts of the control
//! frames. Pure byte work: no socket, no state.

use super::ErrorCode;

pub const HEADER_LEN: usize = 9;
/// The client's connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The smallest SETTINGS_MAX_FRAME_SIZE (every peer must take it) and
/// the one we advertise.
pub const DEFAULT_MAX_FRAME: usize = 16 << 10;
/// Largest legal SETTINGS_MAX_FRAME_SIZE.
pub const MAX_MAX_FRAME: u32 = (1 << 24) - 1;
/// Largest flow-control window (2^31 - 1).
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The initial window of a connection and, until SETTINGS say otherwise,
/// of every stream.
pub const DEFAULT_WINDOW: i64 = 65_535;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    pub fn parse(b: &[u8; HEADER_LEN]) -> Head {
        Head {
            len: (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize,
            kind: b[3],
            flags: b[4],
            // The reserved top bit is ignored on receipt.
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Append one frame (header and payload) to `out`; `payload` must fit
/// the peer's max frame size (the callers split).
pub fn put(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    debug_assert!(len <= MAX_MAX_FRAME as usize);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A header block as HEADERS plus CONTINUATION frames of at most
/// `max_frame` bytes each.
pub fn put_headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let mut chunks = block.chunks(max_frame.max(1)).peekable();
    let mut kind = HEADERS;
    let mut flags = if end_stream { FLAG_END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        put(out, kind, flags | FLAG_END_HEADERS, stream, &[]);
        return;
    }
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_none() {
            flags |= FLAG_END_HEADERS;
        }
        put(out, kind, flags, stream, chunk);
        kind = CONTINUATION;
        flags = 0;
    }
}

pub fn put_settings(out: &mut Vec<u8>, settings: &[(u16, u32)]) {
    let mut p = Vec::with_capacity(settings.len() * 6);
    for (id, v) in settings {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    put(out, SETTINGS, 0, 0, &p);
}

pub fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put(out, WINDOW_UPDATE, 0, stream, &increment.to_be_bytes());
}

pub fn put_rst(out: &mut Vec<u8>, stream: u32, code: ErrorCode) {
    put(out, RST_STREAM, 0, stream, &(code as u32).to_be_bytes());
}

pub fn put_goaway(out: &mut Vec<u8>, last_stream: u32, code: ErrorCode, debug: &[u8]) {
    let mut p = Vec::with_capacity(8 + debug.len());
    p.extend_from_slice(&last_stream.to_be_bytes());
    p.extend_from_slice(&(code as u32).to_be_bytes());
    p.extend_from_slice(&debug[..debug.len().min(256)]);
    put(out, GOAWAY, 0, 0, &p);
}

/// A protocol violation found while reading a frame's payload: a
/// connection error with its code and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub ErrorCode, pub &'static str);

/// Strip the padding of a DATA or HEADERS payload (RFC 9113 §6.1).
pub fn unpad(h: &Head, payload: &[u8]) -> Result<std::ops::Range<usize>, Violation> {
    if !h.has(FLAG_PADDED) {
        return Ok(0..payload.len());
    }
    let Some(&pad) = payload.first() else {
        return Err(Violation(
            ErrorCode::FrameSize,
            "padded frame without pad length",
        ));
    };
    let end = payload.len().checked_sub(pad as usize);
    match end {
        Some(end) if end >= 1 => Ok(1..end),
        _ => Err(Violation(
            ErrorCode::Protocol,
            "padding longer than the frame",
        )),
    }
}

/// The header block fragment of a HEADERS payload (padding and priority
/// removed).
pub fn headers_fragment(h: &Head, payload: &[u8]) -> Result<std::ops::Range<usize>, Violation> {
    let mut r = unpad(h, payload)?;
    if h.has(FLAG_PRIORITY) {
        if r.len() < 5 {
            return Err(Violation(
                ErrorCode::FrameSize,
                "HEADERS too short for its priority",
            ));
        }
        r.start += 5;
    }
    Ok(r)
}

/// The (id, value) pairs of a SETTINGS payload.
pub fn parse_settings(payload: &[u8]) -> Result<Vec<(u16, u32)>, Violation> {
    if !payload.len().is_multiple_of(6) {
        return Err(Violation(
            ErrorCode::FrameSize,
            "SETTINGS length not a multiple of 6",
        ));
    }
    Ok(payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect())
}

/// A u32 payload (WINDOW_UPDATE's increment without its reserved bit,
/// RST_STREAM's code).
pub fn parse_u32(payload: &[u8], what: &'static str) -> Result<u32, Violation> {
    let b: [u8; 4] = payload
        .try_into()
        .map_err(|_| Violation(ErrorCode::FrameSize, what))?;
    Ok(u32::from_be_bytes(b))
}

/// GOAWAY's last stream id and error code.
pub fn parse_goaway(payload: &[u8]) -> Result<(u32, u32), Violation> {
    if payload.len() < 8 {
        return Err(Violation(
            ErrorCode::FrameSize,
            "GOAWAY shorter than 8 bytes",
        ));
    }
    let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
    let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
    Ok((last, code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(buf: &[u8]) -> Head {
        Head::parse(buf[..HEADER_LEN].try_into().unwrap())
    }

    #[test]
    fn a_frame_round_trips_through_its_header() {
        let mut out = Vec::new();
        put(&mut out, DATA, FLAG_END_STREAM, 7, b"hello");
        assert_eq!(out.len(), HEADER_LEN + 5);
        assert_eq!(&out[..9], &[0, 0, 5, 0, 1, 0, 0, 0, 7]);
        let h = head_of(&out);
        assert_eq!(
            h,
            Head {
                len: 5,
                kind: DATA,
                flags: 1,
                stream: 7
            }
        );
        assert!(h.has(FLAG_END_STREAM));
        assert_eq!(&out[9..], b"hello");
    }

    #[test]
    fn the_reserved_stream_bit_is_ignored() {
        let h = Head::parse(&[0, 1, 0, 8, 0, 0x80, 0, 0, 3]);
        assert_eq!(h.stream, 3);
        assert_eq!(h.len, 256);
    }

    #[test]
    fn a_large_header_block_continues_in_continuation_frames() {
        let block: Vec<u8> = (0..40u8).collect();
        let mut out = Vec::new();
        put_headers(&mut out, 5, &block, true, 16);
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let h = head_of(rest);
            frames.push((h, rest[9..9 + h.len].to_vec()));
            rest = &rest[9 + h.len..];
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].0.kind, HEADERS);
        assert_eq!(frames[0].0.flags, FLAG_END_STREAM);
        assert_eq!(frames[1].0.kind, CONTINUATION);
        assert_eq!(frames[1].0.flags, 0);
        assert_eq!(frames[2].0.flags, FLAG_END_HEADERS);
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.1.clone()).collect();
        assert_eq!(joined, block);
        // An empty block is one HEADERS with END_HEADERS.
        let mut out = Vec::new();
        put_headers(&mut out, 1, &[], false, 16);
        assert_eq!(head_of(&out).flags, FLAG_END_HEADERS);
    }

    #[test]
    fn padding_and_priority_are_stripped() {
        let h = Head {
            len: 0,
            kind: HEADERS,
            flags: FLAG_PADDED | FLAG_PRIORITY,
            stream: 1,
        };
        // pad length 2, priority (5 bytes), fragment "ab", padding 2.
        let p = [2, 0, 0, 0, 0, 9, b'a', b'b', 0, 0];
        assert_eq!(&p[headers_fragment(&h, &p).unwrap()], b"ab");
        // Padding longer than the frame.
        let h = Head {
            len: 0,
            kind: DATA,
            flags: FLAG_PADDED,
            stream: 1,
        };
        assert_eq!(unpad(&h, &[5, 1, 2]).unwrap_err().0, ErrorCode::Protocol);
        assert_eq!(unpad(&h, &[]).unwrap_err().0, ErrorCode::FrameSize);
        assert_eq!(&[1u8, 7, 0][unpad(&h, &[1, 7, 0]).unwrap()], &[7]);
    }

    #[test]
    fn settings_goaway_and_u32_payloads_parse_or_fail_with_the_right_code() {
        let mut out = Vec::new();
        put_settings(
            &mut out,
            &[
                (SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20),
                (SETTINGS_ENABLE_PUSH, 0),
            ],
        );
        let h = head_of(&out);
        assert_eq!((h.kind, h.len, h.stream), (SETTINGS, 12, 0));
        assert_eq!(
            parse_settings(&out[9..]).unwrap(),
            vec![
                (SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20),
                (SETTINGS_ENABLE_PUSH, 0)
            ]
        );
        assert_eq!(parse_settings(&[0; 5]).unwrap_err().0, ErrorCode::FrameSize);

        let mut out = Vec::new();
        put_goaway(&mut out, 9, ErrorCode::EnhanceYourCalm, b"too much");
        assert_eq!(parse_goaway(&out[9..]).unwrap(), (9, 0xb));
        assert_eq!(&out[17..], b"too much");
        assert!(parse_goaway(&[0; 7]).is_err());

        let mut out = Vec::new();
        put_window_update(&mut out, 3, 1000);
        assert_eq!(parse_u32(&out[9..], "x").unwrap(), 1000);
        assert_eq!(parse_u32(&[0; 3], "x").unwrap_err().0, ErrorCode::FrameSize);
    }
}
