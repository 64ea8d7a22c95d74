//! ttrpc's framing: every message is a 10-byte header, big-endian
//! `length u32` (of the data, header not counted), `stream id u32`,
//! `type u8`, `flags u8`, then `length` bytes of data (an encoded
//! Request or Response for unary calls).

use std::io::{self, Read, Write};

pub const HEADER_LEN: usize = 10;
/// ttrpc's limit on a message's data (`messageLengthMax = 4 << 20`).
pub const MAX_DATA: usize = 4 << 20;
/// Beyond this an oversized message is not worth reading through: the
/// connection is closed instead (ttrpc itself discards any length).
pub const MAX_DISCARD: usize = 64 << 20;

pub const TYPE_REQUEST: u8 = 1;
pub const TYPE_RESPONSE: u8 = 2;
/// Stream data (ttrpc v1.2 streaming); unary calls do not use it.
pub const TYPE_DATA: u8 = 3;

pub const FLAG_REMOTE_CLOSED: u8 = 0x1;
pub const FLAG_REMOTE_OPEN: u8 = 0x2;
pub const FLAG_NO_DATA: u8 = 0x4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub stream_id: u32,
    pub kind: u8,
    pub flags: u8,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.length.to_be_bytes());
        b[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        b[8] = self.kind;
        b[9] = self.flags;
        b
    }

    pub fn decode(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            length: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream_id: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            kind: b[8],
            flags: b[9],
        }
    }
}

/// What reading the next frame gave.
#[derive(Debug)]
pub enum Frame {
    /// A whole message.
    Message(Header, Vec<u8>),
    /// A message longer than [`MAX_DATA`]; its data was read and dropped,
    /// so the connection can go on.
    TooLarge(Header),
}

/// Read the next frame; `Ok(None)` on a clean end of stream before a
/// header. A stream ending inside a frame, or a length past
/// [`MAX_DISCARD`], is an error (the connection cannot go on).
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut hb = [0u8; HEADER_LEN];
    if !read_header(r, &mut hb)? {
        return Ok(None);
    }
    let h = Header::decode(&hb);
    let len = h.length as usize;
    if len > MAX_DATA {
        if len > MAX_DISCARD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("message length {len} is far beyond the maximum of {MAX_DATA}"),
            ));
        }
        let skipped = io::copy(&mut r.take(len as u64), &mut io::sink())?;
        if skipped != len as u64 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        return Ok(Some(Frame::TooLarge(h)));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Some(Frame::Message(h, data)))
}

/// Fill `hb`; false if the stream ended before its first byte.
fn read_header(r: &mut impl Read, hb: &mut [u8; HEADER_LEN]) -> io::Result<bool> {
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut hb[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A frame as one buffer, so that one write puts it on the socket whole.
pub fn encode_frame(stream_id: u32, kind: u8, flags: u8, data: &[u8]) -> io::Result<Vec<u8>> {
    if data.len() > MAX_DATA {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "message length {} exceeds the maximum message size of {MAX_DATA}",
                data.len()
            ),
        ));
    }
    let h = Header {
        length: data.len() as u32,
        stream_id,
        kind,
        flags,
    };
    let mut buf = Vec::with_capacity(HEADER_LEN + data.len());
    buf.extend_from_slice(&h.encode());
    buf.extend_from_slice(data);
    Ok(buf)
}

/// Write one frame.
pub fn write_frame(
    w: &mut impl Write,
    stream_id: u32,
    kind: u8,
    flags: u8,
    data: &[u8],
) -> io::Result<()> {
    w.write_all(&encode_frame(stream_id, kind, flags, data)?)
}
