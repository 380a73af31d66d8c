//! Lock glue: what GETLK, SETLK/SETLKW (byte ranges, and flock(2) with `FUSE_LK_FLOCK`)
//! and FLUSH (a close(2) drops the owner's POSIX locks) hand to [`crate::locks`] from the
//! file system.

use crate::kernel::{Errno, FileHandle, INodeNo, LockOwner, ReplyEmpty, Request};

use super::QtfsFs;
use crate::procfs::Route;

impl QtfsFs {
    /// What a lock request needs (see [`crate::locks`]).
    pub(super) fn lock_args<'a>(
        &'a self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        owner: LockOwner,
    ) -> std::result::Result<crate::locks::LockArgs<'a>, Errno> {
        let file = self.file(fh)?;
        let path = self.nodes.lock().path(ino.0).and_then(|p| match self.route(p) {
            Route::Remote(p) => Some(p),
            Route::Local(_) | Route::SelfLink(_) => None,
        });
        Ok(crate::locks::LockArgs {
            remote: &self.remote,
            wait: self.wait(req),
            cred: self.cred(req),
            pid: req.pid(),
            node: ino.0,
            fh: fh.0,
            file,
            path,
            path_of: Box::new(self.path_fn()),
            owner: owner.0,
            notifier: self.notifier.get(),
        })
    }
}

pub(super) fn flush(fs: &QtfsFs, ino: INodeNo, lock_owner: LockOwner, reply: ReplyEmpty) {
    // Writes are sent as they come (with a writeback cache the kernel writes its
    // dirty pages before it sends FLUSH): nothing is buffered here. A close(2)
    // drops the owner's POSIX locks on the file.
    fs.locks.flush(&fs.remote, ino.0, lock_owner.0);
    reply.ok()
}
