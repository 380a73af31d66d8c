//! The values the file system code exchanges with the FUSE layer: node numbers, handles,
//! attributes, error numbers and the flag sets of requests and replies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A flag set over an integer: `contains`, `|`, `&`, `bits`, `from_bits_truncate`.
macro_rules! flags {
    ($(#[$m:meta])* $name:ident: $t:ty { $($f:ident = $v:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name($t);
        #[allow(dead_code)]
        impl $name {
            $(pub const $f: $name = $name($v);)*
            const ALL: $t = 0 $(| $v)*;
            pub const fn empty() -> Self {
                $name(0)
            }
            pub const fn bits(self) -> $t {
                self.0
            }
            pub const fn from_bits_truncate(b: $t) -> Self {
                $name(b & Self::ALL)
            }
            pub const fn from_bits_retain(b: $t) -> Self {
                $name(b)
            }
            pub const fn contains(self, o: Self) -> bool {
                self.0 & o.0 == o.0
            }
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
            /// The single flags set, lowest first.
            pub fn iter(self) -> impl Iterator<Item = Self> {
                (0..<$t>::BITS).map(|i| (1 as $t) << i).filter(move |b| self.0 & b != 0).map($name)
            }
        }
        impl std::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, o: Self) -> Self {
                $name(self.0 | o.0)
            }
        }
        impl std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, o: Self) {
                self.0 |= o.0
            }
        }
        impl std::ops::BitAnd for $name {
            type Output = Self;
            fn bitand(self, o: Self) -> Self {
                $name(self.0 & o.0)
            }
        }
        impl std::ops::Not for $name {
            type Output = Self;
            fn not(self) -> Self {
                $name(!self.0)
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.0)
            }
        }
    };
}

use super::abi::init as i;

flags! {
    /// INIT capabilities (`flags | flags2 << 32`).
    InitFlags: u64 {
        FUSE_ASYNC_READ = i::ASYNC_READ;
        FUSE_POSIX_LOCKS = i::POSIX_LOCKS;
        FUSE_ATOMIC_O_TRUNC = i::ATOMIC_O_TRUNC;
        FUSE_EXPORT_SUPPORT = i::EXPORT_SUPPORT;
        FUSE_BIG_WRITES = i::BIG_WRITES;
        FUSE_DONT_MASK = i::DONT_MASK;
        FUSE_FLOCK_LOCKS = i::FLOCK_LOCKS;
        FUSE_HAS_IOCTL_DIR = i::HAS_IOCTL_DIR;
        FUSE_AUTO_INVAL_DATA = i::AUTO_INVAL_DATA;
        FUSE_DO_READDIRPLUS = i::DO_READDIRPLUS;
        FUSE_READDIRPLUS_AUTO = i::READDIRPLUS_AUTO;
        FUSE_ASYNC_DIO = i::ASYNC_DIO;
        FUSE_WRITEBACK_CACHE = i::WRITEBACK_CACHE;
        FUSE_NO_OPEN_SUPPORT = i::NO_OPEN_SUPPORT;
        FUSE_PARALLEL_DIROPS = i::PARALLEL_DIROPS;
        FUSE_HANDLE_KILLPRIV = i::HANDLE_KILLPRIV;
        FUSE_POSIX_ACL = i::POSIX_ACL;
        FUSE_ABORT_ERROR = i::ABORT_ERROR;
        FUSE_MAX_PAGES = i::MAX_PAGES;
        FUSE_CACHE_SYMLINKS = i::CACHE_SYMLINKS;
        FUSE_NO_OPENDIR_SUPPORT = i::NO_OPENDIR_SUPPORT;
        FUSE_EXPLICIT_INVAL_DATA = i::EXPLICIT_INVAL_DATA;
        FUSE_HANDLE_KILLPRIV_V2 = i::HANDLE_KILLPRIV_V2;
        FUSE_SETXATTR_EXT = i::SETXATTR_EXT;
        FUSE_INIT_EXT = i::INIT_EXT;
        FUSE_DIRECT_IO_ALLOW_MMAP = i::DIRECT_IO_ALLOW_MMAP;
        FUSE_PASSTHROUGH = i::PASSTHROUGH;
        FUSE_OVER_IO_URING = i::OVER_IO_URING;
    }
}

flags! {
    /// `FOPEN_*`: how the kernel treats an open file.
    FopenFlags: u32 {
        FOPEN_DIRECT_IO = 1 << 0;
        FOPEN_KEEP_CACHE = 1 << 1;
        FOPEN_NONSEEKABLE = 1 << 2;
        FOPEN_CACHE_DIR = 1 << 3;
        FOPEN_STREAM = 1 << 4;
        FOPEN_NOFLUSH = 1 << 5;
    }
}

flags! {
    /// rename(2)'s flags.
    RenameFlags: u32 {
        RENAME_NOREPLACE = libc::RENAME_NOREPLACE;
        RENAME_EXCHANGE = libc::RENAME_EXCHANGE;
        RENAME_WHITEOUT = libc::RENAME_WHITEOUT;
    }
}

flags! {
    /// `FUSE_WRITE_*`.
    WriteFlags: u32 {
        FUSE_WRITE_CACHE = 1 << 0;
        FUSE_WRITE_LOCKOWNER = 1 << 1;
        FUSE_WRITE_KILL_SUIDGID = 1 << 2;
    }
}

