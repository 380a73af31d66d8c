//! Replies: each builder produces `out header + body` as I/O slices and hands them to
//! the transport's [`Sender`] (`/dev/fuse`: one writev). Every reply is sent exactly
//! once: the builders take `self`, and one dropped without an answer sends EIO, for the
//! kernel would otherwise wait for it forever.

use std::ffi::OsStr;
use std::io::{self, IoSlice};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use super::abi::{self, Attr, Wr};
use super::types::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, PollEvents, to_wire_time, to_wire_ttl,
};

/// A transport's way back to the kernel: one message made of `parts`, in order.
pub trait Sender: Send + Sync {
    fn send(&self, parts: &[IoSlice<'_>]) -> io::Result<()>;
}

/// A reply not yet sent: the request's unique and the way back.
pub struct ReplyRaw {
    unique: u64,
    sender: Option<Arc<dyn Sender>>,
}

impl ReplyRaw {
    pub fn new(unique: u64, sender: Arc<dyn Sender>) -> ReplyRaw {
        ReplyRaw { unique, sender: Some(sender) }
    }

    fn send(&mut self, error: i32, body: &[&[u8]]) {
        let Some(sender) = self.sender.take() else { return };
        let len = abi::OUT_HEADER_SIZE + body.iter().map(|b| b.len()).sum::<usize>();
        let header = abi::out_header(len, error, self.unique);
        let mut parts = [IoSlice::new(&[]); 4];
        let mut n = 0;
        for (slot, b) in parts.iter_mut().zip(std::iter::once(&header[..]).chain(body.iter().copied())) {
            *slot = IoSlice::new(b);
            n += 1;
        }
        if let Err(e) = sender.send(parts.get(..n).unwrap_or(&[])) {
            // ENOENT: the request was interrupted and is gone.
            tracing::debug!(unique = self.unique, "reply not delivered: {e}");
        }
    }

    /// A successful reply with `body`.
    pub fn ok(mut self, body: &[&[u8]]) {
        self.send(0, body)
    }

    /// An error reply.
    pub fn error(mut self, e: Errno) {
        self.send(-e.code(), &[])
    }
}

impl Drop for ReplyRaw {
    fn drop(&mut self) {
        if self.sender.is_some() {
            tracing::debug!(unique = self.unique, "reply dropped unanswered: EIO");
            self.send(-libc::EIO, &[]);
        }
    }
}

fn wire_attr(a: &FileAttr) -> Attr {
    Attr {
        ino: a.ino.0,
        size: a.size,
        blocks: a.blocks,
        atime: to_wire_time(a.atime),
        mtime: to_wire_time(a.mtime),
        ctime: to_wire_time(a.ctime),
        mode: a.kind.mode_bits() | u32::from(a.perm),
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
    }
}

fn entry_bytes(attr_ttl: &Duration, entry_ttl: &Duration, a: &FileAttr, g: Generation) -> [u8; abi::ENTRY_OUT_SIZE] {
    abi::entry_out(a.ino.0, g.0, to_wire_ttl(entry_ttl), to_wire_ttl(attr_ttl), &wire_attr(a))
}

macro_rules! reply_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        pub struct $name(ReplyRaw);
        impl $name {
            pub fn new(unique: u64, sender: Arc<dyn Sender>) -> Self {
                $name(ReplyRaw::new(unique, sender))
            }
            pub fn error(self, e: Errno) {
                self.0.error(e)
            }
        }
    };
}

reply_type!(
    /// An answer without data.
    ReplyEmpty
);
reply_type!(
    /// Bytes (READ, READLINK).
    ReplyData
);
reply_type!(
    /// A node (LOOKUP, MKNOD, MKDIR, SYMLINK, LINK).
    ReplyEntry
);
reply_type!(
    /// Attributes (GETATTR, SETATTR).
    ReplyAttr
);
reply_type!(
    /// An open handle (OPEN, OPENDIR).
    ReplyOpen
);
reply_type!(
    /// Bytes written.
    ReplyWrite
);
reply_type!(
    /// STATFS.
    ReplyStatfs
);
reply_type!(
    /// CREATE: a node and its open handle.
    ReplyCreate
);
reply_type!(
    /// GETLK.
    ReplyLock
);
reply_type!(
    /// GETXATTR, LISTXATTR: the size asked for, or the data.
    ReplyXattr
);
reply_type!(
    /// LSEEK.
    ReplyLseek
);
reply_type!(
    /// POLL.
    ReplyPoll
);
reply_type!(
    /// IOCTL.
    ReplyIoctl
);

