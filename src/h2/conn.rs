//! One HTTP/2 connection: the state both sides keep (streams, windows,
//! the peer's settings), the reader loop that applies the peer's frames,
//! and the sending half used by handlers and client calls.
//!
//! A protocol error ends the connection with a GOAWAY naming the error
//! (RFC 9113 §5.4.1); a stream error resets only that stream. Either way
//! only this connection is affected.

use super::flow::{RecvWindow, SendWindow};
use super::frame::{self, Head, Violation, HEADER_LEN};
use super::hpack::{Decoder, Encoder, HeaderField, HpackError};
use super::ErrorCode;
use crate::ttrpc::{lock, wait_for, NoSignalWriter};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Resets from the peer a connection takes per [`PEER_RESET_WINDOW`]
/// before it ends with ENHANCE_YOUR_CALM: opening and resetting streams
/// at once costs the peer nothing and us a handler each (the "rapid
/// reset" attack, CVE-2023-44487).
pub const PEER_RESETS: usize = 200;
pub const PEER_RESET_WINDOW: Duration = Duration::from_secs(10);

/// Which end of the connection we are: it decides stream-id parity and
/// who sends the preface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// The bounds a connection keeps its peer to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Streams the peer may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_streams: u32,
    /// Bytes the peer may send on a stream before we read them.
    pub stream_window: u32,
    /// Bytes in flight on the whole connection.
    pub conn_window: u32,
    /// Decoded header list size (SETTINGS_MAX_HEADER_LIST_SIZE); a
    /// header block's encoded size has the same bound.
    pub max_header_list: usize,
    /// For the preface and the first SETTINGS.
    pub handshake_timeout: Duration,
    /// A connection with no stream and no frame for this long is closed
    /// (GOAWAY NO_ERROR); None: never.
    pub idle_timeout: Option<Duration>,
    /// Once a frame (or a header block) began, the rest must come within this.
    pub frame_timeout: Duration,
    /// How long a sender waits for the peer to open its window.
    pub send_stall_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_streams: 100,
            stream_window: 256 << 10,
            conn_window: 1 << 20,
            max_header_list: 64 << 10,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: None,
            frame_timeout: Duration::from_secs(10),
            send_stall_timeout: Duration::from_secs(60),
        }
    }
}

/// What arrives on a stream, in order.
pub enum Event {
    /// A header block (the request or response headers, or trailers).
    Headers {
        fields: Vec<HeaderField>,
        end: bool,
    },
    Data {
        data: Vec<u8>,
        end: bool,
    },
    /// The peer reset the stream with this error code.
    Reset(u32),
    /// The connection is gone (why).
    Closed(String),
}

/// Why a stream can take nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGone(pub String);

impl std::fmt::Display for StreamGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Stream {
    send: SendWindow,
    recv: RecvWindow,
    events: VecDeque<Event>,
    /// The peer ended its side (END_STREAM), or the stream was reset.
    remote_closed: bool,
    /// We ended our side, or the stream was reset.
    local_closed: bool,
    /// Reset by either side: the reader was told once, and whatever the
    /// peer still sends on it is dropped.
    reset: bool,
    /// Header blocks received: the first opens (request or response
    /// headers), a second must end the stream (trailers, RFC 9113 §8.1).
    blocks: u8,
}

struct State {
    streams: HashMap<u32, Stream>,
    send: SendWindow,
    recv: RecvWindow,
    peer_initial_window: i64,
    peer_max_frame: usize,
    /// The next stream id we open (client: odd).
    next_local: u32,
    /// The highest stream id the peer opened.
    last_peer: u32,
    /// We sent GOAWAY: the peer's new streams are refused.
    going_away: bool,
    /// The peer's GOAWAY: streams of ours above this id were not taken.
    peer_goaway: Option<u32>,
    /// Set once the connection is over: why.
    dead: Option<String>,
    /// When a stream last opened or closed: a connection without streams
    /// is idle from then on, whatever else (PINGs) the peer sends.
    last_activity: Instant,
    /// When the peer reset streams lately (at most PEER_RESETS kept).
    peer_resets: VecDeque<Instant>,
}

struct Out {
    enc: Encoder,
    buf: Vec<u8>,
}

/// One HTTP/2 connection (see the module docs).
pub struct Conn {
    sock: UnixStream,
    role: Role,
    limits: Limits,
    out: Mutex<Out>,
    st: Mutex<State>,
    /// Signalled on every change of `st` a waiter may care about.
    changed: Condvar,
}

/// A connection error: the GOAWAY code and what went wrong.
#[derive(Debug)]
struct ConnError(ErrorCode, String);

