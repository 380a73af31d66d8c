// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * lock.c - fcntl (POSIX and OFD) and flock locks, held by the engine on the HOST so
 * they conflict with HOST processes and with every other client as local locks do.
 *
 * The engine locks the HOST open file description of a handle (OFD byte-range locks,
 * or flock with LOCK_F_FLOCK); the VFS gives us locks per lock owner: the process's
 * file table for fcntl locks (one owner's locks never conflict with each other,
 * whichever descriptor it used, and a close(2) of any of its descriptors of the file
 * drops them all), the struct file for OFD locks and flock. So each (inode, owner)
 * gets an engine handle of its own, opened for locking only and never used for I/O
 * (struct qtfs_lock_owner on qtfs_inode.lowners): two owners are two descriptions on
 * the HOST and conflict; one owner's locks through two descriptors land on one
 * description and merge, split and upgrade as POSIX wants. The handle is closed (the
 * engine then drops its locks) by ->flush of the owner (close(2): POSIX locks) or
 * ->release of the file (flock and OFD locks), after the file's data is on the HOST.
 * The VFS keeps no record of these locks (no /proc/locks lines, no local deadlock
 * detection): the engine is the only record.
 *
 * F_SETLKW and a blocking flock are sent with LOCK_F_WAIT and wait without a time
 * limit, interruptibly; a signal sends CANCEL for the request and waits (bounded) for
 * its answer: cancelled gives -ERESTARTSYS (EINTR, or a restart with SA_RESTART);
 * granted before the CANCEL arrived gives 0 (the lock is held, the signal is handled
 * on the way out), so an error never leaves a lock behind.
 *
 * Honesty: a LOCK_SET whose outcome is unknown (the connection dropped under it, no
 * answer in time) and a session the engine lost (a restart: every lock is gone) make
 * the owner "lost": its handle is closed and every lock call of that owner on the
 * file fails with ENOLCK until it closes the file. F_GETLK answers a holder's HOST
 * pid for a HOST process's classic POSIX lock, -1 for any other holder.
 *
 * The lock handle is opened by path with the caller's credentials, read-write when it
 * may (a read lock through a read-only descriptor and a write lock through another
 * share it), else with the file's access mode; a file whose name is gone cannot get
 * its first lock (ENOENT).
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/fcntl.h>
#include <linux/pagemap.h>

#include "qtfs.h"

struct qtfs_lock_owner {
	struct list_head node;   /* qtfs_inode.lowners, under lock_mutex */
	struct kref ref;         /* the list's, and each lock call's */
	fl_owner_t owner;
	u64 handle;
	u32 generation;          /* the session's when the handle was opened */
	bool lost;               /* ENOLCK until the owner closes the file */
};

static void lo_free(struct kref *ref)
{
	kfree(container_of(ref, struct qtfs_lock_owner, ref));
}

static void lo_put(struct qtfs_lock_owner *lo)
{
	if (lo)
		kref_put(&lo->ref, lo_free);
}

/* Closes the owner's handle unless the session it belonged to is gone. */
static void lo_close(struct qtfs_client *cl, struct qtfs_lock_owner *lo)
{
	if (lo->generation == READ_ONCE(cl->generation))
		qtfs_close_handle(cl, lo->handle);
}

/* The outcome of a lock call is unknown, or the session was lost: ENOLCK from now on. */
static void lo_lose(struct inode *inode, struct qtfs_lock_owner *lo, const char *why)
{
	struct qtfs_inode *qi = QTFS_I(inode);
	bool close;

	mutex_lock(&qi->lock_mutex);
	close = !lo->lost;
	lo->lost = true;
	mutex_unlock(&qi->lock_mutex);
	if (close) {
		qtfs_warn("locks of inode %lu held through the engine are lost (%s): ENOLCK until the file is closed",
			  inode->i_ino, why);
		lo_close(qtfs_cl(inode), lo);
	}
}

/*
 * The owner's lock handle (a reference for the caller in *lop), opened when create;
 * *lop NULL when there is none and !create. -ENOLCK for a lost owner.
 */
