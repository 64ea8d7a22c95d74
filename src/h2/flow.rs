//! Flow-control windows (RFC 9113 §5.2, §6.9): what the peer lets us
//! send, and what we let it send and give back as it is consumed.

use super::frame::MAX_WINDOW;

/// A window would pass 2^31-1, or the peer sent past it: a
/// FLOW_CONTROL_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowError;

/// What the peer lets us send on a stream or the connection. It can go
/// negative when the peer shrinks SETTINGS_INITIAL_WINDOW_SIZE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow(i64);

impl SendWindow {
    pub fn new(size: i64) -> SendWindow {
        SendWindow(size)
    }

    /// Bytes that may go out now.
    pub fn available(&self) -> usize {
        self.0.max(0) as usize
    }

    /// `n` bytes went out (at most [`available`](Self::available)).
    pub fn take(&mut self, n: usize) {
        self.0 -= n as i64;
    }

    /// A WINDOW_UPDATE (increment > 0), or a SETTINGS change of the
    /// initial window (any delta): Err when the window would pass 2^31-1,
    /// a FLOW_CONTROL_ERROR.
    pub fn grow(&mut self, delta: i64) -> Result<(), WindowError> {
        let next = self.0 + delta;
        if next > MAX_WINDOW {
            return Err(WindowError);
        }
        self.0 = next;
        Ok(())
    }
}

/// What we let the peer send: `left` shrinks as data arrives; consumed
/// bytes are given back in WINDOW_UPDATEs once half the window waits,
/// so a fast sender is not stalled and updates stay few.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvWindow {
    size: u32,
    left: i64,
    consumed: u32,
}

impl RecvWindow {
    pub fn new(size: u32) -> RecvWindow {
        RecvWindow {
            size,
            left: size as i64,
            consumed: 0,
        }
    }

    /// `n` bytes arrived: Err if the peer overran the window (a
    /// FLOW_CONTROL_ERROR).
    pub fn receive(&mut self, n: usize) -> Result<(), WindowError> {
        if n as i64 > self.left {
            return Err(WindowError);
        }
        self.left -= n as i64;
        Ok(())
    }

    /// `n` received bytes were consumed: the increment to announce, once
    /// it is worth a frame.
    pub fn release(&mut self, n: usize) -> Option<u32> {
        self.consumed += n as u32;
        if self.consumed < self.size / 2 {
            return None;
        }
        let inc = std::mem::take(&mut self.consumed);
        self.left += inc as i64;
        Some(inc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_window_shrinks_grows_and_refuses_overflow() {
        let mut w = SendWindow::new(65_535);
        w.take(65_000);
        assert_eq!(w.available(), 535);
        w.grow(1000).unwrap();
        assert_eq!(w.available(), 1535);
        // A smaller initial window can make it negative: nothing may go.
        w.grow(-2000).unwrap();
        assert_eq!(w.available(), 0);
        w.grow(465 + 10).unwrap();
        assert_eq!(w.available(), 10);
        let mut w = SendWindow::new(MAX_WINDOW - 5);
        assert!(w.grow(6).is_err());
        assert_eq!(w.available(), (MAX_WINDOW - 5) as usize);
        w.grow(5).unwrap();
    }

    #[test]
    fn a_receive_window_refuses_an_overrun_and_gives_back_half_at_a_time() {
        let mut w = RecvWindow::new(100);
        w.receive(60).unwrap();
        assert!(w.receive(41).is_err(), "past the window");
        w.receive(40).unwrap();
        assert!(w.receive(1).is_err());
        // Consumption is announced once half the window waits.
        assert_eq!(w.release(30), None);
        assert_eq!(w.release(20), Some(50));
        w.receive(50).unwrap();
        assert!(w.receive(1).is_err());
        assert_eq!(w.release(49), None);
        assert_eq!(w.release(51), Some(100));
        w.receive(100).unwrap();
    }
}
