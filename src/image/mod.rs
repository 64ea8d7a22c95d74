//! OCI images: digests, documents, the content store, layer unpacking,
//! layouts and runtime bundles.

pub mod digest;
pub mod oci;
pub mod store;
pub mod unpack;
