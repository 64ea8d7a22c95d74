//! containerd.services.leases.v1.Leases (api/services/leases/v1/leases.proto):
//! Create, Delete, List, AddResource, DeleteResource, ListResources
//! (Delete, AddResource and DeleteResource answer Empty).

use crate::proto::types::Timestamp;
use std::collections::BTreeMap;

pub const SERVICE: &str = "containerd.services.leases.v1.Leases";

#[derive(Clone, PartialEq, prost::Message)]
pub struct Lease {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub created_at: Option<Timestamp>,
    #[prost(btree_map = "string, string", tag = "3")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    // 2 is not used.
    #[prost(btree_map = "string, string", tag = "3")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateResponse {
    #[prost(message, optional, tag = "1")]
    pub lease: Option<Lease>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bool, tag = "2")]
    pub sync: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListRequest {
    #[prost(string, repeated, tag = "1")]
    pub filters: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListResponse {
    #[prost(message, repeated, tag = "1")]
    pub leases: Vec<Lease>,
}

/// What a lease holds: `content` (a digest), `ingests` (a ref),
/// `snapshots/<snapshotter>` (a key).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AddResourceRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub resource: Option<Resource>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteResourceRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub resource: Option<Resource>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListResourcesRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListResourcesResponse {
    #[prost(message, repeated, tag = "1")]
    pub resources: Vec<Resource>,
}