impl From<Violation> for ConnError {
    fn from(v: Violation) -> ConnError {
        ConnError(v.0, v.1.to_string())
    }
}

/// A header block being received (HEADERS, then CONTINUATIONs).
struct PendingBlock {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

impl Conn {
    /// Set up a connection on `sock` and send what opens it: the preface
    /// (client), our SETTINGS and the connection window. The reader loop
    /// ([`run_reader`](Self::run_reader)) must then run on its own thread.
    pub fn open(sock: UnixStream, role: Role, limits: Limits) -> io::Result<Arc<Conn>> {
        sock.set_write_timeout(Some(crate::ttrpc::WRITE_TIMEOUT))?;
        let conn = Arc::new(Conn {
            role,
            out: Mutex::new(Out {
                enc: Encoder::new(),
                buf: Vec::new(),
            }),
            st: Mutex::new(State {
                streams: HashMap::new(),
                send: SendWindow::new(frame::DEFAULT_WINDOW),
                recv: RecvWindow::new(limits.conn_window),
                peer_initial_window: frame::DEFAULT_WINDOW,
                peer_max_frame: frame::DEFAULT_MAX_FRAME,
                next_local: if role == Role::Client { 1 } else { 2 },
                last_peer: 0,
                going_away: false,
                peer_goaway: None,
                dead: None,
                last_activity: Instant::now(),
                peer_resets: VecDeque::new(),
            }),
            changed: Condvar::new(),
            sock,
            limits,
        });
        let l = &conn.limits;
        let mut settings = vec![
            (frame::SETTINGS_MAX_CONCURRENT_STREAMS, l.max_streams),
            (frame::SETTINGS_INITIAL_WINDOW_SIZE, l.stream_window),
            (
                frame::SETTINGS_MAX_HEADER_LIST_SIZE,
                l.max_header_list as u32,
            ),
        ];
        if role == Role::Client {
            settings.push((frame::SETTINGS_ENABLE_PUSH, 0));
        }
        let conn_extra = (l.conn_window as i64 - frame::DEFAULT_WINDOW).max(0) as u32;
        conn.write(|_, buf| {
            if role == Role::Client {
                buf.extend_from_slice(frame::PREFACE);
            }
            frame::put_settings(buf, &settings);
            if conn_extra > 0 {
                frame::put_window_update(buf, 0, conn_extra);
            }
        })?;
        Ok(conn)
    }

    /// Write what `f` puts in the buffer as one write, under the write
    /// lock (the HPACK encoder is there too, so header blocks go out in
    /// the order they were encoded). A peer that cannot take it is cut off.
    fn write(&self, f: impl FnOnce(&mut Encoder, &mut Vec<u8>)) -> io::Result<()> {
        let mut out = lock(&self.out);
        let Out { enc, buf } = &mut *out;
        buf.clear();
        f(enc, buf);
        let r = NoSignalWriter(&self.sock).write_all(buf);
        if buf.capacity() > 64 << 10 {
            *buf = Vec::new();
        }
        if r.is_err() {
            let _ = self.sock.shutdown(std::net::Shutdown::Both);
        }
        r
    }

