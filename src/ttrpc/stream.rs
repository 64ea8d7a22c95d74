//! Streaming calls (ttrpc 1.2): besides the request and the final
//! response, a stream carries data frames (type 3) both ways. A client
//! opens one with a request flagged remote-closed (only the server
//! streams) or remote-open (the client streams too, ending its side with a
//! data frame flagged remote-closed); the server ends the stream with a
//! data frame flagged remote-closed (and no-data when empty), or with a
//! response carrying a status.

use super::lock;
use super::Status;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Messages arriving on one stream, queued until read (unbounded: the
/// reading side is expected to keep up), then how the stream ended.
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    ready: Condvar,
}

#[derive(Default)]
struct InboxState {
    queue: VecDeque<Vec<u8>>,
    end: Option<Result<(), Status>>,
}

impl Inbox {
    pub(crate) fn push(&self, msg: Vec<u8>) {
        let mut s = lock(&self.state);
        if s.end.is_none() {
            s.queue.push_back(msg);
            self.ready.notify_all();
        }
    }

    /// The stream ended (the first end counts); what is queued can still
    /// be read.
    pub(crate) fn finish(&self, end: Result<(), Status>) {
        let mut s = lock(&self.state);
        if s.end.is_none() {
            s.end = Some(end);
            self.ready.notify_all();
        }
    }

    /// The next message, `Ok(None)` at a normal end, the status of an
    /// abnormal one; None if `timeout` passed first.
    pub(crate) fn next(
        &self,
        timeout: Option<Duration>,
    ) -> Option<Result<Option<Vec<u8>>, Status>> {
        let end = timeout.map(|t| Instant::now() + t);
        let mut s = lock(&self.state);
        loop {
            if let Some(msg) = s.queue.pop_front() {
                return Some(Ok(Some(msg)));
            }
            if let Some(e) = &s.end {
                return Some(e.clone().map(|_| None));
            }
            s = match end {
                None => self.ready.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(end) => {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    let waited = self.ready.wait_timeout(s, left);
                    waited.unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
    }
}
