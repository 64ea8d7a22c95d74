//! OCI images: digests, documents, the content store, layer unpacking,
//! layouts and runtime bundles.

pub mod bundle;
pub mod content;
pub mod digest;
pub mod layout;
pub mod oci;
pub mod pull;
pub mod store;
pub mod unpack;