    fn write_frame(&self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> io::Result<()> {
        self.write(|_, buf| frame::put(buf, kind, flags, stream, payload))
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        lock(&self.st).dead.is_some()
    }

    /// Streams the peer has open (each holds a handler on a server).
    pub fn peer_streams(&self) -> usize {
        let st = lock(&self.st);
        st.streams
            .keys()
            .filter(|id| self.peer_initiated(**id))
            .count()
    }

    fn peer_initiated(&self, id: u32) -> bool {
        (id % 2 == 1) == (self.role == Role::Server)
    }

    /// Say no more streams will be taken (GOAWAY with `code`); streams in
    /// flight go on.
    pub fn go_away(&self, code: ErrorCode, why: &str) {
        let last = {
            let mut st = lock(&self.st);
            st.going_away = true;
            st.last_peer
        };
        let _ = self.write(|_, buf| frame::put_goaway(buf, last, code, why.as_bytes()));
    }

    /// Close the socket: the reader ends and every stream sees `Closed`.
    pub fn close(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    /// Open a stream (client side) with its request headers.
    pub fn open_stream(
        self: &Arc<Self>,
        fields: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> Result<StreamRef, StreamGone> {
        // Ids must appear on the wire in increasing order: take one and
        // send its HEADERS under the write lock.
        let mut out = lock(&self.out);
        let (id, max_frame) = {
            let mut st = lock(&self.st);
            if let Some(why) = &st.dead {
                return Err(StreamGone(format!("connection closed: {why}")));
            }
            if st.peer_goaway.is_some() {
                return Err(StreamGone("the server is going away".into()));
            }
            let id = st.next_local;
            if id > i32::MAX as u32 {
                return Err(StreamGone("stream ids exhausted".into()));
            }
            st.next_local += 2;
            let stream = Stream {
                send: SendWindow::new(st.peer_initial_window),
                recv: RecvWindow::new(self.limits.stream_window),
                events: VecDeque::new(),
                remote_closed: false,
                local_closed: end_stream,
                reset: false,
                blocks: 0,
            };
            st.streams.insert(id, stream);
            st.last_activity = Instant::now();
            (id, st.peer_max_frame)
        };
        let Out { enc, buf } = &mut *out;
        buf.clear();
        let mut block = Vec::new();
        enc.encode(fields.iter().copied(), &mut block);
        frame::put_headers(buf, id, &block, end_stream, max_frame);
        let r = NoSignalWriter(&self.sock).write_all(buf);
        drop(out);
        let stream = StreamRef {
            conn: self.clone(),
            id,
        };
        match r {
            Ok(()) => Ok(stream),
            Err(e) => {
                self.close();
                Err(StreamGone(format!("send request: {e}")))
            }
        }
    }

    /// Read and apply the peer's frames until the connection ends;
    /// `on_stream` gets each stream the peer opens (server side) and
    /// says whether it was taken (if not, it is refused).
    pub fn run_reader(self: &Arc<Self>, on_stream: &mut dyn FnMut(StreamRef) -> bool) {
        let mut reader = Reader {
            decoder: Decoder::new(4096),
            pending: None,
            payload: Vec::new(),
        };
        let end = match self.read_frames(&mut reader, on_stream) {
            Ok(why) => why,
            Err(ConnError(code, why)) => {
                let last = lock(&self.st).last_peer;
                let _ = self.write(|_, buf| frame::put_goaway(buf, last, code, why.as_bytes()));
                format!("protocol error ({code:?}): {why}")
            }
        };
        self.close();
        let mut st = lock(&self.st);
        st.dead.get_or_insert(end);
        self.changed.notify_all();
    }

    fn read_frames(
        self: &Arc<Self>,
        r: &mut Reader,
        on_stream: &mut dyn FnMut(StreamRef) -> bool,
    ) -> Result<String, ConnError> {
        let handshake = Some(self.limits.handshake_timeout);
        if self.role == Role::Server {
            let mut preface = [0u8; 24];
            match self.fill(&mut preface, handshake) {
                Ok(24) if &preface == frame::PREFACE => {}
                Ok(0) => return Ok("peer closed".into()),
                Ok(_) | Err(_) => {
                    return Err(ConnError(
                        ErrorCode::Protocol,
                        "bad connection preface".into(),
                    ))
                }
            }
        }
        let mut first = true;
        loop {
            let timeout = if first || r.pending.is_some() {
                Some(if first {
                    self.limits.handshake_timeout
                } else {
                    self.limits.frame_timeout
                })
            } else {
                None
            };
            // Frames that open no stream (PINGs) do not keep it alive.
            if timeout.is_none() && self.idle_for_too_long() {
                self.go_away(ErrorCode::NoError, "idle");
                return Ok("idle".into());
            }
            let Some(h) = self.read_frame(r, timeout)? else {
                return Ok("peer closed".into());
            };
            if first && h.kind != frame::SETTINGS {
                return Err(ConnError(
                    ErrorCode::Protocol,
                    "the first frame must be SETTINGS".into(),
                ));
            }
            first = false;
            let payload = std::mem::take(&mut r.payload);
            let done = self.handle(h, &payload, r, on_stream);
            r.payload = payload;
            done?;
        }
    }

    /// Read up to `buf.len()` bytes, all of them unless the peer closes:
    /// the count read. `timeout` bounds the whole read, not each wait: a
    /// peer sending a byte now and then cannot stretch it.
    fn fill(&self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
        self.fill_by(buf, timeout.map(|t| Instant::now() + t))
    }

    fn fill_by(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(io::ErrorKind::TimedOut.into()),
                },
            };
            self.sock.set_read_timeout(left)?;
            match (&self.sock).read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// The next frame's head (its payload in `r.payload`); None when the
    /// peer closed between frames or an idle connection timed out.
    fn read_frame(
        &self,
        r: &mut Reader,
        timeout: Option<Duration>,
    ) -> Result<Option<Head>, ConnError> {
        let mut head = [0u8; HEADER_LEN];
        // Between frames, wake now and then to see whether the connection
        // has been idle for too long.
        let tick = timeout.or(self
            .limits
            .idle_timeout
            .map(|t| t.min(Duration::from_secs(30))));
        let got = loop {
            match self.fill(&mut head[..1], tick) {
                Ok(0) => return Ok(None),
                Ok(_) => break 1,
                Err(e) if is_timeout(&e) && timeout.is_none() => {
                    if self.idle_for_too_long() {
                        self.go_away(ErrorCode::NoError, "idle");
                        return Ok(None);
                    }
                }
                Err(e) if is_timeout(&e) => {
                    return Err(ConnError(
                        ErrorCode::Protocol,
                        "timed out waiting for a frame".into(),
                    ))
                }
                Err(e) => return Err(ConnError(ErrorCode::Internal, format!("read: {e}"))),
            }
        };
        // The rest of the frame, head and payload, within one deadline.
        let slow = Some(Instant::now() + self.limits.frame_timeout);
        let cut = |what: &str| ConnError(ErrorCode::FrameSize, format!("truncated frame {what}"));
        match self.fill_by(&mut head[got..], slow) {
            Ok(n) if n == HEADER_LEN - got => {}
            Ok(_) => return Err(cut("header")),
            Err(e) if is_timeout(&e) => return Err(cut("header (too slow)")),
            Err(e) => return Err(ConnError(ErrorCode::Internal, format!("read: {e}"))),
        }
        let h = Head::parse(&head);
        if h.len > frame::DEFAULT_MAX_FRAME {
            return Err(ConnError(
                ErrorCode::FrameSize,
                format!(
                    "frame of {} bytes over the maximum {}",
                    h.len,
                    frame::DEFAULT_MAX_FRAME
                ),
            ));
        }
        r.payload.resize(h.len, 0);
        match self.fill_by(&mut r.payload, slow) {
            Ok(n) if n == h.len => {}
            Ok(_) => return Err(cut("payload")),
            Err(e) if is_timeout(&e) => return Err(cut("payload (too slow)")),
            Err(e) => return Err(ConnError(ErrorCode::Internal, format!("read: {e}"))),
        }
        Ok(Some(h))
    }

    fn idle_for_too_long(&self) -> bool {
        let Some(limit) = self.limits.idle_timeout else {
            return false;
        };
        let st = lock(&self.st);
        st.streams.is_empty() && st.last_activity.elapsed() >= limit
    }

    /// Apply one frame.
    fn handle(
        self: &Arc<Self>,
        h: Head,
        p: &[u8],
        r: &mut Reader,
        on_stream: &mut dyn FnMut(StreamRef) -> bool,
    ) -> Result<(), ConnError> {
        use frame::*;
        let protocol = |why: &str| Err(ConnError(ErrorCode::Protocol, why.to_string()));
        if let Some(pending) = &r.pending {
            if h.kind != CONTINUATION || h.stream != pending.stream {
                return protocol("a header block was interrupted (CONTINUATION expected)");
            }
        }
        let on_stream_zero = h.stream == 0;
        match h.kind {
            DATA if on_stream_zero => protocol("DATA on stream 0"),
            DATA => self.on_data(h, p),
            HEADERS if on_stream_zero => protocol("HEADERS on stream 0"),
            HEADERS => {
                let frag = &p[headers_fragment(&h, p)?];
                r.pending = Some(PendingBlock {
                    stream: h.stream,
                    end_stream: h.has(FLAG_END_STREAM),
                    block: Vec::new(),
                });
                self.header_fragment(h, frag, r, on_stream)
            }
            CONTINUATION if r.pending.is_none() => protocol("CONTINUATION without HEADERS"),
            CONTINUATION => self.header_fragment(h, p, r, on_stream),
            PRIORITY if on_stream_zero => protocol("PRIORITY on stream 0"),
            PRIORITY if p.len() != 5 => Err(ConnError(
                ErrorCode::FrameSize,
                "PRIORITY not 5 bytes".into(),
            )),
            PRIORITY => Ok(()),
            RST_STREAM if on_stream_zero => protocol("RST_STREAM on stream 0"),
            RST_STREAM => {
                let code = parse_u32(p, "RST_STREAM not 4 bytes")?;
                let mut st = lock(&self.st);
                if self.is_idle(&st, h.stream) {
                    return protocol("RST_STREAM on an idle stream");
                }
                let now = Instant::now();
                let resets = &mut st.peer_resets;
                while resets
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > PEER_RESET_WINDOW)
                {
                    resets.pop_front();
                }
                if resets.len() >= PEER_RESETS {
                    return Err(ConnError(
                        ErrorCode::EnhanceYourCalm,
                        format!("over {PEER_RESETS} stream resets in {PEER_RESET_WINDOW:?}"),
                    ));
                }
                resets.push_back(now);
                match st.streams.get_mut(&h.stream) {
                    // One reset is news; more are noise the queue must not hold.
                    Some(s) if !s.reset => {
                        s.events.push_back(Event::Reset(code));
                        s.remote_closed = true;
                        s.local_closed = true;
                        s.reset = true;
                        self.changed.notify_all();
                    }
                    _ => {}
                }
                Ok(())
            }
            SETTINGS if !on_stream_zero => protocol("SETTINGS on a stream"),
            SETTINGS if h.has(FLAG_ACK) => match p.len() {
                0 => Ok(()),
                _ => Err(ConnError(
                    ErrorCode::FrameSize,
                    "SETTINGS ACK with a payload".into(),
                )),
            },
            SETTINGS => self.on_settings(p),
            PUSH_PROMISE => protocol("PUSH_PROMISE is not enabled"),
            PING if !on_stream_zero => protocol("PING on a stream"),
            PING if p.len() != 8 => Err(ConnError(ErrorCode::FrameSize, "PING not 8 bytes".into())),
            PING if h.has(FLAG_ACK) => Ok(()),
            PING => self
                .write_frame(PING, FLAG_ACK, 0, p)
                .map_err(|e| ConnError(ErrorCode::Internal, format!("write: {e}"))),
            GOAWAY if !on_stream_zero => protocol("GOAWAY on a stream"),
            GOAWAY => {
                let (last, code) = parse_goaway(p)?;
                let mut st = lock(&self.st);
                st.peer_goaway = Some(last);
                // Our streams the peer never took may be retried elsewhere.
                let role = self.role;
                for (id, s) in st.streams.iter_mut() {
                    let ours = (id % 2 == 1) == (role == Role::Client);
                    if ours && *id > last && !s.remote_closed {
                        s.events
                            .push_back(Event::Reset(ErrorCode::RefusedStream as u32));
                        s.remote_closed = true;
                        s.local_closed = true;
                    }
                }
                if code != 0 {
                    st.dead
                        .get_or_insert(format!("peer sent GOAWAY with error {code}"));
                }
                self.changed.notify_all();
                Ok(())
            }
            WINDOW_UPDATE => self.on_window_update(h, p),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    /// Whether `id` names a stream not opened yet.
    fn is_idle(&self, st: &State, id: u32) -> bool {
        if self.peer_initiated(id) {
            id > st.last_peer
        } else {
            id >= st.next_local
        }
    }

    fn on_data(&self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        let range = frame::unpad(&h, p)?;
        let end = h.has(frame::FLAG_END_STREAM);
        let mut st = lock(&self.st);
        if st.recv.receive(p.len()).is_err() {
            return Err(ConnError(
                ErrorCode::FlowControl,
                "connection window overrun".into(),
            ));
        }
        // The connection window is given back at once: a stream's own
        // window bounds what waits unread.
        let conn_update = st.recv.release(p.len());
        let idle = self.is_idle(&st, h.stream);
        let mut reset = None;
        let mut pad_update = None;
        match st.streams.get_mut(&h.stream) {
            None if idle => {
                return Err(ConnError(
                    ErrorCode::Protocol,
                    "DATA on an idle stream".into(),
                ))
            }
            None => {}               // closed: in flight when we reset it
            Some(s) if s.reset => {} // likewise
            Some(s) if s.remote_closed => reset = Some(ErrorCode::StreamClosed),
            Some(s) => {
                if s.recv.receive(p.len()).is_err() {
                    reset = Some(ErrorCode::FlowControl);
                } else {
                    // Padding counts against the window but is consumed
                    // now; the data as it is read.
                    let pad = p.len() - range.len();
                    pad_update = s.recv.release(pad).filter(|_| !end);
                    // Small frames join the data still unread, so the
                    // queue holds bytes, not one event per frame.
                    match s.events.back_mut() {
                        Some(Event::Data { data, end: e }) if !*e => {
                            data.extend_from_slice(&p[range]);
                            *e = end;
                        }
                        _ if !range.is_empty() || end => s.events.push_back(Event::Data {
                            data: p[range].to_vec(),
                            end,
                        }),
                        _ => {}
                    }
                    s.remote_closed |= end;
                    self.changed.notify_all();
                }
            }
        }
        drop(st);
        if let Some(inc) = conn_update {
            self.write(|_, b| frame::put_window_update(b, 0, inc))
                .map_err(|e| ConnError(ErrorCode::Internal, format!("write: {e}")))?;
        }
        if let Some(inc) = pad_update {
            let _ = self.write(|_, b| frame::put_window_update(b, h.stream, inc));
        }
        if let Some(code) = reset {
            self.reset_stream(h.stream, code);
        }
        Ok(())
    }

    /// Reset a stream from our side: the peer gets RST_STREAM, a local
    /// reader sees the reset.
    fn reset_stream(&self, id: u32, code: ErrorCode) {
        {
            let mut st = lock(&self.st);
            match st.streams.get_mut(&id) {
                // Reset already: the peer was told, the reader too.
                Some(s) if s.reset => return,
                Some(s) => {
                    s.events.push_back(Event::Reset(code as u32));
                    s.remote_closed = true;
                    s.local_closed = true;
                    s.reset = true;
                    self.changed.notify_all();
                }
                None => {}
            }
        }
        let _ = self.write(|_, b| frame::put_rst(b, id, code));
    }

    fn header_fragment(
        self: &Arc<Self>,
        h: Head,
        frag: &[u8],
        r: &mut Reader,
        on_stream: &mut dyn FnMut(StreamRef) -> bool,
    ) -> Result<(), ConnError> {
        let pending = r.pending.as_mut().expect("a block is pending");
        if pending.block.len() + frag.len() > self.limits.max_header_list {
            return Err(ConnError(
                ErrorCode::EnhanceYourCalm,
                format!("header block over {} bytes", self.limits.max_header_list),
            ));
        }
        pending.block.extend_from_slice(frag);
        if !h.has(frame::FLAG_END_HEADERS) {
            return Ok(());
        }
        let PendingBlock {
            stream: id,
            end_stream: end,
            block,
        } = r.pending.take().unwrap();
        // The block is decoded even for a stream we refuse: the decoder's
        // table must follow the peer's.
        let fields = r
            .decoder
            .decode(&block, self.limits.max_header_list)
            .map_err(|e| match e {
                HpackError::HeaderListTooLarge(_) => {
                    ConnError(ErrorCode::EnhanceYourCalm, e.to_string())
                }
                _ => ConnError(ErrorCode::Compression, e.to_string()),
            })?;
        let mut st = lock(&self.st);
        if let Some(s) = st.streams.get_mut(&id) {
            let violation = if s.reset {
                return Ok(()); // in flight when the stream was reset
            } else if s.remote_closed {
                Some(ErrorCode::StreamClosed)
            } else if s.blocks >= 1 && !end {
                // After the opening block only trailers may come, and
                // they end the stream (RFC 9113 §8.1).
                Some(ErrorCode::Protocol)
            } else {
                None
            };
            if let Some(code) = violation {
                drop(st);
                self.reset_stream(id, code);
                return Ok(());
            }
            s.blocks += 1;
            s.events.push_back(Event::Headers { fields, end });
            s.remote_closed |= end;
            self.changed.notify_all();
            return Ok(());
        }
        if !self.is_idle(&st, id) {
            // A stream gone from our table is closed (RFC 9113 §5.1:
            // STREAM_CLOSED). The frame may have crossed our own reset,
            // and an extra RST_STREAM is harmless to a peer that already
            // saw one.
            drop(st);
            let _ = self.write(|_, b| frame::put_rst(b, id, ErrorCode::StreamClosed));
            return Ok(());
        }
        if !self.peer_initiated(id) || self.role == Role::Client {
            return Err(ConnError(
                ErrorCode::Protocol,
                format!("HEADERS opening stream {id}"),
            ));
        }
        st.last_peer = id;
        let open = st
            .streams
            .keys()
            .filter(|i| self.peer_initiated(**i))
            .count();
        if st.going_away || open >= self.limits.max_streams as usize {
            drop(st);
            let _ = self.write(|_, b| frame::put_rst(b, id, ErrorCode::RefusedStream));
            return Ok(());
        }
        let mut events = VecDeque::new();
        events.push_back(Event::Headers { fields, end });
        let stream = Stream {
            send: SendWindow::new(st.peer_initial_window),
            recv: RecvWindow::new(self.limits.stream_window),
            events,
            remote_closed: end,
            local_closed: false,
            reset: false,
            blocks: 1,
        };
        st.streams.insert(id, stream);
        st.last_activity = Instant::now();
        drop(st);
        // A stream the callback refuses is dropped, which resets it.
        let _taken = on_stream(StreamRef {
            conn: self.clone(),
            id,
        });
        Ok(())
    }

    fn on_settings(&self, p: &[u8]) -> Result<(), ConnError> {
        use frame::*;
        let settings = parse_settings(p)?;
        let mut table_size = None;
        {
            let mut st = lock(&self.st);
            for (id, v) in settings {
                match id {
                    SETTINGS_HEADER_TABLE_SIZE => table_size = Some(v as usize),
                    SETTINGS_ENABLE_PUSH if v > 1 => {
                        return Err(ConnError(ErrorCode::Protocol, "ENABLE_PUSH above 1".into()))
                    }
                    SETTINGS_INITIAL_WINDOW_SIZE => {
                        if v as i64 > MAX_WINDOW {
                            return Err(ConnError(
                                ErrorCode::FlowControl,
                                "INITIAL_WINDOW_SIZE above 2^31-1".into(),
                            ));
                        }
                        let delta = v as i64 - st.peer_initial_window;
                        st.peer_initial_window = v as i64;
                        for s in st.streams.values_mut() {
                            if s.send.grow(delta).is_err() {
                                return Err(ConnError(
                                    ErrorCode::FlowControl,
                                    "INITIAL_WINDOW_SIZE overflows a stream window".into(),
                                ));
                            }
                        }
                    }
                    SETTINGS_MAX_FRAME_SIZE => {
                        if !(DEFAULT_MAX_FRAME as u32..=MAX_MAX_FRAME).contains(&v) {
                            return Err(ConnError(
                                ErrorCode::Protocol,
                                format!("MAX_FRAME_SIZE {v} out of range"),
                            ));
                        }
                        st.peer_max_frame = v as usize;
                    }
                    // Concurrent streams and header list size of the peer:
                    // our clients open few streams with small headers.
                    _ => {}
                }
            }
            self.changed.notify_all();
        }
        // The encoder changes before the ACK goes out: blocks after it
        // use the new size (the write lock is never taken under `st`).
        self.write(|enc, buf| {
            if let Some(size) = table_size {
                enc.set_max_table_size(size);
            }
            frame::put(buf, SETTINGS, FLAG_ACK, 0, &[]);
        })
        .map_err(|e| ConnError(ErrorCode::Internal, format!("write: {e}")))
    }

    fn on_window_update(&self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        let inc = frame::parse_u32(p, "WINDOW_UPDATE not 4 bytes")? & 0x7fff_ffff;
        let mut st = lock(&self.st);
        if h.stream == 0 {
            if inc == 0 {
                return Err(ConnError(ErrorCode::Protocol, "WINDOW_UPDATE of 0".into()));
            }
            if st.send.grow(inc as i64).is_err() {
                return Err(ConnError(
                    ErrorCode::FlowControl,
                    "connection window overflow".into(),
                ));
            }
            self.changed.notify_all();
            return Ok(());
        }
        if self.is_idle(&st, h.stream) {
            return Err(ConnError(
                ErrorCode::Protocol,
                "WINDOW_UPDATE on an idle stream".into(),
            ));
        }
        let reset = match st.streams.get_mut(&h.stream) {
            None => None,
            Some(_) if inc == 0 => Some(ErrorCode::Protocol),
            Some(s) => s
                .send
                .grow(inc as i64)
                .err()
                .map(|_| ErrorCode::FlowControl),
        };
        self.changed.notify_all();
        drop(st);
        if let Some(code) = reset {
            self.reset_stream(h.stream, code);
        }
        Ok(())
    }
}

struct Reader {
    decoder: Decoder,
    pending: Option<PendingBlock>,
    payload: Vec<u8>,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One stream of a connection, held by whoever serves or made the call;
/// dropping it resets the stream if it is not finished both ways.
pub struct StreamRef {
    conn: Arc<Conn>,
    id: u32,
}

impl StreamRef {
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// The next event; None if `deadline` passed first.
    pub fn next(&self, deadline: Option<Instant>) -> Option<Event> {
        let c = &*self.conn;
        let mut update = None;
        let ev = wait_for(&c.st, &c.changed, deadline, |st| {
            if let Some(s) = st.streams.get_mut(&self.id) {
                if let Some(ev) = s.events.pop_front() {
                    if let Event::Data { data, .. } = &ev {
                        update = s.recv.release(data.len()).filter(|_| !s.remote_closed);
                    }
                    return Some(ev);
                }
            }
            if let Some(why) = &st.dead {
                return Some(Event::Closed(why.clone()));
            }
            if !st.streams.contains_key(&self.id) {
                return Some(Event::Closed("stream closed".into()));
            }
            None
        });
        if let Some(inc) = update {
            let _ = c.write(|_, b| frame::put_window_update(b, self.id, inc));
        }
        ev
    }

    /// Whether nothing more can go out on the stream: reset, ended by
    /// us, or the connection is gone.
    pub fn is_closed(&self) -> bool {
        let st = lock(&self.conn.st);
        st.dead.is_some() || st.streams.get(&self.id).is_none_or(|s| s.local_closed)
    }

    /// Send a header block (response headers, trailers with `end`).
    pub fn send_headers(&self, fields: &[(&[u8], &[u8])], end: bool) -> Result<(), StreamGone> {
        let c = &*self.conn;
        let max_frame = {
            let mut st = lock(&c.st);
            let max_frame = st.peer_max_frame;
            let s = self.usable(&mut st)?;
            s.local_closed |= end;
            max_frame
        };
        c.write(|enc, buf| {
            let mut block = Vec::new();
            enc.encode(fields.iter().copied(), &mut block);
            frame::put_headers(buf, self.id, &block, end, max_frame);
        })
        .map_err(|e| StreamGone(format!("write: {e}")))
    }

    fn usable<'a>(&self, st: &'a mut State) -> Result<&'a mut Stream, StreamGone> {
        if let Some(why) = &st.dead {
            return Err(StreamGone(format!("connection closed: {why}")));
        }
        match st.streams.get_mut(&self.id) {
            Some(s) if !s.local_closed => Ok(s),
            _ => Err(StreamGone("stream closed".into())),
        }
    }

    /// Send `data` in DATA frames as the peer's windows allow, ending our
    /// side with the last one if `end`. Waits for window at most the
    /// connection's send-stall timeout.
    pub fn send_data(&self, data: &[u8], end: bool) -> Result<(), StreamGone> {
        let c = &*self.conn;
        let mut rest = data;
        loop {
            let n = if rest.is_empty() {
                if !end {
                    return Ok(());
                }
                let mut st = lock(&c.st);
                self.usable(&mut st)?.local_closed = true;
                0
            } else {
                self.take_window(rest.len(), end)?
            };
            let last = n == rest.len();
            let flags = if last && end {
                frame::FLAG_END_STREAM
            } else {
                0
            };
            c.write_frame(frame::DATA, flags, self.id, &rest[..n])
                .map_err(|e| StreamGone(format!("write: {e}")))?;
            rest = &rest[n..];
            if last {
                return Ok(());
            }
        }
    }

    /// Wait until both windows let something go; reserve what goes (at
    /// most `want` and a frame); a reservation of all of `want` with
    /// `end` closes our side.
    fn take_window(&self, want: usize, end: bool) -> Result<usize, StreamGone> {
        let c = &*self.conn;
        let deadline = Some(Instant::now() + c.limits.send_stall_timeout);
        let got = wait_for(&c.st, &c.changed, deadline, |st| {
            let conn_avail = st.send.available();
            let max_frame = st.peer_max_frame;
            let s = match self.usable(st) {
                Ok(s) => s,
                Err(e) => return Some(Err(e)),
            };
            let n = want.min(conn_avail).min(s.send.available()).min(max_frame);
            if n == 0 {
                return None;
            }
            s.send.take(n);
            s.local_closed |= end && n == want;
            st.send.take(n);
            Some(Ok(n))
        });
        got.unwrap_or_else(|| {
            Err(StreamGone(
                "the peer's flow-control window stayed shut".into(),
            ))
        })
    }

    /// Reset the stream (RST_STREAM with `code`).
    pub fn reset(&self, code: ErrorCode) {
        self.conn.reset_stream(self.id, code);
    }
}

impl Drop for StreamRef {
    fn drop(&mut self) {
        let c = &*self.conn;
        let rst = {
            let mut st = lock(&c.st);
            let removed = st.streams.remove(&self.id);
            st.last_activity = Instant::now();
            c.changed.notify_all();
            match removed {
                _ if st.dead.is_some() => None,
                Some(s) if !s.remote_closed => {
                    // A finished answer before the request ended: NO_ERROR
                    // tells the peer to stop sending (RFC 9113 §8.1).
                    Some(if s.local_closed {
                        ErrorCode::NoError
                    } else {
                        ErrorCode::Cancel
                    })
                }
                Some(s) if !s.local_closed => Some(ErrorCode::Cancel),
                _ => None,
            }
        };
        if let Some(code) = rst {
            let _ = c.write(|_, b| frame::put_rst(b, self.id, code));
        }
    }
}

#[cfg(test)]
mod tests;