impl ReplyEmpty {
    pub fn ok(self) {
        self.0.ok(&[])
    }
}

impl ReplyData {
    pub fn data(self, data: &[u8]) {
        self.0.ok(&[data])
    }
}

impl ReplyEntry {
    pub fn entry(self, ttl: &Duration, attr: &FileAttr, generation: Generation) {
        self.entry_with_ttls(ttl, ttl, attr, generation)
    }

    pub fn entry_with_ttls(self, attr_ttl: &Duration, entry_ttl: &Duration, attr: &FileAttr, generation: Generation) {
        self.0.ok(&[&entry_bytes(attr_ttl, entry_ttl, attr, generation)])
    }
}

impl ReplyAttr {
    pub fn attr(self, ttl: &Duration, attr: &FileAttr) {
        self.0.ok(&[&abi::attr_out(to_wire_ttl(ttl), &wire_attr(attr))])
    }
}

impl ReplyOpen {
    pub fn opened(self, fh: FileHandle, flags: FopenFlags) {
        self.0.ok(&[&abi::open_out(fh.0, flags.bits())])
    }
}

impl ReplyWrite {
    pub fn written(self, size: u32) {
        let mut w = Wr::<8>::default();
        w.u32(size).u32(0);
        self.0.ok(&[w.done()])
    }
}

impl ReplyStatfs {
    #[allow(clippy::too_many_arguments)]
    pub fn statfs(
        self,
        blocks: u64,
        bfree: u64,
        bavail: u64,
        files: u64,
        ffree: u64,
        bsize: u32,
        namelen: u32,
        frsize: u32,
    ) {
        let mut w = Wr::<80>::default();
        w.u64(blocks).u64(bfree).u64(bavail).u64(files).u64(ffree).u32(bsize).u32(namelen).u32(frsize);
        self.0.ok(&[&w.buf])
    }
}

impl ReplyCreate {
    pub fn created(self, ttl: &Duration, attr: &FileAttr, generation: Generation, fh: FileHandle, flags: FopenFlags) {
        self.0.ok(&[&entry_bytes(ttl, ttl, attr, generation), &abi::open_out(fh.0, flags.bits())])
    }
}

impl ReplyLock {
    pub fn locked(self, start: u64, end: u64, typ: i32, pid: u32) {
        let mut w = Wr::<24>::default();
        w.u64(start).u64(end).i32(typ).u32(pid);
        self.0.ok(&[&w.buf])
    }
}

impl ReplyXattr {
    pub fn size(self, size: u32) {
        let mut w = Wr::<8>::default();
        w.u32(size).u32(0);
        self.0.ok(&[&w.buf])
    }

    pub fn data(self, data: &[u8]) {
        self.0.ok(&[data])
    }
}

impl ReplyLseek {
    pub fn offset(self, offset: i64) {
        let mut w = Wr::<8>::default();
        w.i64(offset);
        self.0.ok(&[&w.buf])
    }
}

impl ReplyPoll {
    pub fn poll(self, revents: PollEvents) {
        let mut w = Wr::<8>::default();
        w.u32(revents.bits()).u32(0);
        self.0.ok(&[&w.buf])
    }
}

impl ReplyIoctl {
    /// The ioctl's result and its output data (no retry with other buffers).
    pub fn ioctl(self, result: i32, data: &[u8]) {
        let mut w = Wr::<16>::default();
        w.i32(result).u32(0).u32(0).u32(0);
        self.0.ok(&[&w.buf, data])
    }
}

/// Appends one `fuse_dirent` (and before it, for READDIRPLUS, an entry) to `buf` unless
/// that would pass `max`: then it returns true (full).
fn push_dirent(buf: &mut Vec<u8>, max: usize, entry: Option<&[u8]>, ino: u64, off: u64, typ: u32, name: &[u8]) -> bool {
    let name_len = name.len();
    let padded = (abi::DIRENT_SIZE + name_len).next_multiple_of(8);
    let total = entry.map_or(0, <[u8]>::len) + padded;
    if buf.len() + total > max {
        return true;
    }
    if let Some(e) = entry {
        buf.extend_from_slice(e);
    }
    buf.extend_from_slice(&abi::dirent(ino, off, name_len as u32, typ));
    buf.extend_from_slice(name);
    buf.resize(buf.len() + padded - abi::DIRENT_SIZE - name_len, 0);
    false
}

/// READDIR: entries up to the size the kernel asked for.
pub struct ReplyDirectory {
    raw: ReplyRaw,
    buf: Vec<u8>,
    max: usize,
}

