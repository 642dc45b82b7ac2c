//! Persistent browser identities. This crate owns the profile **state model** (cookies with all
//! their attributes, per-origin localStorage, room for IndexedDB) and the **blob codec** that
//! turns a state into what is stored: JSON → zstd → AES-256-GCM under a key id named in the blob's
//! header (so keys can rotate), addressed by a keyed hash of the plaintext (so identical states
//! are stored once without revealing their content).
//!
//! It knows nothing of HTTP or of browsers; the runner fills and applies states, the API stores
//! them. (Routes, snapshots and the object store come with the profiles issue.)

pub mod blobs;
pub mod codec;
pub mod state;

pub use blobs::{BlobError, BlobStore};
pub use codec::{BlobCodec, CodecError, Keyring};
pub use state::{Cookie, OriginStorage, ProfileState};
