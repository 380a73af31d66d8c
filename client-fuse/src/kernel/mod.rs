//! The FUSE protocol layer of qtfs-fuse: everything between the kernel's FUSE wire and
//! the file system ([`crate::fs`]), owned by this project (it replaced the `fuser`
//! crate, which hid `FUSE_LK_FLOCK` and gave no control of INIT or of how requests are
//! fetched and answered, both needed for flock locks and for FUSE over io_uring).
//!
//! Owns:
//! - [`abi`]: the kernel ABI (`linux/fuse.h`): opcodes, INIT flags, structures decoded
//!   from and encoded to bytes with every length checked;
//! - [`request`]: a request's header and its operation, parsed from the operation's
//!   structure and the bytes after it as two slices (the io_uring transport delivers
//!   them in two buffers; `/dev/fuse` in one, which is split);
//! - [`reply`]: the reply builders, each sent exactly once through a transport's
//!   [`Sender`] (EIO when dropped unanswered), and [`notify`]: invalidations and poll
//!   wakeups;
//! - [`filesystem`]: the [`Filesystem`] trait, INIT's [`KernelConfig`] and the one
//!   [`dispatch`] from operation to method;
//! - [`uring`]: the FUSE-over-io_uring transport (a queue, its ring buffers, and the
//!   tasks that serve requests on the queue's thread), and [`ring`]: a session's queues,
//!   which request is served where, and the worker pool for the ones that may block;
//! - [`devring`]: `/dev/fuse` served by ring threads, as tasks (the io_uring transport's
//!   shape where FUSE over io_uring is not used), and [`pool`]: the worker threads for
//!   requests that may block, shared by both ring transports;
//! - [`session`] and [`mount`]: mounting (mount(2) as root, fusermount3 otherwise),
//!   INIT, the serving threads on cloned `/dev/fuse` descriptors ([`dev`]), and
//!   unmounting.
//!
//! Depends on nothing else of this crate: the file system depends on it, never the
//! other way.

pub mod abi;
mod dev;
mod devring;
pub mod filesystem;
pub mod mount;
pub mod notify;
mod pool;
pub mod reply;
pub mod request;
pub mod ring;
pub mod session;
pub mod types;
pub mod uring;

pub use filesystem::{Filesystem, KernelConfig, Lock, Setattr, dispatch};
pub use mount::MountOptions;
pub use notify::{Notifier, PollHandle, PollNotifier};
pub use reply::{
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyLock, ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Sender,
};
pub use request::Request;
pub use session::{Config, Session, Unmounter, UringMode};
pub use types::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags, IoctlFlags, LockOwner,
    OpenFlags, PollEvents, PollFlags, RenameFlags, TimeOrNow, WriteFlags,
};