impl ReplyDirectory {
    pub fn new(unique: u64, sender: Arc<dyn Sender>, size: usize) -> ReplyDirectory {
        ReplyDirectory { raw: ReplyRaw::new(unique, sender), buf: Vec::with_capacity(size.min(1 << 20)), max: size }
    }

    /// Adds an entry; true when it did not fit (the listing is full).
    pub fn add<T: AsRef<OsStr>>(&mut self, ino: INodeNo, offset: u64, kind: FileType, name: T) -> bool {
        let typ = kind.mode_bits() >> 12;
        push_dirent(&mut self.buf, self.max, None, ino.0, offset, typ, name.as_ref().as_bytes())
    }

    pub fn ok(self) {
        self.raw.ok(&[&self.buf])
    }

    pub fn error(self, e: Errno) {
        self.raw.error(e)
    }
}

/// READDIRPLUS: entries with their attributes.
pub struct ReplyDirectoryPlus {
    raw: ReplyRaw,
    buf: Vec<u8>,
    max: usize,
}

impl ReplyDirectoryPlus {
    pub fn new(unique: u64, sender: Arc<dyn Sender>, size: usize) -> ReplyDirectoryPlus {
        ReplyDirectoryPlus { raw: ReplyRaw::new(unique, sender), buf: Vec::with_capacity(size.min(1 << 20)), max: size }
    }

    /// Adds an entry; true when it did not fit (the listing is full).
    pub fn add<T: AsRef<OsStr>>(
        &mut self,
        ino: INodeNo,
        offset: u64,
        name: T,
        ttl: &Duration,
        attr: &FileAttr,
        generation: Generation,
    ) -> bool {
        let entry = abi::entry_out(ino.0, generation.0, to_wire_ttl(ttl), to_wire_ttl(ttl), &wire_attr(attr));
        let typ = attr.kind.mode_bits() >> 12;
        push_dirent(&mut self.buf, self.max, Some(&entry), ino.0, offset, typ, name.as_ref().as_bytes())
    }

    /// Adds an entry by name only (node id 0: the kernel links no inode to it and keeps
    /// what it knows of the name); true when it did not fit.
    pub fn add_name<T: AsRef<OsStr>>(&mut self, ino: INodeNo, offset: u64, kind: FileType, name: T) -> bool {
        let entry = abi::entry_out(0, 0, (0, 0), (0, 0), &Attr::default());
        let typ = kind.mode_bits() >> 12;
        push_dirent(&mut self.buf, self.max, Some(&entry), ino.0, offset, typ, name.as_ref().as_bytes())
    }

    pub fn ok(self) {
        self.raw.ok(&[&self.buf])
    }

    pub fn error(self, e: Errno) {
        self.raw.error(e)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// Collects what would be sent.
    #[derive(Default)]
    pub struct Capture(pub Mutex<Vec<Vec<u8>>>);

    impl Sender for Capture {
        fn send(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
            self.0.lock().push(parts.iter().flat_map(|p| p.iter().copied()).collect());
            Ok(())
        }
    }

    fn header(m: &[u8]) -> (u32, i32, u64) {
        let mut r = abi::Rd(m);
        (r.u32().unwrap(), r.i32().unwrap(), r.u64().unwrap())
    }

    #[test]
    fn sent_once_and_eio_when_dropped() {
        let c = Arc::new(Capture::default());
        ReplyEmpty::new(1, c.clone()).ok();
        drop(ReplyData::new(2, c.clone()));
        ReplyWrite::new(3, c.clone()).written(5);
        ReplyEntry::new(4, c.clone()).error(Errno::ENOENT);
        let m = c.0.lock();
        assert_eq!(m.len(), 4);
        assert_eq!(header(&m[0]), (16, 0, 1));
        assert_eq!(header(&m[1]), (16, -libc::EIO, 2));
        assert_eq!(header(&m[2]), (24, 0, 3));
        assert_eq!(header(&m[3]), (16, -libc::ENOENT, 4));
    }

    #[test]
    fn directory_entries_are_padded_and_bounded() {
        let c = Arc::new(Capture::default());
        let mut d = ReplyDirectory::new(9, c.clone(), 72);
        assert!(!d.add(INodeNo(1), 1, FileType::Directory, "."));
        assert!(!d.add(INodeNo(2), 2, FileType::RegularFile, "abcdefghi"));
        assert!(d.add(INodeNo(3), 3, FileType::RegularFile, "x"));
        d.ok();
        let m = c.0.lock();
        assert_eq!(m[0].len(), 16 + 72);
    }
}
