//! Every message of QTP v1, declared once. See `PROTOCOL.md` for the generated tables.
//!
//! Conventions: file requests that name a path start with a [`ReqCtx`] (export id and
//! caller credentials) and carry the supplementary groups as their first tail. Paths are
//! relative to the export root (empty = the root); the engine resolves them beneath it.
//! Handles are opaque 64-bit values issued by the engine, valid on every connection of
//! the session. Flags and modes use the portable values of [`crate::consts`].

//! Declared here by area, each submodule re-exported so every message keeps its path
//! (`qtfs_proto::Attr`, `qtfs_proto::msg::Attr`): the fixed records that messages embed
//! (`records`), the connection handshake and generic payloads (`control`), file
//! operations (`files`), other HOST operations (`hostops`), unix-socket channels
//! (`channels`), remote exec (`rexec`) and the admin socket (`admin`).

mod admin;
mod channels;
mod control;
mod files;
mod hostops;
mod records;
mod rexec;

pub use admin::*;
pub use channels::*;
pub use control::*;
pub use files::*;
pub use hostops::*;
pub use records::*;
pub use rexec::*;
