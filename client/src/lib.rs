//! # qtfs-client — talking QTP to an engine
//!
//! - [`Stream`]: connected TCP, vsock or unix sockets.
//! - [`Connection`]: one authenticated connection ([`ClientConfig`] says where and how).
//! - [`Session`]: several pipelined connections sharing one engine session; any thread
//!   can [`Session::submit`] and wait, responses return out of order.
//! - [`BlockingConn`]: one connection for one thread, one request at a time, the answer
//!   read by the caller (no reader thread, no wake-up).
//! - [`Ops`]: the typed operations (`mount`, `lookup`, `read`, `write`, …), each
//!   carrying the caller's [`Cred`], written once over any [`Transport`] (both of the
//!   above); [`Session`] offers them as its own methods.
//! - [`AdminClient`] for the engine's and udsproxyd's admin sockets.
//!
//! The engine's tests, the FUSE client, the tools and the load generator all use this
//! crate, so there is one implementation of the client side of the protocol.

pub mod admin;
pub mod blocking;
pub mod conn;
pub mod error;
pub mod ops;
pub mod session;
pub mod stream;
pub mod transport;

pub use admin::AdminClient;
pub use blocking::BlockingConn;
pub use conn::{ClientConfig, Connection, read_frame};
pub use error::{ClientError, Result, errno_text};
pub use ops::{Cred, DirEntryOwned, DirPage, MountSource, Ops, SetAttr, SetTime};
pub use session::{ConnRef, FrameHandler, InEpoch, Pending, Response, Session};
pub use stream::Stream;
pub use transport::{Request, Transport, remote_error};