static int lo_get(struct file *file, fl_owner_t owner, bool create, struct qtfs_lock_owner **lop)
{
	struct inode *inode = file_inode(file);
	struct qtfs_inode *qi = QTFS_I(inode);
	struct qtfs_client *cl = qtfs_cl(inode);
	struct qtfs_lock_owner *lo;
	struct qtp_open_rsp o;
	u32 gen;
	int err;

	*lop = NULL;
	mutex_lock(&qi->lock_mutex);
	list_for_each_entry(lo, &qi->lowners, node) {
		if (lo->owner != owner)
			continue;
		if (!lo->lost && lo->generation != READ_ONCE(cl->generation)) {
			lo->lost = true; /* the engine restarted: its locks are gone */
			qtfs_warn("locks of inode %lu were lost with the engine's session: ENOLCK until the file is closed",
				  inode->i_ino);
		}
		err = lo->lost ? -ENOLCK : 0;
		if (!err) {
			kref_get(&lo->ref);
			*lop = lo;
		}
		mutex_unlock(&qi->lock_mutex);
		return err;
	}
	if (!create) {
		mutex_unlock(&qi->lock_mutex);
		return 0;
	}
	lo = kzalloc(sizeof(*lo), GFP_KERNEL);
	if (!lo) {
		mutex_unlock(&qi->lock_mutex);
		return -ENOMEM;
	}
	gen = READ_ONCE(cl->generation);
	err = qtfs_open_req(file->f_path.dentry, QTP_O_RDWR, &o);
	if ((err == -EACCES || err == -EPERM || err == -EROFS) &&
	    (file->f_mode & (FMODE_READ | FMODE_WRITE)) != (FMODE_READ | FMODE_WRITE))
		err = qtfs_open_req(file->f_path.dentry, (file->f_mode & FMODE_WRITE) ? QTP_O_WRONLY : QTP_O_RDONLY,
				    &o);
	if (!err && gen != READ_ONCE(cl->generation)) {
		/* the session changed under the open: which one the handle is of is unclear */
		err = -ENOLCK;
	}
	if (err) {
		mutex_unlock(&qi->lock_mutex);
		kfree(lo);
		return err;
	}
	kref_init(&lo->ref); /* the list's */
	lo->owner = owner;
	lo->handle = o.handle;
	lo->generation = gen;
	list_add_tail(&lo->node, &qi->lowners);
	kref_get(&lo->ref);
	mutex_unlock(&qi->lock_mutex);
	*lop = lo;
	return 0;
}

/* Takes the owner's handle off the inode and closes it: the engine drops its locks. */
static void lo_remove(struct inode *inode, fl_owner_t owner, bool all)
{
	struct qtfs_inode *qi = QTFS_I(inode);
	struct qtfs_lock_owner *lo, *n;
	LIST_HEAD(gone);

	if (list_empty_careful(&qi->lowners))
		return;
	mutex_lock(&qi->lock_mutex);
	list_for_each_entry_safe(lo, n, &qi->lowners, node) {
		if (all || lo->owner == owner)
			list_move(&lo->node, &gone);
	}
	mutex_unlock(&qi->lock_mutex);
	list_for_each_entry_safe(lo, n, &gone, node) {
		list_del_init(&lo->node);
		if (!lo->lost)
			lo_close(qtfs_cl(inode), lo);
		lo_put(lo);
	}
}

void qtfs_locks_flush(struct file *file, fl_owner_t id)
{
	if (id)
		lo_remove(file_inode(file), id, false);
}

void qtfs_locks_release(struct file *file)
{
	lo_remove(file_inode(file), file, false);
}

void qtfs_locks_evict(struct inode *inode)
{
	lo_remove(inode, NULL, true);
}

/* The wire type of fl, a lock of kind (FL_POSIX or FL_FLOCK); -ENOLCK for another kind. */
static int wire_type(struct file_lock *fl, unsigned int kind, u32 *ltype)
{
	if (!(QTFS_FL_FLAGS(fl) & kind))
		return -ENOLCK;
	switch (QTFS_FL_TYPE(fl)) {
	case F_RDLCK:
		*ltype = QTP_LOCK_RD;
		return 0;
	case F_WRLCK:
		*ltype = QTP_LOCK_WR;
		return 0;
	case F_UNLCK:
		*ltype = QTP_LOCK_UN;
		return 0;
	}
	return -EINVAL;
}

/* Engine errors that mean its handle (or session) is gone. */
static int lock_errno(int err)
{
	return (err == -ESTALE || err == -EBADF) ? -ENOLCK : err;
}

