//! The FUSE kernel ABI (`linux/fuse.h`, protocol 7.x): opcodes, flags and the request and
//! reply structures this crate uses, decoded from and encoded to bytes in native byte
//! order. Decoding never trusts a length: a structure shorter than its size is `None`.

/// The protocol we speak (the kernel answers with the lower of its version and ours).
pub const KERNEL_VERSION: u32 = 7;
pub const KERNEL_MINOR_VERSION: u32 = 41;

/// The smallest read buffer the kernel accepts on `/dev/fuse`.
pub const MIN_READ_BUFFER: usize = 8192;

/// `FUSE_DEV_IOC_CLONE`: `_IOR(229, 0, uint32_t)`.
pub const DEV_IOC_CLONE: u64 = 0x8004_e500;

/// Opcodes.
pub mod op {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FSYNC: u32 = 20;
    pub const SETXATTR: u32 = 21;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const REMOVEXATTR: u32 = 24;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const FSYNCDIR: u32 = 30;
    pub const GETLK: u32 = 31;
    pub const SETLK: u32 = 32;
    pub const SETLKW: u32 = 33;
    pub const ACCESS: u32 = 34;
    pub const CREATE: u32 = 35;
    pub const INTERRUPT: u32 = 36;
    pub const BMAP: u32 = 37;
    pub const DESTROY: u32 = 38;
    pub const IOCTL: u32 = 39;
    pub const POLL: u32 = 40;
    pub const NOTIFY_REPLY: u32 = 41;
    pub const BATCH_FORGET: u32 = 42;
    pub const FALLOCATE: u32 = 43;
    pub const READDIRPLUS: u32 = 44;
    pub const RENAME2: u32 = 45;
    pub const LSEEK: u32 = 46;
    pub const COPY_FILE_RANGE: u32 = 47;
    pub const SYNCFS: u32 = 50;
    pub const TMPFILE: u32 = 51;
    pub const STATX: u32 = 52;
}

/// INIT flags (`flags` in the low 32 bits, `flags2` in the high 32 with `FUSE_INIT_EXT`).
pub mod init {
    pub const ASYNC_READ: u64 = 1 << 0;
    pub const POSIX_LOCKS: u64 = 1 << 1;
    pub const ATOMIC_O_TRUNC: u64 = 1 << 3;
    pub const EXPORT_SUPPORT: u64 = 1 << 4;
    pub const BIG_WRITES: u64 = 1 << 5;
    pub const DONT_MASK: u64 = 1 << 6;
    pub const FLOCK_LOCKS: u64 = 1 << 10;
    pub const HAS_IOCTL_DIR: u64 = 1 << 11;
    pub const AUTO_INVAL_DATA: u64 = 1 << 12;
    pub const DO_READDIRPLUS: u64 = 1 << 13;
    pub const READDIRPLUS_AUTO: u64 = 1 << 14;
    pub const ASYNC_DIO: u64 = 1 << 15;
    pub const WRITEBACK_CACHE: u64 = 1 << 16;
    pub const NO_OPEN_SUPPORT: u64 = 1 << 17;
    pub const PARALLEL_DIROPS: u64 = 1 << 18;
    pub const HANDLE_KILLPRIV: u64 = 1 << 19;
    pub const POSIX_ACL: u64 = 1 << 20;
    pub const ABORT_ERROR: u64 = 1 << 21;
    pub const MAX_PAGES: u64 = 1 << 22;
    pub const CACHE_SYMLINKS: u64 = 1 << 23;
    pub const NO_OPENDIR_SUPPORT: u64 = 1 << 24;
    pub const EXPLICIT_INVAL_DATA: u64 = 1 << 25;
    pub const HANDLE_KILLPRIV_V2: u64 = 1 << 28;
    pub const SETXATTR_EXT: u64 = 1 << 29;
    pub const INIT_EXT: u64 = 1 << 30;
    pub const DIRECT_IO_ALLOW_MMAP: u64 = 1 << 36;
    pub const PASSTHROUGH: u64 = 1 << 37;
    pub const OVER_IO_URING: u64 = 1 << 41;
}

