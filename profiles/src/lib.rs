//! Persistent browser identities. This crate owns the profile **state model** (cookies with all
//! their attributes, per-origin localStorage, room for IndexedDB) and the **blob codec** that
//! turns a state into what is stored: JSON → zstd → AES-256-GCM under a key id named in the blob's
//! header (so keys can rotate), addressed by a keyed hash of the plaintext (so identical states
//! are stored once without revealing their content).
//!
//! It also owns the profile tables (profiles, snapshots, blob references) and [`Profiles`], the
//! service that saves, snapshots, restores, clones and deletes with every blob verified and
//! reference-counted. It knows nothing of HTTP or of browsers: the runner reads and applies
//! states, the API exposes them.

pub mod blobs;
pub mod codec;
pub mod service;
pub mod state;
pub mod store;

pub use blobs::{BlobError, BlobStore};
pub use codec::{BlobCodec, CodecError, Keyring};
pub use service::{ProfileError, Profiles};
pub use state::{
    Cookie, Fingerprint, Geolocation, OriginStorage, ProfileState, Size, StateSummary,
};
pub use store::{ProfileRecord, ProfileStore, SnapshotRecord};