/* F_GETLK: through the owner's own description (its locks never conflict), else the file's. */
static int do_getlk(struct file *file, fl_owner_t owner, struct qtp_lock_req *m, struct file_lock *fl)
{
	struct qtfs_client *cl = qtfs_cl(file_inode(file));
	struct qtfs_lock_owner *lo;
	struct qtp_lock_rsp lr;
	struct qtfs_req *r;
	int err;

	if (m->ltype == QTP_LOCK_UN)
		return -EINVAL;
	err = lo_get(file, owner, false, &lo);
	if (err)
		return err;
	if (lo)
		m->handle = lo->handle;
	else
		err = qtfs_file_handle(file, &m->handle); /* holds no locks: never used for them */
	if (!err)
		err = QTFS_CALL(cl, QTP_OP_LOCK_GET, lock_req, m, QTP_LOCK_RSP_FIXED, QTFS_IDEMPOTENT, &r);
	else
		r = NULL;
	if (!err && qtp_lock_rsp_decode(r->rsp, r->rsp_len, &lr) != r->rsp_len)
		err = -EIO;
	qtfs_req_put(r);
	lo_put(lo);
	if (err)
		return lock_errno(err);
	if (lr.ltype == QTP_LOCK_UN) {
		QTFS_FL_TYPE(fl) = F_UNLCK;
		return 0;
	}
	QTFS_FL_TYPE(fl) = lr.ltype == QTP_LOCK_RD ? F_RDLCK : F_WRLCK;
	fl->fl_start = lr.start;
	fl->fl_end = (lr.len == 0 || lr.start + lr.len - 1 > (u64)OFFSET_MAX) ? OFFSET_MAX : lr.start + lr.len - 1;
	/* a HOST process's classic POSIX lock has its HOST pid; any other holder, -1 */
	QTFS_FL_PID(fl) = lr.pid > 0 ? lr.pid : -1;
	if (lr.pid > 0)
		QTFS_FL_FLAGS(fl) &= ~FL_OFDLCK;
	else
		QTFS_FL_FLAGS(fl) |= FL_OFDLCK;
	return 0;
}

static int do_setlk(struct file *file, fl_owner_t owner, bool wait, struct qtp_lock_req *m)
{
	struct inode *inode = file_inode(file);
	struct qtfs_client *cl = qtfs_cl(inode);
	struct qtfs_lock_owner *lo;
	struct qtfs_req *r;
	bool unknown = false;
	int err;

	err = lo_get(file, owner, m->ltype != QTP_LOCK_UN, &lo);
	if (err || !lo)
		return err; /* no handle: unlocking what was never locked */
	m->handle = lo->handle;
	if (m->ltype == QTP_LOCK_UN && qtfs_cached(inode))
		filemap_write_and_wait(inode->i_mapping); /* the next holder sees what we wrote */
	if (wait && m->ltype != QTP_LOCK_UN) {
		m->flags |= QTP_LOCK_F_WAIT;
		r = qtfs_req_new(QTP_OP_LOCK_SET, qtp_lock_req_size(m), 0);
		err = r ? 0 : -ENOMEM;
		if (r) {
			qtp_lock_req_encode(m, qtfs_req_payload(r), r->plen);
			err = qtfs_req_run_wait(cl, r, &unknown);
		}
	} else {
		err = QTFS_CALL(cl, QTP_OP_LOCK_SET, lock_req, m, 0, 0, &r);
		unknown = err && r && r->sent && !r->answered;
	}
	qtfs_req_put(r);
	if (unknown)
		lo_lose(inode, lo, "no answer to a lock request");
	lo_put(lo);
	if (err)
		return unknown ? err : lock_errno(err);
	if (m->ltype != QTP_LOCK_UN) {
		/* the previous holder may have changed the file: ask the HOST again */
		QTFS_I(inode)->attr_expire = jiffies - 1;
		if (qtfs_cached(inode) && inode->i_mapping->nrpages) {
			filemap_write_and_wait(inode->i_mapping);
			invalidate_inode_pages2(inode->i_mapping);
		}
	}
	return 0;
}

int qtfs_lock(struct file *file, int cmd, struct file_lock *fl)
{
	struct qtp_lock_req m = {};
	int err;

	err = wire_type(fl, FL_POSIX, &m.ltype);
	if (err)
		return err;
	if (fl->fl_start < 0 || fl->fl_end < fl->fl_start)
		return -EINVAL;
	m.start = fl->fl_start;
	m.len = fl->fl_end == OFFSET_MAX ? 0 : fl->fl_end - fl->fl_start + 1;
	/* OFD locks are owned by the struct file (fl_owner is the file), POSIX ones by the process */
	if (IS_GETLK(cmd))
		return do_getlk(file, QTFS_FL_OWNER(fl), &m, fl);
	return do_setlk(file, QTFS_FL_OWNER(fl), IS_SETLKW(cmd), &m);
}

int qtfs_flock(struct file *file, int cmd, struct file_lock *fl)
{
	struct qtp_lock_req m = { .flags = QTP_LOCK_F_FLOCK };
	int err;

	err = wire_type(fl, FL_FLOCK, &m.ltype);
	if (err)
		return err;
	/* flock locks belong to the open file, whoever uses it */
	return do_setlk(file, file, IS_SETLKW(cmd), &m);
}