pub const FATTR_MODE: u32 = 1 << 0;
pub const FATTR_UID: u32 = 1 << 1;
pub const FATTR_GID: u32 = 1 << 2;
pub const FATTR_SIZE: u32 = 1 << 3;
pub const FATTR_ATIME: u32 = 1 << 4;
pub const FATTR_MTIME: u32 = 1 << 5;
pub const FATTR_FH: u32 = 1 << 6;
pub const FATTR_ATIME_NOW: u32 = 1 << 7;
pub const FATTR_MTIME_NOW: u32 = 1 << 8;
pub const FATTR_CTIME: u32 = 1 << 10;

pub const RELEASE_FLUSH: u32 = 1 << 0;
pub const RELEASE_FLOCK_UNLOCK: u32 = 1 << 1;
pub const GETATTR_FH: u32 = 1 << 0;
pub const LK_FLOCK: u32 = 1 << 0;
pub const READ_LOCKOWNER: u32 = 1 << 1;
pub const WRITE_LOCKOWNER: u32 = 1 << 1;
pub const FSYNC_FDATASYNC: u32 = 1 << 0;

/// Notification codes (the `error` field of a message with unique 0).
pub const NOTIFY_POLL: i32 = 1;
pub const NOTIFY_INVAL_INODE: i32 = 2;
pub const NOTIFY_INVAL_ENTRY: i32 = 3;

/// Bounds-checked reads of native-endian integers from a byte slice.
pub struct Rd<'a>(pub &'a [u8]);

impl<'a> Rd<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.arr().map(u16::from_ne_bytes)
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.arr().map(u32::from_ne_bytes)
    }
    pub fn i32(&mut self) -> Option<i32> {
        self.arr().map(i32::from_ne_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.arr().map(u64::from_ne_bytes)
    }
    pub fn i64(&mut self) -> Option<i64> {
        self.arr().map(i64::from_ne_bytes)
    }
}

/// Native-endian writes into a fixed buffer; writing past its end is dropped (the sizes
/// are constants of this module, so it never happens).
pub struct Wr<const N: usize> {
    pub buf: [u8; N],
    at: usize,
}

impl<const N: usize> Default for Wr<N> {
    fn default() -> Self {
        Wr { buf: [0; N], at: 0 }
    }
}

impl<const N: usize> Wr<N> {
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        if let Some(d) = self.buf.get_mut(self.at..self.at + b.len()) {
            d.copy_from_slice(b);
        }
        self.at += b.len();
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_ne_bytes())
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_ne_bytes())
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.bytes(&v.to_ne_bytes())
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_ne_bytes())
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes(&v.to_ne_bytes())
    }
    /// What was written.
    pub fn done(&self) -> &[u8] {
        self.buf.get(..self.at.min(N)).unwrap_or(&[])
    }
}

/// `struct fuse_in_header`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InHeader {
    pub len: u32,
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub total_extlen: u16,
}

impl InHeader {
    pub const SIZE: usize = 40;
    pub fn decode(b: &[u8]) -> Option<InHeader> {
        let mut r = Rd(b);
        let h = InHeader {
            len: r.u32()?,
            opcode: r.u32()?,
            unique: r.u64()?,
            nodeid: r.u64()?,
            uid: r.u32()?,
            gid: r.u32()?,
            pid: r.u32()?,
            total_extlen: r.u16()?,
        };
        r.u16()?;
        Some(h)
    }
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut w = Wr::<{ Self::SIZE }>::default();
        w.u32(self.len).u32(self.opcode).u64(self.unique).u64(self.nodeid);
        w.u32(self.uid).u32(self.gid).u32(self.pid).u16(self.total_extlen).u16(0);
        w.buf
    }
}

/// `struct fuse_out_header`.
pub const OUT_HEADER_SIZE: usize = 16;

pub fn out_header(len: usize, error: i32, unique: u64) -> [u8; OUT_HEADER_SIZE] {
    let mut w = Wr::<OUT_HEADER_SIZE>::default();
    w.u32(len as u32).i32(error).u64(unique);
    w.buf
}

/// `struct fuse_init_in` (the part this crate reads).
#[derive(Debug, Clone, Copy, Default)]
pub struct InitIn {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    /// `flags | flags2 << 32` (flags2 only with `FUSE_INIT_EXT`).
    pub flags: u64,
}

