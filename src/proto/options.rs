//! Runtime options a shim receives (as an Any on `start`'s stdin and in
//! CreateTaskRequest.options) and what `-info` prints:
//! `containerd.runc.v1.Options` (runtime/v2/runc/options/oci.proto; 2.x
//! api/types/runc/options/oci.proto adds 12 and 13),
//! `runtimeoptions.v1.Options` (pkg/runtimeoptions/v1/api.proto; 2.x adds
//! config_body), `containerd.types.RuntimeInfo` (2.x api/types/introspection.proto).

use super::types::Any;
use std::collections::BTreeMap;

/// Type names these options arrive under.
pub const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
pub const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";

/// containerd.runc.v1.Options: what CRI passes from containerd's config
/// (`[plugins.cri.containerd.runtimes.X.options]`) and ctr for runc.v2.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuncOptions {
    #[prost(bool, tag = "1")]
    pub no_pivot_root: bool,
    #[prost(bool, tag = "2")]
    pub no_new_keyring: bool,
    #[prost(string, tag = "3")]
    pub shim_cgroup: String,
    #[prost(uint32, tag = "4")]
    pub io_uid: u32,
    #[prost(uint32, tag = "5")]
    pub io_gid: u32,
    #[prost(string, tag = "6")]
    pub binary_name: String,
    #[prost(string, tag = "7")]
    pub root: String,
    /// Reserved (unused) from containerd 2.0 on.
    #[prost(string, tag = "8")]
    pub criu_path: String,
    #[prost(bool, tag = "9")]
    pub systemd_cgroup: bool,
    #[prost(string, tag = "10")]
    pub criu_image_path: String,
    #[prost(string, tag = "11")]
    pub criu_work_path: String,
    #[prost(string, tag = "12")]
    pub task_api_address: String,
    #[prost(uint32, tag = "13")]
    pub task_api_version: u32,
}

/// runtimeoptions.v1.Options: what ctr passes with `--runtime-config-path`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuntimeOptions {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(string, tag = "2")]
    pub config_path: String,
    #[prost(bytes = "vec", tag = "3")]
    pub config_body: Vec<u8>,
}

/// containerd.runc.v1.ProcessDetails: the `info` of an exec'd process in
/// PidsResponse.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessDetails {
    #[prost(string, tag = "1")]
    pub exec_id: String,
}

/// containerd.types.RuntimeInfo: what `SHIM -info` prints (containerd 2.x).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuntimeInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub version: Option<RuntimeVersion>,
    #[prost(message, optional, tag = "3")]
    pub options: Option<Any>,
    #[prost(message, optional, tag = "4")]
    pub features: Option<Any>,
    #[prost(btree_map = "string, string", tag = "5")]
    pub annotations: BTreeMap<String, String>,
}

/// containerd.types.RuntimeVersion.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuntimeVersion {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub revision: String,
}
