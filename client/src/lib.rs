//! # qtfs-client — talking QTP to an engine
//!
//! - [`Stream`]: connected TCP, vsock or unix sockets.
//! - [`Connection`]: one authenticated connection ([`ClientConfig`] says where and how).
//! - [`Session`]: several pipelined connections sharing one engine session; any thread
//!   can [`Session::submit`] and wait, responses return out of order.
//! - Typed operations (`mount`, `lookup`, `read`, `write`, …) on [`Session`], each
//!   carrying the caller's [`Cred`].
//! - [`AdminClient`] for the engine's and udsproxyd's admin sockets.
//!
//! The engine's tests, the FUSE client, the tools and the load generator all use this
//! crate, so there is one implementation of the client side of the protocol.

pub mod admin;
pub mod conn;
pub mod error;
pub mod ops;
pub mod session;
pub mod stream;

pub use admin::AdminClient;
pub use conn::{ClientConfig, Connection, read_frame};
pub use error::{ClientError, Result, errno_text};
pub use ops::{Cred, DirEntryOwned, DirPage, SetAttr, SetTime};
pub use session::{ConnRef, FrameHandler, Pending, Response, Session};
pub use stream::Stream;