impl InitIn {
    pub fn decode(b: &[u8]) -> Option<InitIn> {
        let mut r = Rd(b);
        let (major, minor) = (r.u32()?, r.u32()?);
        if major < 7 || (major == 7 && minor < 6) {
            // Too old to carry max_readahead and flags.
            return Some(InitIn { major, minor, ..Default::default() });
        }
        let (max_readahead, lo) = (r.u32()?, r.u32()?);
        let hi = if lo as u64 & init::INIT_EXT != 0 { r.u32().unwrap_or(0) } else { 0 };
        Some(InitIn { major, minor, max_readahead, flags: lo as u64 | (hi as u64) << 32 })
    }
}

/// `struct fuse_init_out`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InitOut {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u64,
    pub max_background: u16,
    pub congestion_threshold: u16,
    pub max_write: u32,
    pub time_gran: u32,
    pub max_pages: u16,
}

impl InitOut {
    pub const SIZE: usize = 64;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut w = Wr::<{ Self::SIZE }>::default();
        w.u32(self.major).u32(self.minor).u32(self.max_readahead).u32(self.flags as u32);
        w.u16(self.max_background).u16(self.congestion_threshold).u32(self.max_write).u32(self.time_gran);
        w.u16(self.max_pages).u16(0).u32((self.flags >> 32) as u32);
        w.buf
    }
}

/// `struct fuse_attr`, with times as (seconds, nanoseconds) since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

impl Attr {
    pub const SIZE: usize = 88;
    pub fn put<const N: usize>(&self, w: &mut Wr<N>) {
        w.u64(self.ino).u64(self.size).u64(self.blocks);
        w.i64(self.atime.0).i64(self.mtime.0).i64(self.ctime.0);
        w.u32(self.atime.1).u32(self.mtime.1).u32(self.ctime.1);
        w.u32(self.mode).u32(self.nlink).u32(self.uid).u32(self.gid).u32(self.rdev).u32(self.blksize).u32(0);
    }
}

/// `struct fuse_entry_out`: node, generation, (entry, attribute) validity, attributes.
pub const ENTRY_OUT_SIZE: usize = 40 + Attr::SIZE;

pub fn entry_out(
    nodeid: u64,
    generation: u64,
    entry_ttl: (u64, u32),
    attr_ttl: (u64, u32),
    a: &Attr,
) -> [u8; ENTRY_OUT_SIZE] {
    let mut w = Wr::<ENTRY_OUT_SIZE>::default();
    w.u64(nodeid).u64(generation).u64(entry_ttl.0).u64(attr_ttl.0).u32(entry_ttl.1).u32(attr_ttl.1);
    a.put(&mut w);
    w.buf
}

/// `struct fuse_attr_out`.
pub const ATTR_OUT_SIZE: usize = 16 + Attr::SIZE;

pub fn attr_out(ttl: (u64, u32), a: &Attr) -> [u8; ATTR_OUT_SIZE] {
    let mut w = Wr::<ATTR_OUT_SIZE>::default();
    w.u64(ttl.0).u32(ttl.1).u32(0);
    a.put(&mut w);
    w.buf
}

/// `struct fuse_open_out`.
pub fn open_out(fh: u64, open_flags: u32) -> [u8; 16] {
    let mut w = Wr::<16>::default();
    w.u64(fh).u32(open_flags).i32(0);
    w.buf
}

/// `struct fuse_dirent` header (the name follows, padded to 8 bytes).
pub const DIRENT_SIZE: usize = 24;

pub fn dirent(ino: u64, off: u64, namelen: u32, typ: u32) -> [u8; DIRENT_SIZE] {
    let mut w = Wr::<DIRENT_SIZE>::default();
    w.u64(ino).u64(off).u32(namelen).u32(typ);
    w.buf
}

/// A name as the kernel sends it: the bytes before the first NUL (all, without one).
pub fn cstr(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (b.get(..i).unwrap_or(&[]), b.get(i + 1..).unwrap_or(&[])),
        None => (b, &[]),
    }
}
