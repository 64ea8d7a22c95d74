//! Streaming calls (ttrpc 1.2): besides the request and the final
//! response, a stream carries data frames (type 3) both ways. A client
//! opens one with a request flagged remote-closed (only the server
//! streams) or remote-open (the client streams too, ending its side with a
//! data frame flagged remote-closed); the server ends the stream with a
//! data frame flagged remote-closed (and no-data when empty), or with a
//! response carrying a status.

use super::{lock, wait_for, Status};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// At most this many messages wait on one stream ...
pub(crate) const MAX_QUEUED: usize = 64;
/// ... or this many bytes (one message is always let in).
pub(crate) const MAX_QUEUED_BYTES: usize = 8 << 20;

/// Messages arriving on one stream, queued until read, then how the
/// stream ended. The queue is bounded: a full one makes the connection's
/// reader wait (as Go ttrpc's does) until the stream is read or ends, so a
/// peer can never pile up more than that in memory.
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    /// Signalled on every change: a message, a read, the end.
    changed: Condvar,
}

#[derive(Default)]
struct InboxState {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    end: Option<Result<(), Status>>,
    /// Why the stream was cut off, if it was.
    cut: Option<Status>,
}

impl InboxState {
    fn has_room_for(&self, len: usize) -> bool {
        self.queue.is_empty()
            || (self.queue.len() < MAX_QUEUED && self.bytes + len <= MAX_QUEUED_BYTES)
    }
}

impl Inbox {
    /// Queue `msg`, waiting while the queue is full; dropped once the
    /// stream ended.
    pub(crate) fn push(&self, msg: Vec<u8>) {
        let mut msg = Some(msg);
        wait_for(&self.state, &self.changed, None, |s| {
            if s.end.is_some() {
                return Some(());
            }
            let len = msg.as_ref().map_or(0, Vec::len);
            if !s.has_room_for(len) {
                return None;
            }
            s.bytes += len;
            s.queue.extend(msg.take());
            self.changed.notify_all();
            Some(())
        });
    }

    /// The stream ended (the first end counts); what is queued can still
    /// be read.
    pub(crate) fn finish(&self, end: Result<(), Status>) {
        let mut s = lock(&self.state);
        if s.end.is_none() {
            s.end = Some(end);
            self.changed.notify_all();
        }
    }

    /// Cut the stream off (the peer is gone or broke its rules): its
    /// reader sees `why` unless the peer's side had ended already, and
    /// nothing more is to be sent on it ([`failure`](Self::failure)).
    pub(crate) fn cut(&self, why: Status) {
        let mut s = lock(&self.state);
        if s.cut.is_none() {
            s.end.get_or_insert_with(|| Err(why.clone()));
            s.cut = Some(why);
            self.changed.notify_all();
        }
    }

    /// Why the stream was cut off, if it was.
    pub(crate) fn failure(&self) -> Option<Status> {
        lock(&self.state).cut.clone()
    }

    /// Whether the peer's side ended (or the stream was cut).
    pub(crate) fn ended(&self) -> bool {
        lock(&self.state).end.is_some()
    }

    /// The next message, `Ok(None)` at a normal end, the status of an
    /// abnormal one; None if `deadline` passed first.
    pub(crate) fn next(
        &self,
        deadline: Option<Instant>,
    ) -> Option<Result<Option<Vec<u8>>, Status>> {
        wait_for(&self.state, &self.changed, deadline, |s| {
            if let Some(msg) = s.queue.pop_front() {
                s.bytes -= msg.len();
                self.changed.notify_all(); // room for a waiting push
                return Some(Ok(Some(msg)));
            }
            s.end.as_ref().map(|e| e.clone().map(|()| None))
        })
    }
}
