//! The shim's own log: containerd 1.6+ reads the fifo `<bundle>/log` of the
//! shim's first bundle and copies its lines into its own log. The applet
//! opens it (non-blocking: a full fifo or an absent daemon drops lines,
//! never stalls the shim) and hands it here; without it nothing is logged.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Log {
    out: Option<Arc<File>>,
    debug: bool,
}

impl Log {
    pub fn new(out: Option<File>, debug: bool) -> Log {
        Log {
            out: out.map(Arc::new),
            debug,
        }
    }

    /// Nothing is written.
    pub fn none() -> Log {
        Log::default()
    }

    pub fn error(&self, msg: &str) {
        self.line("error", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.line("warning", msg);
    }

    /// Only with `-debug`.
    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.line("debug", msg);
        }
    }

    fn line(&self, level: &str, msg: &str) {
        let Some(out) = &self.out else {
            return;
        };
        let (secs, nanos) = crate::time::now();
        // logrus' text format, which containerd re-emits as is.
        let line = format!(
            "time={} level={level} msg={} runtime=io.containerd.skiff.v2\n",
            crate::json::quote(&crate::time::rfc3339_nano(secs, nanos)),
            crate::json::quote(msg)
        );
        let _ = (&**out).write_all(line.as_bytes());
    }
}
