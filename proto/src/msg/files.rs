//! File operations on an export: MOUNT/UMOUNT, lookup and attributes, open/create and
//! handle I/O, directories and their entries, names (mkdir, mknod, symlink, link,
//! rename) and extended attributes.

use super::records::{Attr, ReqCtx};
use crate::message;

message! {
    /// MOUNT: export a HOST directory (absolute path) to this session.
    pub struct MountReq<'a> {
        pub ctx: ReqCtx,
        /// `MOUNT_F_*` bits.
        pub flags: u32,
        tail {
            pub groups: Groups,
            /// Absolute HOST path of the directory to export.
            pub path: Path,
        }
    }
}

message! {
    /// MOUNT response.
    pub struct MountRsp {
        pub export: u32,
        /// Attributes of the export root.
        pub root: Attr,
    }
}

message! {
    /// UMOUNT: forget an export.
    pub struct UmountReq {
        pub export: u32,
    }
}

message! {
    /// A request naming one path (LOOKUP, RMDIR, UNLINK, READLINK, STATFS).
    pub struct PathReq<'a> {
        pub ctx: ReqCtx,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// GETATTR.
    pub struct GetattrReq<'a> {
        pub ctx: ReqCtx,
        /// `GETATTR_FOLLOW` to follow a final symlink.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// A response carrying attributes.
    pub struct AttrRsp {
        pub attr: Attr,
    }
}

message! {
    /// SETATTR: by path, or by handle when `handle` is not 0 (then `path` is empty).
    pub struct SetattrReq<'a> {
        pub ctx: ReqCtx,
        pub handle: u64,
        /// `SETATTR_*` bits: which fields apply.
        pub valid: u32,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub size: u64,
        pub atime_sec: i64,
        pub mtime_sec: i64,
        pub atime_nsec: u32,
        pub mtime_nsec: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// OPEN.
    pub struct OpenReq<'a> {
        pub ctx: ReqCtx,
        /// `O_*` bits of [`crate::consts::open`].
        pub flags: u32,
        /// Permission bits when `O_CREAT` is given.
        pub mode: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// CREATE: create a regular file (honouring `O_EXCL`), opened unless `CREATE_NOOPEN`.
    pub struct CreateReq<'a> {
        pub ctx: ReqCtx,
        /// `O_*` bits for the open (`O_CREAT` implied).
        pub flags: u32,
        pub mode: u32,
        /// Caller's umask, applied by the server.
        pub umask: u32,
        /// `CREATE_*` bits.
        pub cflags: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// OPEN/CREATE response.
    pub struct OpenRsp {
        /// Session-scoped handle (0 with `CREATE_NOOPEN`).
        pub handle: u64,
        pub attr: Attr,
    }
}

message! {
    /// A request naming one handle (CLOSE, FGETATTR).
    pub struct HandleReq {
        pub handle: u64,
    }
}

message! {
    /// READ. The response payload is the data; fewer bytes than asked means end of file.
    pub struct ReadReq {
        pub handle: u64,
        pub offset: u64,
        pub len: u32,
    }
}

message! {
    /// WRITE.
    pub struct WriteReq<'a> {
        pub handle: u64,
        /// Ignored for handles opened with `O_APPEND`.
        pub offset: u64,
        /// Reserved, 0.
        pub flags: u32,
        tail {
            pub data: Rest,
        }
    }
}

message! {
    /// WRITE response.
    pub struct WriteRsp {
        pub written: u32,
    }
}

message! {
    /// READDIR: entries after `cookie` (0 = start), at most `max_bytes` of records.
    pub struct ReaddirReq<'a> {
        pub ctx: ReqCtx,
        pub cookie: u64,
        pub max_bytes: u32,
        /// `READDIR_PLUS` to get `DirEntryPlus` records.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// READDIR response: `count` records of `DirEntry` (or `DirEntryPlus`).
    pub struct ReaddirRsp<'a> {
        pub count: u32,
        /// `READDIR_EOF` when the directory is exhausted; `READDIR_ATTR` when the
        /// directory's `Attr` follows the records (`feat::LIST_ATTR`).
        pub flags: u32,
        tail {
            pub entries: Rest,
        }
    }
}

message! {
    /// One directory entry.
    pub struct DirEntry<'a> {
        pub ino: u64,
        /// Cookie that resumes after this entry.
        pub cookie: u64,
        /// `DT_*` type.
        pub dtype: u8,
        tail {
            pub name: Name,
        }
    }
}

message! {
    /// One directory entry with attributes (`READDIR_PLUS`).
    pub struct DirEntryPlus<'a> {
        pub cookie: u64,
        pub attr: Attr,
        tail {
            pub name: Name,
        }
    }
}

message! {
    /// MKDIR.
    pub struct MkdirReq<'a> {
        pub ctx: ReqCtx,
        pub mode: u32,
        pub umask: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// MKNOD (FIFOs, sockets, device nodes).
    pub struct MknodReq<'a> {
        pub ctx: ReqCtx,
        /// Type and permission bits.
        pub mode: u32,
        pub umask: u32,
        pub rdev_major: u32,
        pub rdev_minor: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// SYMLINK: create `path` pointing at `target` (target text is stored verbatim).
    pub struct SymlinkReq<'a> {
        pub ctx: ReqCtx,
        tail {
            pub groups: Groups,
            pub path: Path,
            pub target: Path,
        }
    }
}

message! {
    /// LINK: hard link `new_path` to the existing `old_path`.
    pub struct LinkReq<'a> {
        pub ctx: ReqCtx,
        tail {
            pub groups: Groups,
            pub old_path: Path,
            pub new_path: Path,
        }
    }
}

message! {
    /// RENAME.
    pub struct RenameReq<'a> {
        pub ctx: ReqCtx,
        /// `RENAME_*` bits.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub old_path: Path,
            pub new_path: Path,
        }
    }
}

message! {
    /// XATTR_LIST. `size` 0 asks for the needed size only.
    pub struct XattrListReq<'a> {
        pub ctx: ReqCtx,
        pub size: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// XATTR_GET. `size` 0 asks for the needed size only.
    pub struct XattrGetReq<'a> {
        pub ctx: ReqCtx,
        pub size: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
            pub name: Name,
        }
    }
}

message! {
    /// XATTR_LIST/XATTR_GET response: `size` is the full size; `data` is empty for a
    /// size query (and the request fails with ERANGE when the buffer is too small).
    pub struct XattrRsp<'a> {
        pub size: u32,
        tail {
            pub data: Rest,
        }
    }
}

message! {
    /// XATTR_SET: the value is stored byte for byte.
    pub struct XattrSetReq<'a> {
        pub ctx: ReqCtx,
        /// `XATTR_CREATE` / `XATTR_REPLACE`.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
            pub name: Name,
            pub value: Bytes32,
        }
    }
}

message! {
    /// XATTR_REMOVE.
    pub struct XattrRemoveReq<'a> {
        pub ctx: ReqCtx,
        tail {
            pub groups: Groups,
            pub path: Path,
            pub name: Name,
        }
    }
}
