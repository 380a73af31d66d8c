//! HOST operations beyond plain file I/O: mount(2)/umount(2) inside an export, poll and
//! epoll readiness, statfs, ioctl, cache invalidation, llseek, kill, CPU affinity,
//! fsync/fallocate, POSIX locks and request cancel.

use super::records::{ReqCtx, Statfs};
use crate::message;

message! {
    /// SYSMOUNT: mount(2) on the HOST with the target inside the export.
    pub struct SysmountReq<'a> {
        pub ctx: ReqCtx,
        /// `MS_*` flags (Linux generic values).
        pub flags: u64,
        /// `SYSMOUNT_SRC_PATH` when `source` is a path in the export, else a literal
        /// (e.g. `proc`, `tmpfs`, `none`).
        pub source_kind: u32,
        tail {
            pub groups: Groups,
            pub target: Path,
            pub source: Path,
            pub fstype: Name,
            /// Mount options (passed verbatim).
            pub data: Bytes16,
        }
    }
}

message! {
    /// SYSUMOUNT.
    pub struct SysumountReq<'a> {
        pub ctx: ReqCtx,
        /// `MNT_FORCE` / `MNT_DETACH` / `MNT_EXPIRE` / `UMOUNT_NOFOLLOW`.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub target: Path,
        }
    }
}

message! {
    /// FIFO_POLL: wait at most `timeout_ms` for `events` on a handle.
    pub struct PollReq {
        pub handle: u64,
        pub events: u32,
        pub timeout_ms: u32,
    }
}

message! {
    /// FIFO_POLL response (0 on timeout).
    pub struct PollRsp {
        pub revents: u32,
    }
}

message! {
    /// STATFS response.
    pub struct StatfsRsp {
        pub statfs: Statfs,
    }
}

message! {
    /// IOCTL: `cmd` is an `IOC_*` value; `arg` is the portable input record, if any.
    /// The response payload is the portable output record, if any.
    pub struct IoctlReq<'a> {
        pub handle: u64,
        pub cmd: u32,
        tail {
            pub arg: Bytes16,
        }
    }
}

message! {
    /// EPOLL_CTL.
    pub struct EpollCtlReq {
        pub handle: u64,
        /// `EPOLL_CTL_ADD`, `_DEL` or `_MOD` (1, 2, 3).
        pub op: u32,
        pub events: u32,
        /// Returned in EPOLL_EVENT.
        pub cookie: u64,
    }
}

message! {
    /// EPOLL_EVENT (server to client, one-way): `count` `EpollRec` records.
    pub struct EpollEvent<'a> {
        pub count: u32,
        tail {
            pub events: Rest,
        }
    }
}

message! {
    /// INVAL (server to client, one-way, only on connections that agreed on
    /// `feat::INVAL`): the object at `path` of export `export` changed. `flags` are
    /// `inval::*` bits; with `inval::ALL` the path is empty.
    pub struct InvalMsg<'a> {
        pub export: u32,
        pub flags: u32,
        tail {
            /// Export-relative path (empty = the export root).
            pub path: Path,
        }
    }
}

message! {
    /// LLSEEK.
    pub struct LlseekReq {
        pub handle: u64,
        pub offset: i64,
        /// `SEEK_SET`..`SEEK_HOLE` (0..4).
        pub whence: u32,
    }
}

message! {
    /// LLSEEK response.
    pub struct LlseekRsp {
        pub offset: u64,
    }
}

message! {
    /// KILL.
    pub struct KillReq {
        pub pid: i32,
        pub signal: i32,
    }
}

message! {
    /// SCHED_GETAFFINITY (the response payload is the mask, bit i = CPU i).
    pub struct AffinityGetReq {
        pub pid: i32,
    }
}

message! {
    /// SCHED_SETAFFINITY.
    pub struct AffinitySetReq<'a> {
        pub pid: i32,
        tail {
            pub mask: Bytes16,
        }
    }
}

message! {
    /// FSYNC.
    pub struct FsyncReq {
        pub handle: u64,
        /// `FSYNC_DATASYNC` for fdatasync.
        pub flags: u32,
    }
}

message! {
    /// FALLOCATE (`FALLOC_FL_*` Linux generic values).
    pub struct FallocateReq {
        pub handle: u64,
        pub mode: u32,
        pub offset: u64,
        pub len: u64,
    }
}

message! {
    /// LOCK_GET and LOCK_SET. Byte-range locks are OFD locks of the handle's HOST open
    /// file description (each OPEN is its own); `LOCK_F_FLOCK` takes a flock(2) lock on
    /// the same description instead.
    pub struct LockReq {
        pub handle: u64,
        /// First byte of the range.
        pub start: u64,
        /// Bytes in the range; 0 = to the end of the file, however far it grows.
        pub len: u64,
        /// `LOCK_RD`, `LOCK_WR` or `LOCK_UN`.
        pub ltype: u32,
        /// `LOCK_F_*`.
        pub flags: u32,
    }
}

message! {
    /// LOCK_GET response: one lock that conflicts, or `ltype` = `LOCK_UN` (nothing does).
    pub struct LockRsp {
        pub start: u64,
        /// 0 = to the end of the file.
        pub len: u64,
        pub ltype: u32,
        /// HOST pid of the holder for a HOST process's classic POSIX lock; -1 for an
        /// OFD lock (another client's, another handle's, or a HOST OFD lock).
        pub pid: i32,
    }
}

message! {
    /// CANCEL: the request `id` of this connection, if it is still waiting, is answered
    /// EINTR. CANCEL itself is answered at once: ENOENT when nothing was waiting.
    pub struct CancelReq {
        pub id: u64,
    }
}