flags! {
    /// poll(2) events.
    PollEvents: u32 {
        POLLIN = 0x1;
        POLLPRI = 0x2;
        POLLOUT = 0x4;
        POLLERR = 0x8;
        POLLHUP = 0x10;
        POLLNVAL = 0x20;
        POLLRDNORM = 0x40;
        POLLRDBAND = 0x80;
        POLLWRNORM = 0x100;
        POLLWRBAND = 0x200;
        POLLMSG = 0x400;
        POLLRDHUP = 0x2000;
    }
}

flags! {
    /// `FUSE_POLL_*`.
    PollFlags: u32 {
        FUSE_POLL_SCHEDULE_NOTIFY = 1 << 0;
    }
}

flags! {
    /// `FUSE_IOCTL_*`.
    IoctlFlags: u32 {
        FUSE_IOCTL_COMPAT = 1 << 0;
        FUSE_IOCTL_UNRESTRICTED = 1 << 1;
        FUSE_IOCTL_RETRY = 1 << 2;
        FUSE_IOCTL_32BIT = 1 << 3;
        FUSE_IOCTL_DIR = 1 << 4;
        FUSE_IOCTL_COMPAT_X32 = 1 << 5;
    }
}

/// open(2)'s flags as the kernel passed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFlags(pub i32);

/// A node number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct INodeNo(pub u64);

impl INodeNo {
    pub const ROOT: INodeNo = INodeNo(1);
}

/// A file or directory handle of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileHandle(pub u64);

/// The kernel's lock owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LockOwner(pub u64);

/// An inode generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(pub u64);

/// An error number for a reply.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    pub const ERANGE: Errno = Errno(libc::ERANGE);
    pub const ENAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);
    pub const ENOLCK: Errno = Errno(libc::ENOLCK);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const ELOOP: Errno = Errno(libc::ELOOP);
    pub const ENODATA: Errno = Errno(libc::ENODATA);
    pub const EPROTO: Errno = Errno(libc::EPROTO);

    /// `n` as an error number (not positive: EIO, as no error is not one).
    pub const fn from_i32(n: i32) -> Errno {
        if n > 0 { Errno(n) } else { Errno(libc::EIO) }
    }

    pub const fn code(self) -> i32 {
        self.0
    }
}

impl From<Errno> for i32 {
    fn from(e: Errno) -> i32 {
        e.0
    }
}

impl std::fmt::Debug for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Errno({}: {})", self.0, std::io::Error::from_raw_os_error(self.0))
    }
}

/// The kind of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    NamedPipe,
    CharDevice,
    BlockDevice,
    Directory,
    RegularFile,
    Symlink,
    Socket,
}

impl FileType {
    /// The `S_IFMT` bits of the kind.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileType::NamedPipe => libc::S_IFIFO,
            FileType::CharDevice => libc::S_IFCHR,
            FileType::BlockDevice => libc::S_IFBLK,
            FileType::Directory => libc::S_IFDIR,
            FileType::RegularFile => libc::S_IFREG,
            FileType::Symlink => libc::S_IFLNK,
            FileType::Socket => libc::S_IFSOCK,
        }
    }
}

/// Attributes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAttr {
    pub ino: INodeNo,
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// Creation time (not sent to Linux).
    pub crtime: SystemTime,
    pub kind: FileType,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
    pub flags: u32,
}

/// A time to set: a given one or "now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOrNow {
    SpecificTime(SystemTime),
    Now,
}

/// (seconds, nanoseconds) since the epoch, nanoseconds in 0..1e9 (also before 1970).
pub fn to_wire_time(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs().min(i64::MAX as u64) as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let s = d.as_secs().min(i64::MAX as u64) as i64;
            if d.subsec_nanos() == 0 { (-s, 0) } else { (-s - 1, 1_000_000_000 - d.subsec_nanos()) }
        }
    }
}

/// The time of (seconds, nanoseconds) since the epoch (nanoseconds beyond a second are
/// clamped; a time out of range is the epoch).
pub fn from_wire_time(sec: i64, nsec: u32) -> SystemTime {
    let nsec = Duration::from_nanos(u64::from(nsec.min(999_999_999)));
    let t = if sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(sec as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(sec.unsigned_abs()))
    };
    t.and_then(|t| t.checked_add(nsec)).unwrap_or(UNIX_EPOCH)
}

/// A TTL as (seconds, nanoseconds).
pub fn to_wire_ttl(d: &Duration) -> (u64, u32) {
    (d.as_secs(), d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_before_and_after_1970() {
        for t in [
            UNIX_EPOCH + Duration::new(1_000_000_000, 123),
            UNIX_EPOCH - Duration::new(86_400, 500),
            UNIX_EPOCH - Duration::new(3, 0),
            UNIX_EPOCH,
        ] {
            let (s, n) = to_wire_time(t);
            assert!(n < 1_000_000_000);
            assert_eq!(from_wire_time(s, n), t);
        }
        assert_eq!(to_wire_time(UNIX_EPOCH - Duration::new(1, 500_000_000)), (-2, 500_000_000));
    }

    #[test]
    fn flags() {
        let f = InitFlags::FUSE_POSIX_LOCKS | InitFlags::FUSE_FLOCK_LOCKS;
        assert!(f.contains(InitFlags::FUSE_FLOCK_LOCKS));
        assert_eq!(f.iter().count(), 2);
        assert_eq!(PollEvents::from_bits_truncate(0x1 | 0x8000).bits(), 1);
        assert_eq!(InitFlags::FUSE_OVER_IO_URING.bits(), 1 << 41);
    }
}
