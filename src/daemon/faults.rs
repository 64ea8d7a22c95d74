//! Crash points for the crash-consistency tests: the daemon kills itself
//! with SIGKILL at one named point, so a test can stop it at a moment it
//! could not hit by watching from outside (between two writes of one
//! request).
//!
//! Nothing here acts unless the `containerd` applet arms a point, which it
//! does only when `SKIFF_TEST_CRASH_DAEMON_AT` names one of [`POINTS`]
//! (an unknown name is refused at start, so a typo cannot go unnoticed);
//! the daemon then logs a warning. Reaching an unarmed point costs one
//! atomic load.

use std::sync::OnceLock;

/// The environment variable the applet reads.
pub const ENV: &str = "SKIFF_TEST_CRASH_DAEMON_AT";

/// Every crash point, with where it is.
pub const POINTS: &[&str] = &[
    // A pull has stored its blobs (under its lease) and not yet unpacked
    // them (nor recorded the image).
    "pull-stored",
    // A container's snapshot was prepared (under a lease); its record is
    // not written yet.
    "container-snapshot-prepared",
    // A task's shim was started; the task is not created in it yet.
    "task-shim-started",
    // A task's shim answered Delete; its bundle is still there.
    "task-shim-deleted",
    // A deleted task's bundle was renamed away; its shim is not yet told
    // to leave.
    "task-bundle-retired",
];

static ARMED: OnceLock<&'static str> = OnceLock::new();

/// Arm `point` for this process (once). Errors name the known points.
pub fn arm(point: &str) -> crate::Result<()> {
    let Some(p) = POINTS.iter().find(|p| **p == point) else {
        return Err(crate::err_kind!(
            InvalidArgument,
            "{ENV}={point:?}: not a crash point ({})",
            POINTS.join(", ")
        ));
    };
    let _ = ARMED.set(p);
    crate::log::warn!("crash point {p} armed ({ENV}): this daemon will kill itself there");
    Ok(())
}

/// Die here, as by `kill -9`, if this point is armed.
pub fn point(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "unknown crash point {name}");
    if ARMED.get() == Some(&name) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}
