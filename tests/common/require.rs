//! Skips that cannot hide. A test whose prerequisite is missing says why;
//! under `CI=true` a prerequisite that `make test` installs (a tool, a
//! package, a file it provides) is a failure, not a silent pass.
//!
//! Shared by tests/common and tests/fetch_support.
#![allow(dead_code)]

use std::panic::Location;

/// Is this a CI run (`CI=true`)?
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A prerequisite that `make test` installs. Present: true. Missing: under
/// CI=true the test fails naming it; elsewhere it prints why and returns
/// false, and the test returns (skipped).
#[track_caller]
pub fn require(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    let at = Location::caller();
    if in_ci() {
        panic!("missing prerequisite at {at}: {what} (make test installs it; CI=true)");
    }
    eprintln!("skipped at {at}: {what} (make test installs it)");
    false
}

/// A condition of this host or of the runtime under test that no install
/// changes (a kernel feature, the cgroup layout, root, which runtime).
/// Holds: true. Otherwise the test prints why and returns false, in CI too.
#[track_caller]
pub fn applies(holds: bool, why: &str) -> bool {
    if !holds {
        eprintln!("skipped at {}: {why}", Location::caller());
    }
    holds
}
