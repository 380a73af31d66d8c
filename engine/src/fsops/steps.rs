//! The named steps of the file operations: what an in-flight request waits for, with the
//! data it carries from one step to the next. `FsReq::step` (in `common`) holds one;
//! `fsops::complete` matches on it to hand a ring completion to the module of the
//! operation. A step that finished inline (`common::Next::Now`) is continued by its
//! module at once, without `complete`.
//!
//! A step carries scalars only: what the kernel reads while an operation is in flight
//! (strings, `open_how`, `statx`, timespecs, buffers) stays in `FsReq`, whose address
//! the kernel holds until the completion.
//!
//! This module owns the step types and imports no other module of `fsops` (it is at the
//! bottom, with `common`).

use std::time::Duration;

/// Where an in-flight request stands: the ring operation it waits for.
#[derive(Debug, Default)]
pub(crate) enum Step {
    /// Not in flight (pooled, or being answered).
    #[default]
    Idle,
    /// READ: the ring read into the request's buffer, after its header space and the
    /// `got` bytes an inline (cached) read already put there.
    Read { got: usize },
    /// WRITE: the ring write of the request's buffer.
    Write,
    /// FSYNC, FALLOCATE: one ring operation whose result is the answer.
    Sync,
    /// FIFO_POLL: the poll, linked to its timeout.
    Poll,
    /// READ or WRITE of a FIFO or terminal waiting for readiness (`POLL_ADD`).
    FifoIo(FifoIo),
    /// LOOKUP, GETATTR: the object resolved (`O_PATH`).
    Object,
    /// STATFS: the object resolved (`O_PATH`).
    Statfs,
    /// READLINK: the link itself resolved (`O_PATH | O_NOFOLLOW`).
    Readlink,
    /// SETATTR by path: the object resolved (`O_PATH`).
    Setattr(SetattrArgs),
    /// READDIR: the directory opened.
    Readdir(ReaddirArgs),
    /// XATTR_*: the object resolved.
    Xattr(XattrAct),
    /// UNLINK, RMDIR.
    Remove(RemoveStep),
    /// MKDIR, MKNOD, SYMLINK.
    Make(MakeStep),
    /// LINK.
    Link(LinkStep),
    /// RENAME.
    Rename(RenameStep),
    /// OPEN, CREATE.
    Open(OpenStep),
    /// SYSMOUNT.
    Sysmount(SysmountStep),
    /// SYSUMOUNT: the mount point resolved; `flags` are umount2's.
    Sysumount { flags: u32 },
    /// LOCK_SET parked on a timer (`waiter`), waiting for a conflicting lock to go.
    LockWait(LockWait),
}

/// A FIFO READ or WRITE waiting for its descriptor to be ready.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FifoIo {
    /// `len` bytes wanted; the buffer holds the header space, then room for them.
    Read { len: usize },
    /// `len` bytes to write (the buffer), `done` of them written so far.
    Write { len: usize, done: usize },
}

/// SETATTR's fields, as the request gave them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetattrArgs {
    /// `SETATTR_*` bits: which of the fields apply.
    pub valid: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
}

/// READDIR's window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReaddirArgs {
    pub cookie: u64,
    pub max_bytes: u32,
    pub flags: u32,
}

/// What an XATTR_* request does with the resolved object (the name is string 1, a value
/// to set the request's buffer).
#[derive(Debug, Clone, Copy)]
pub(crate) enum XattrAct {
    List { size: u32 },
    Get { size: u32 },
    Set { flags: u32 },
    Remove,
}

/// UNLINK, RMDIR (parent string 0, name string 1).
#[derive(Debug, Clone, Copy)]
pub(crate) enum RemoveStep {
    /// The parent resolved; next the name's removal (`rmdir`: a directory).
    Parent { rmdir: bool },
    /// The removal done (inline or on the ring).
    Removed,
}

/// What MKDIR, MKNOD, SYMLINK create.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Make {
    /// `mode` with the umask applied.
    Dir { mode: u32 },
    /// `mode` with the file type and the umask applied; `dev` for device nodes.
    Node { mode: u32, dev: u64 },
    /// The target is string 2.
    Symlink,
}

/// MKDIR, MKNOD, SYMLINK (parent string 0, name string 1).
#[derive(Debug, Clone, Copy)]
pub(crate) enum MakeStep {
    /// The parent resolved; next the check and the creation.
    Parent(Make),
    /// The name created; next its attributes.
    Made,
}

/// LINK (existing object string 0, new parent 1, new name 2, then its `/proc` path 3).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LinkStep {
    /// The existing object resolved (`O_PATH | O_NOFOLLOW`, kept as `dirfd`).
    Object,
    /// The new parent resolved (kept as `dirfd2`); next the checks and the link.
    NewParent,
    /// The link made; next the new name's attributes.
    Linked,
}

/// RENAME (old parent string 0, old name 1, new parent 2, new name 3); `flags` are
/// renameat2's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RenameStep {
    /// The old parent resolved (kept as `dirfd`).
    OldParent { flags: u32 },
    /// The new parent resolved; next the check and the rename.
    NewParent { flags: u32 },
    /// The rename done.
    Renamed,
}

/// What OPEN and CREATE were asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenArgs {
    /// Linux open flags (from the wire's, `O_CREAT` for CREATE).
    pub flags: i32,
    /// Creation mode, umask applied.
    pub mode: u32,
    /// CREATE without open (`CREATE_NOOPEN`): attributes only, no handle.
    pub noopen: bool,
}

/// OPEN, CREATE.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OpenStep {
    /// CREATE: the parent resolved (parent string 0, name 1, whole path 2); next the
    /// checks and the exclusive create of the name.
    CreateParent(OpenArgs),
    /// CREATE: the exclusive create done; EEXIST without `O_EXCL` goes the OPEN way.
    Created(OpenArgs),
    /// The existing object resolved (`O_PATH`); next its checks and the reopen.
    Object(OpenArgs),
    /// The reopen through `/proc/self/fd` done.
    Reopened(OpenArgs),
    /// A FIFO's open waiting on a timer for the other end (`fifo`).
    SpecialWait(SpecialOpen),
}

/// The open of a FIFO or device node (`fifo::open_special`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpecialOpen {
    pub args: OpenArgs,
    /// `S_IFMT` bits of the object.
    pub kind: u32,
    /// The string holding its `/proc/self/fd` path.
    pub path: usize,
    /// The flags to open it with.
    pub flags: i32,
    /// Timer rounds waited so far.
    pub rounds: u32,
}

/// SYSMOUNT (target string 0, source 1, fstype 2, data 3).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SysmountStep {
    /// The target resolved (kept as `fd`); next the source, if the mount has one.
    Target(SysmountArgs),
    /// The source resolved; next the mount.
    Source(SysmountArgs),
}

/// SYSMOUNT's scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SysmountArgs {
    pub flags: u64,
    pub source_kind: u32,
}

/// A parked LOCK_SET.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockWait {
    pub handle: u64,
    pub start: u64,
    pub len: u64,
    pub ltype: u32,
    pub flags: u32,
    /// The delay of the timer now parked.
    pub delay: Duration,
}

macro_rules! into_step {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Step {
            fn from(s: $t) -> Step {
                Step::$v(s)
            }
        }
    )*};
}

into_step! {
    FifoIo => FifoIo,
    SetattrArgs => Setattr,
    ReaddirArgs => Readdir,
    XattrAct => Xattr,
    RemoveStep => Remove,
    MakeStep => Make,
    LinkStep => Link,
    RenameStep => Rename,
    OpenStep => Open,
    SysmountStep => Sysmount,
    LockWait => LockWait,
}
