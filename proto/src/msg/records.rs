//! Fixed records that messages embed: the request context ([`ReqCtx`]), file attributes
//! ([`Attr`]), `statfs`, terminal settings and size, `fsxattr`, epoll events and the
//! admin counters of one operation.

use crate::record;

record! {
    /// Export id and the caller's credentials, leading every path-based request.
    pub struct ReqCtx {
        /// Export id returned by MOUNT (0 for MOUNT itself).
        pub export: u32,
        /// Caller's file system user id.
        pub uid: u32,
        /// Caller's file system group id.
        pub gid: u32,
    }
}

record! {
    /// Portable file attributes (what `statx` reports).
    pub struct Attr {
        /// Inode number.
        pub ino: u64,
        /// Size in bytes.
        pub size: u64,
        /// Allocated 512-byte blocks.
        pub blocks: u64,
        pub atime_sec: i64,
        pub mtime_sec: i64,
        pub ctime_sec: i64,
        /// Birth time (0 when unknown, see `flags`).
        pub btime_sec: i64,
        pub atime_nsec: u32,
        pub mtime_nsec: u32,
        pub ctime_nsec: u32,
        pub btime_nsec: u32,
        /// File type and permission bits (POSIX `S_IF*` values).
        pub mode: u32,
        pub nlink: u32,
        pub uid: u32,
        pub gid: u32,
        /// Device number of a device node (major).
        pub rdev_major: u32,
        pub rdev_minor: u32,
        /// Device of the file system holding the file (major).
        pub dev_major: u32,
        pub dev_minor: u32,
        /// Preferred I/O size.
        pub blksize: u32,
        /// `ATTR_F_*` bits.
        pub flags: u32,
    }
}

record! {
    /// Portable `statfs`.
    pub struct Statfs {
        /// File system magic (`f_type`).
        pub fs_type: u64,
        pub blocks: u64,
        pub bfree: u64,
        pub bavail: u64,
        pub files: u64,
        pub ffree: u64,
        pub fsid: u64,
        pub bsize: u32,
        pub frsize: u32,
        pub namelen: u32,
        /// Mount flags (`ST_*`).
        pub flags: u32,
    }
}

record! {
    /// Portable termios (asm-generic `struct termios2` fields; identical on x86-64 and arm64).
    pub struct Termios {
        pub iflag: u32,
        pub oflag: u32,
        pub cflag: u32,
        pub lflag: u32,
        pub ispeed: u32,
        pub ospeed: u32,
        pub line: u8,
        /// Control characters (`c_cc`, 19 used).
        pub cc: [u8; 19],
    }
}

record! {
    /// Terminal window size.
    pub struct Winsize {
        pub rows: u16,
        pub cols: u16,
        pub xpixel: u16,
        pub ypixel: u16,
    }
}

record! {
    /// `struct fsxattr` (FS_IOC_FSGETXATTR / FSSETXATTR).
    pub struct Fsxattr {
        pub xflags: u32,
        pub extsize: u32,
        pub nextents: u32,
        pub projid: u32,
        pub cowextsize: u32,
    }
}

record! {
    /// One readiness event of EPOLL_EVENT.
    pub struct EpollRec {
        /// `EPOLLIN`-style bits (Linux generic values).
        pub events: u32,
        /// The client's cookie from EPOLL_CTL.
        pub cookie: u64,
    }
}

record! {
    /// Counters of one operation (ADMIN_COUNTERS).
    pub struct OpCounter {
        /// Operation number.
        pub op: u16,
        pub requests: u64,
        pub errors: u64,
        /// Payload bytes received for this operation.
        pub bytes_in: u64,
        /// Payload bytes sent for this operation.
        pub bytes_out: u64,
        pub lat_p50_ns: u64,
        pub lat_p99_ns: u64,
        pub lat_p999_ns: u64,
        pub lat_max_ns: u64,
    }
}
