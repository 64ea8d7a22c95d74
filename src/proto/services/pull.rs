//! `skiff.services.pull.v1.Pull`: the daemon fetches and unpacks an image
//! itself, so `ctr images pull` needs no client-side fetching. skiff's
//! own service (not containerd's): containerd 2's transfer service does
//! the same job with a generic Any-typed source/destination, which no
//! client of this daemon speaks yet; issue 10 may add it beside this.
//!
//! `Pull` is a server stream: the request, then [`PullProgress`] messages
//! (one per change of a blob's state) and a last one with `image` set.

use super::images::Image;
use std::collections::BTreeMap;

pub const SERVICE: &str = "skiff.services.pull.v1.Pull";
pub const METHOD: &str = "Pull";

#[derive(Clone, PartialEq, prost::Message)]
pub struct PullRequest {
    /// The reference, e.g. `127.0.0.1:5000/busybox:latest`.
    #[prost(string, tag = "1")]
    pub reference: String,
    /// `os/arch[/variant]`; empty = the daemon's platform.
    #[prost(string, tag = "2")]
    pub platform: String,
    /// Talk http, not https, to the registry (ctr's `--plain-http`).
    #[prost(bool, tag = "3")]
    pub plain_http: bool,
    /// Unpack into `snapshotter` after fetching (ctr pulls with unpack).
    #[prost(bool, tag = "4")]
    pub unpack: bool,
    /// Empty = the daemon's default snapshotter.
    #[prost(string, tag = "5")]
    pub snapshotter: String,
    /// `user[:password]` for the registry (ctr's `--user`).
    #[prost(string, tag = "6")]
    pub user: String,
    /// A containerd `certs.d` directory (ctr's `--hosts-dir`); empty = the daemon's.
    #[prost(string, tag = "7")]
    pub hosts_dir: String,
    /// Labels for the image record.
    #[prost(btree_map = "string, string", tag = "8")]
    pub labels: BTreeMap<String, String>,
    /// Fetch every platform of an index and record the index as the
    /// image (ctr's `--all-platforms`); `platform` is then what is unpacked.
    #[prost(bool, tag = "9")]
    pub all_platforms: bool,
}

/// Progress states of a blob.
pub mod state {
    pub const RESOLVING: i32 = 0;
    pub const WAITING: i32 = 1;
    pub const DOWNLOADING: i32 = 2;
    pub const DONE: i32 = 3;
    pub const EXISTS: i32 = 4;
    pub const UNPACKING: i32 = 5;
    pub const UNPACKED: i32 = 6;
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PullProgress {
    /// What this message is about: a blob digest, or the reference while resolving.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub media_type: String,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub total: i64,
    /// Set on the last message: the image as recorded.
    #[prost(message, optional, tag = "6")]
    pub image: Option<Image>,
}
