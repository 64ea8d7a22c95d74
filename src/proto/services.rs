//! Messages of containerd's daemon services that skiff's daemon and ctr
//! speak (containerd 1.6 api/services/*/v1/*.proto; same names and
//! numbers in 1.7 and 2.x). The small services are here, the others in
//! their own files under `services/`.

pub mod containers;
pub mod content;
pub mod diff;
pub mod images;
pub mod introspection;
pub mod leases;
pub mod pull;
pub mod snapshots;
pub mod tasks;

/// containerd.services.version.v1.Version (`Version(Empty)`).
pub mod version {
    pub const SERVICE: &str = "containerd.services.version.v1.Version";

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionResponse {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(string, tag = "2")]
        pub revision: String,
    }
}

/// containerd.services.namespaces.v1.Namespaces: Get, List, Create,
/// Update, Delete (Delete answers Empty).
pub mod namespaces {
    use std::collections::BTreeMap;

    pub const SERVICE: &str = "containerd.services.namespaces.v1.Namespaces";

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Namespace {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(btree_map = "string, string", tag = "2")]
        pub labels: BTreeMap<String, String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetNamespaceRequest {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetNamespaceResponse {
        #[prost(message, optional, tag = "1")]
        pub namespace: Option<Namespace>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListNamespacesRequest {
        #[prost(string, tag = "1")]
        pub filter: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListNamespacesResponse {
        #[prost(message, repeated, tag = "1")]
        pub namespaces: Vec<Namespace>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateNamespaceRequest {
        #[prost(message, optional, tag = "1")]
        pub namespace: Option<Namespace>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateNamespaceResponse {
        #[prost(message, optional, tag = "1")]
        pub namespace: Option<Namespace>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UpdateNamespaceRequest {
        #[prost(message, optional, tag = "1")]
        pub namespace: Option<Namespace>,
        #[prost(message, optional, tag = "2")]
        pub update_mask: Option<super::FieldMask>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UpdateNamespaceResponse {
        #[prost(message, optional, tag = "1")]
        pub namespace: Option<Namespace>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeleteNamespaceRequest {
        #[prost(string, tag = "1")]
        pub name: String,
    }
}

/// containerd.services.events.v1.Events: Publish, Forward (the
/// ForwardRequest and Envelope of [`crate::proto::events`]; same numbers)
/// and Subscribe (a server stream of Envelopes).
pub mod events {
    use crate::proto::types::Any;

    pub const SERVICE: &str = "containerd.services.events.v1.Events";

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PublishRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(message, optional, tag = "2")]
        pub event: Option<Any>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SubscribeRequest {
        #[prost(string, repeated, tag = "1")]
        pub filters: Vec<String>,
    }
}

/// google.protobuf.FieldMask: which fields an Update changes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FieldMask {
    #[prost(string, repeated, tag = "1")]
    pub paths: Vec<String>,
}
