//! Bytes the server holds in messages a client has begun and not
//! finished. Each call may assemble a message up to [`MAX_MESSAGE`]
//! (containerd's 16 MiB), so without a bound one connection's 32 streams
//! could make the daemon hold 512 MiB, and every connection as much again.
//! A message's whole declared length is reserved when its 5-byte prefix
//! arrives, from its connection's budget and the server's; a message that
//! does not fit is refused at once with RESOURCE_EXHAUSTED, as gRPC
//! refuses a message over the size limit.
//!
//! Why refuse rather than hold back flow-control window: a call whose
//! window is withheld stalls with no error, and stalled calls that each
//! hold part of a shared budget can wait on each other forever; an
//! immediate status tells the client what happened, and the reservation
//! of a whole message means an admitted message can always be completed.
//!
//! [`MAX_MESSAGE`]: super::MAX_MESSAGE

use crate::ttrpc::{Code, Status};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A message this small needs no reservation: the stream's flow-control
/// window (256 KiB) already bounds what it can make the server hold.
pub(crate) const UNRESERVED: usize = 64 << 10;

/// Bytes one connection may hold in partially assembled messages.
pub(crate) const PER_CONNECTION: usize = 64 << 20;
/// ... and all connections of a server together.
pub(crate) const PER_SERVER: usize = 256 << 20;

pub(crate) struct Budget {
    what: &'static str,
    max: usize,
    held: AtomicUsize,
    /// The budget this one also draws on (a connection's: the server's).
    within: Option<Arc<Budget>>,
}

/// Bytes reserved from a budget (and the one it is within) until dropped.
pub(crate) struct Reserved {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    pub fn new(what: &'static str, max: usize, within: Option<Arc<Budget>>) -> Arc<Budget> {
        Arc::new(Budget {
            what,
            max,
            held: AtomicUsize::new(0),
            within,
        })
    }

    /// Reserve `bytes` for a message being assembled, or refuse it.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Reserved, Status> {
        self.take(bytes)?;
        if let Some(outer) = &self.within {
            if let Err(status) = outer.take(bytes) {
                self.give_back(bytes);
                return Err(status);
            }
        }
        Ok(Reserved {
            budget: self.clone(),
            bytes,
        })
    }

    fn take(&self, bytes: usize) -> Result<(), Status> {
        let fits = |held: usize| held.checked_add(bytes).filter(|&n| n <= self.max);
        match self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, fits)
        {
            Ok(_) => Ok(()),
            Err(held) => Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "grpc: message of {bytes} bytes refused: {} already assembles {held} of at most {} bytes in unfinished messages",
                    self.what, self.max
                ),
            )),
        }
    }

    fn give_back(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::SeqCst);
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
        if let Some(outer) = &self.budget.within {
            outer.give_back(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_draws_on_both_budgets_and_is_given_back() {
        let server = Budget::new("this server", 100, None);
        let a = Budget::new("this connection", 60, Some(server.clone()));
        let b = Budget::new("this connection", 60, Some(server.clone()));
        let r1 = a.reserve(50).unwrap();
        let e = a.reserve(11).err().unwrap();
        assert_eq!(e.code, Code::ResourceExhausted);
        assert!(e.message.contains("this connection"), "{}", e.message);
        let r2 = b.reserve(50).unwrap();
        // The server's budget is spent; the connection's refusal undoes
        // nothing, the server's gives the connection's share back.
        let e = b.reserve(1).err().unwrap();
        assert!(e.message.contains("this server"), "{}", e.message);
        assert_eq!(b.held.load(Ordering::SeqCst), 50);
        drop(r1);
        assert_eq!(server.held.load(Ordering::SeqCst), 50);
        let _r3 = b.reserve(10).unwrap();
        drop(r2);
        assert_eq!(a.held.load(Ordering::SeqCst), 0);
        assert_eq!(server.held.load(Ordering::SeqCst), 10);
    }
}
