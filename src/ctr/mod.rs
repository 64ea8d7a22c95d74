//! The logic behind the `ctr` applet that other front-ends can share: a
//! Go-style flag parser (urfave/cli habits), Go's tabwriter layout and
//! containerd's human units for output, the daemon client with namespace
//! metadata, stdio fifos as containerd's `cio` makes them, the terminal
//! (raw mode, window size) and pull progress rendering.
//!
//! Nothing here prints or exits: the applet does.

pub mod archive;
pub mod cio;
pub mod client;
pub mod container;
pub mod events;
pub mod flags;
pub mod format;
pub mod objects;
pub mod process;
pub mod progress;
pub mod pull;
pub mod signals;
pub mod tabwriter;
pub mod term;
pub mod units;
pub mod user;
