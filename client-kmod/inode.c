// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * inode.c - names and attributes: lookup and revalidation, getattr/setattr, and the
 * namespace operations (create, mkdir, mknod, symlink, link, unlink, rmdir, rename).
 *
 * The HOST is the authority: every change is a request, and the attributes it answers
 * with replace what we cached. Cached names and attributes live attr_timeout_ms.
 * Modes arrive here with the umask already applied by the VFS (no POSIX ACLs), so the
 * requests carry umask 0.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/namei.h>
#include <linux/pagemap.h>
#include <linux/cred.h>
#include <linux/xattr.h>

#include "qtfs.h"

static bool fresh(unsigned long stamp, struct super_block *sb)
{
	return qtfs_stamp_fresh(stamp, sb);
}

static void dir_changed(struct inode *dir)
{
	QTFS_I(dir)->attr_expire = jiffies - 1;
}

static int lookup_attr(struct dentry *d, struct qtp_attr *a)
{
	struct qtfs_req *r;
	int err = qtfs_path_call(d, QTP_OP_LOOKUP, QTP_ATTR_SIZE, QTFS_IDEMPOTENT, &r);

	return qtfs_attr_done(err, r, a);
}

static struct dentry *qtfs_lookup(struct inode *dir, struct dentry *dentry, unsigned int flags)
{
	struct inode *inode = NULL;
	struct qtp_attr a;
	int err;

	if (dentry->d_name.len > QTP_MAX_NAME)
		return ERR_PTR(-ENAMETOOLONG);
	err = lookup_attr(dentry, &a);
	if (err && err != -ENOENT)
		return ERR_PTR(err);
	if (!err) {
		inode = qtfs_iget(dir->i_sb, &a);
		if (IS_ERR(inode))
			return ERR_CAST(inode);
	}
	dentry->d_time = jiffies;
	return d_splice_alias(inode, dentry);
}

static int qtfs_d_revalidate(QTFS_REVALIDATE_ARGS)
{
	struct inode *inode;
	struct qtp_attr a;
	int err;

	if (fresh(dentry->d_time, dentry->d_sb))
		return 1;
	if (flags & LOOKUP_RCU)
		return -ECHILD;
	err = lookup_attr(dentry, &a);
	inode = d_inode(dentry);
	if (err == -ENOENT)
		return inode ? 0 : (dentry->d_time = jiffies, 1);
	if (err)
		return err == -EINTR ? err : 0;
	if (!inode || inode->i_ino != a.ino || (inode->i_mode & S_IFMT) != (a.mode & S_IFMT))
		return 0;
	qtfs_apply_attr(inode, &a);
	dentry->d_time = jiffies;
	return 1;
}

const struct dentry_operations qtfs_dentry_ops = {
	.d_revalidate = qtfs_d_revalidate,
};

int qtfs_revalidate_inode(struct dentry *d, bool force)
{
	struct qtfs_client *cl = QTFS_SB(d->d_sb)->cl;
	struct inode *inode = d_inode(d);
	struct qtp_getattr_req g;
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	struct qtp_attr a;
	int err;

	/* attr_expire is the time of the attributes plus the timeout */
	if (!force && qtfs_stamp_fresh(QTFS_I(inode)->attr_expire - QTFS_SB(d->d_sb)->attr_timeout, d->d_sb))
		return 0;
	err = qtfs_path_cred_get(d, cl, &qp, &c);
	if (err)
		return err;
	g = (struct qtp_getattr_req){ QTFS_PATH_CRED(c, qp), .flags = 0 };
	err = QTFS_CALL(cl, QTP_OP_GETATTR, getattr_req, &g, QTP_ATTR_SIZE, QTFS_IDEMPOTENT, &r);
	qtfs_path_put(&qp);
	err = qtfs_attr_done(err, r, &a);
	if (!err && (a.ino != inode->i_ino || (a.mode & S_IFMT) != (inode->i_mode & S_IFMT))) {
		/* The name now refers to another file on the HOST. */
		d->d_time = qtfs_stale_stamp(d->d_sb);
		err = -ESTALE;
	}
	/* Gone or replaced: an open file still answers for itself, as a local fstat does. */
	if ((err == -ENOENT || err == -ESTALE) && !qtfs_open_file_attr(inode, &a) && a.ino == inode->i_ino)
		err = 0;
	if (err)
		return err;
	qtfs_apply_attr(inode, &a);
	return 0;
}

static int qtfs_getattr(qtfs_idmap_t *idmap, const struct path *path, struct kstat *stat, u32 mask,
			unsigned int flags)
{
	struct inode *inode = d_inode(path->dentry);
	int err = 0;

	if (flags & AT_STATX_FORCE_SYNC)
		err = qtfs_revalidate_inode(path->dentry, true);
	else if (!(flags & AT_STATX_DONT_SYNC))
		err = qtfs_revalidate_inode(path->dentry, false);
	if (err)
		return err;
	qtfs_generic_fillattr(idmap, mask, inode, stat);
	stat->blksize = 1024 * 1024; /* one request's worth */
	return 0;
}

static u64 handle_of(struct file *f)
{
	struct qtfs_file *qf = f ? f->private_data : NULL;

	return qf ? qf->handle : 0;
}

/* ATTR_ATIME/ATTR_MTIME of ia into SETATTR s: the time given (ATTR_*_SET) or the HOST's now. */
#define SETATTR_TIME(s, ia, T, t)						\
	do {									\
		if (!((ia)->ia_valid & ATTR_##T))				\
			break;							\
		if ((ia)->ia_valid & ATTR_##T##_SET) {				\
			(s).valid |= QTP_SETATTR_##T;				\
			(s).t##_sec = (ia)->ia_##t.tv_sec;			\
			(s).t##_nsec = (ia)->ia_##t.tv_nsec;			\
		} else {							\
			(s).valid |= QTP_SETATTR_##T##_NOW;			\
		}								\
	} while (0)

static int qtfs_setattr(qtfs_idmap_t *idmap, struct dentry *dentry, struct iattr *ia)
{
	struct inode *inode = d_inode(dentry);
	struct qtfs_client *cl = qtfs_cl(inode);
	struct qtp_setattr_req s = {};
	struct qtfs_path qp = {};
	struct qtfs_cred c;
	struct qtfs_req *r;
	struct qtp_attr a;
	int err;

	err = setattr_prepare(idmap, dentry, ia);
	if (err)
		return err;
	if (ia->ia_valid & ATTR_MODE) {
		s.valid |= QTP_SETATTR_MODE;
		s.mode = ia->ia_mode & 07777;
	}
	if (ia->ia_valid & ATTR_UID) {
		s.valid |= QTP_SETATTR_UID;
		s.uid = from_kuid_munged(&init_user_ns, ia->ia_uid);
	}
	if (ia->ia_valid & ATTR_GID) {
		s.valid |= QTP_SETATTR_GID;
		s.gid = from_kgid_munged(&init_user_ns, ia->ia_gid);
	}
	if (ia->ia_valid & ATTR_SIZE) {
		s.valid |= QTP_SETATTR_SIZE;
		s.size = ia->ia_size;
	}
	SETATTR_TIME(s, ia, ATIME, atime);
	SETATTR_TIME(s, ia, MTIME, mtime);
	if (!s.valid)
		return 0;
	qtfs_cred_fill(cl, &c);
	s.ctx = c.ctx;
	s.groups = c.groups;
	s.groups_count = c.ngroups;
	/* An open file (ftruncate, O_TRUNC) is named by its handle: it may have no name. */
	s.handle = (ia->ia_valid & ATTR_FILE) ? handle_of(ia->ia_file) : 0;
	if (!s.handle) {
		err = qtfs_path_get(dentry, &qp);
		if (err)
			return err;
		s.path = qp.p;
		s.path_len = qp.len;
	}
	if (ia->ia_valid & ATTR_SIZE)
		filemap_write_and_wait(inode->i_mapping);
	err = QTFS_CALL(cl, QTP_OP_SETATTR, setattr_req, &s, QTP_ATTR_SIZE, 0, &r);
	qtfs_path_put(&qp);
	err = qtfs_attr_done(err, r, &a);
	if (err)
		return err;
	qtfs_apply_attr(inode, &a);
	if (ia->ia_valid & ATTR_SIZE)
		truncate_pagecache(inode, a.size);
	return 0;
}

/* Instantiates dentry with the inode the HOST described. */
static int instantiate(struct inode *dir, struct dentry *dentry, const struct qtp_attr *a)
{
	struct inode *inode = qtfs_iget(dir->i_sb, a);

	if (IS_ERR(inode))
		return PTR_ERR(inode);
	d_instantiate(dentry, inode);
	dentry->d_time = jiffies;
	dir_changed(dir);
	return 0;
}

int qtfs_wire_open_flags(unsigned int f)
{
	int w;

	switch (f & O_ACCMODE) {
	case O_WRONLY:
		w = QTP_O_WRONLY;
		break;
	case O_RDWR:
		w = QTP_O_RDWR;
		break;
	default:
		w = QTP_O_RDONLY;
	}
	/*
	 * O_APPEND stays local: writes go through the page cache at offsets we compute
	 * from a fresh size, and write-back of any writer's pages uses any handle.
	 */
	if (f & O_NONBLOCK)
		w |= QTP_O_NONBLOCK;
	if (f & O_DSYNC)
		w |= QTP_O_DSYNC;
	if ((f & __O_SYNC) == __O_SYNC)
		w |= QTP_O_SYNC;
	if (f & O_NOATIME)
		w |= QTP_O_NOATIME;
	if (f & O_EXCL)
		w |= QTP_O_EXCL;
	return w;
}

/* CREATE; with file, opens it too (atomic_open), else only creates. */
static int create_req(struct inode *dir, struct dentry *dentry, umode_t mode, unsigned int oflags,
		      struct qtp_open_rsp *orsp)
{
	struct qtfs_client *cl = qtfs_cl(dir);
	struct qtp_create_req cr;
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	int err;

	err = qtfs_path_cred_get(dentry, cl, &qp, &c);
	if (err)
		return err;
	cr = (struct qtp_create_req){ QTFS_PATH_CRED(c, qp), .flags = qtfs_wire_open_flags(oflags),
				      .mode = mode & 07777, .umask = 0,
				      .cflags = orsp->handle ? 0 : QTP_CREATE_NOOPEN };
	err = QTFS_CALL(cl, QTP_OP_CREATE, create_req, &cr, 256, 0, &r);
	qtfs_path_put(&qp);
	return qtfs_open_done(err, r, orsp);
}

static int qtfs_create(qtfs_idmap_t *idmap, struct inode *dir, struct dentry *dentry, umode_t mode, bool excl)
{
	struct qtp_open_rsp o = { .handle = 0 };
	int err = create_req(dir, dentry, mode, O_WRONLY | (excl ? O_EXCL : 0), &o);

	return err ? err : instantiate(dir, dentry, &o.attr);
}


static int qtfs_atomic_open(struct inode *dir, struct dentry *dentry, struct file *file, unsigned int flags,
			    umode_t mode)
{
	struct dentry *res = NULL;
	struct qtp_open_rsp o = { .handle = 1 }; /* nonzero: open it too */
	bool rw = false;
	int err;

	if (d_in_lookup(dentry)) {
		res = qtfs_lookup(dir, dentry, 0);
		if (IS_ERR(res))
			return PTR_ERR(res);
		if (res)
			dentry = res;
	}
	if (!(flags & O_CREAT) || d_really_is_positive(dentry))
		return finish_no_open(file, res);

	/* write-only creations get a readable handle too (see qtfs_open) */
	if ((flags & O_ACCMODE) == O_WRONLY && !QTFS_SB(dir->i_sb)->proc) {
		err = create_req(dir, dentry, mode, (flags & ~O_ACCMODE) | O_RDWR, &o);
		if (err == -EACCES || err == -EPERM) {
			o.handle = 1;
			err = create_req(dir, dentry, mode, flags, &o);
		} else if (!err) {
			rw = true;
		}
	} else {
		err = create_req(dir, dentry, mode, flags, &o);
	}
	if (err)
		goto out;
	err = instantiate(dir, dentry, &o.attr);
	if (err) {
		qtfs_close_handle(qtfs_cl(dir), o.handle);
		goto out;
	}
	file->f_mode |= FMODE_CREATED;
	err = finish_open(file, dentry, generic_file_open);
	if (err) {
		qtfs_close_handle(qtfs_cl(dir), o.handle);
		goto out;
	}
	QTFS_ALLOW_ODIRECT(file);
	err = qtfs_file_attach(file, o.handle);
	if (!err && rw) {
		struct qtfs_file *qf = file->private_data;

		qf->flags = (qf->flags & ~QTP_O_ACCMODE) | QTP_O_RDWR; /* for a reopen */
	}
out:
	dput(res);
	return err;
}

static QTFS_MKDIR_RET qtfs_mkdir(qtfs_idmap_t *idmap, struct inode *dir, struct dentry *dentry, umode_t mode)
{
	struct qtfs_client *cl = qtfs_cl(dir);
	struct qtp_mkdir_req m;
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	struct qtp_attr a;
	int err;

	err = qtfs_path_cred_get(dentry, cl, &qp, &c);
	if (err)
		return QTFS_MKDIR_RETURN(err);
	m = (struct qtp_mkdir_req){ QTFS_PATH_CRED(c, qp), .mode = mode & 07777, .umask = 0 };
	err = QTFS_CALL(cl, QTP_OP_MKDIR, mkdir_req, &m, QTP_ATTR_SIZE, 0, &r);
	qtfs_path_put(&qp);
	err = qtfs_attr_done(err, r, &a);
	if (!err)
		err = instantiate(dir, dentry, &a);
	return QTFS_MKDIR_RETURN(err);
}

static int qtfs_mknod(qtfs_idmap_t *idmap, struct inode *dir, struct dentry *dentry, umode_t mode, dev_t rdev)
{
	struct qtfs_client *cl = qtfs_cl(dir);
	struct qtp_mknod_req m;
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	struct qtp_attr a;
	int err;

	if (S_ISREG(mode))
		return qtfs_create(idmap, dir, dentry, mode, false);
	err = qtfs_path_cred_get(dentry, cl, &qp, &c);
	if (err)
		return err;
	m = (struct qtp_mknod_req){ QTFS_PATH_CRED(c, qp), .mode = mode, .umask = 0,
				    .rdev_major = MAJOR(rdev), .rdev_minor = MINOR(rdev) };
	err = QTFS_CALL(cl, QTP_OP_MKNOD, mknod_req, &m, QTP_ATTR_SIZE, 0, &r);
	qtfs_path_put(&qp);
	err = qtfs_attr_done(err, r, &a);
	return err ? err : instantiate(dir, dentry, &a);
}

static int qtfs_symlink(qtfs_idmap_t *idmap, struct inode *dir, struct dentry *dentry, const char *target)
{
	struct qtfs_client *cl = qtfs_cl(dir);
	struct qtp_symlink_req s;
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	struct qtp_attr a;
	size_t tlen = strlen(target);
	int err;

	if (tlen > QTP_MAX_PATH)
		return -ENAMETOOLONG;
	err = qtfs_path_cred_get(dentry, cl, &qp, &c);
	if (err)
		return err;
	s = (struct qtp_symlink_req){ QTFS_PATH_CRED(c, qp), .target = (const u8 *)target, .target_len = tlen };
	err = QTFS_CALL(cl, QTP_OP_SYMLINK, symlink_req, &s, QTP_ATTR_SIZE, 0, &r);
	qtfs_path_put(&qp);
	err = qtfs_attr_done(err, r, &a);
	return err ? err : instantiate(dir, dentry, &a);
}

/* The two paths of LINK and RENAME, and the caller's credentials. */
static int two_paths_get(struct qtfs_client *cl, struct dentry *old, struct dentry *new, struct qtfs_path *op,
			 struct qtfs_path *np, struct qtfs_cred *c)
{
	int err = qtfs_path_get(old, op);

	if (err)
		return err;
	err = qtfs_path_cred_get(new, cl, np, c);
	if (err)
		qtfs_path_put(op);
	return err;
}

static void two_paths_put(struct qtfs_path *op, struct qtfs_path *np)
{
	qtfs_path_put(op);
	qtfs_path_put(np);
}

/* QTFS_PATH_CRED for a request on two paths (old and new) */
#define TWO_PATHS_CRED(c, op, np)								\
	.ctx = (c).ctx, .groups = (c).groups, .groups_count = (c).ngroups, .old_path = (op).p,	\
	.old_path_len = (op).len, .new_path = (np).p, .new_path_len = (np).len

static int qtfs_link(struct dentry *old, struct inode *dir, struct dentry *new)
{
	struct qtfs_client *cl = qtfs_cl(dir);
	struct inode *inode = d_inode(old);
	struct qtfs_path op, np;
	struct qtp_link_req l;
	struct qtfs_cred c;
	struct qtfs_req *r;
	struct qtp_attr a;
	int err;

	err = two_paths_get(cl, old, new, &op, &np, &c);
	if (err)
		return err;
	l = (struct qtp_link_req){ TWO_PATHS_CRED(c, op, np) };
	err = QTFS_CALL(cl, QTP_OP_LINK, link_req, &l, QTP_ATTR_SIZE, 0, &r);
	two_paths_put(&op, &np);
	err = qtfs_attr_done(err, r, &a);
	if (err)
		return err;
	qtfs_apply_attr(inode, &a);
	ihold(inode);
	d_instantiate(new, inode);
	new->d_time = jiffies;
	dir_changed(dir);
	return 0;
}

static int remove(struct inode *dir, struct dentry *dentry, u16 op)
{
	struct inode *inode = d_inode(dentry);
	struct qtfs_req *r;
	int err = qtfs_path_call(dentry, op, 0, 0, &r);

	qtfs_req_put(r);
	if (err)
		return err;
	if (op == QTP_OP_RMDIR)
		clear_nlink(inode);
	else
		drop_nlink(inode);
	QTFS_I(inode)->attr_expire = jiffies - 1;
	dir_changed(dir);
	return 0;
}

static int qtfs_unlink(struct inode *dir, struct dentry *dentry)
{
	return remove(dir, dentry, QTP_OP_UNLINK);
}

static int qtfs_rmdir(struct inode *dir, struct dentry *dentry)
{
	return remove(dir, dentry, QTP_OP_RMDIR);
}

static int qtfs_rename(qtfs_idmap_t *idmap, struct inode *odir, struct dentry *old, struct inode *ndir,
		       struct dentry *new, unsigned int flags)
{
	struct qtfs_client *cl = qtfs_cl(odir);
	struct qtfs_path op, np;
	struct qtp_rename_req rr;
	struct qtfs_cred c;
	struct qtfs_req *r;
	int err;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	err = two_paths_get(cl, old, new, &op, &np, &c);
	if (err)
		return err;
	rr = (struct qtp_rename_req){ TWO_PATHS_CRED(c, op, np), .flags = flags };
	err = QTFS_CALL(cl, QTP_OP_RENAME, rename_req, &rr, 0, 0, &r);
	two_paths_put(&op, &np);
	qtfs_req_put(r);
	if (err)
		return err;
	if (d_really_is_positive(new) && !(flags & RENAME_EXCHANGE)) {
		struct inode *victim = d_inode(new);

		if (S_ISDIR(victim->i_mode))
			clear_nlink(victim);
		else
			drop_nlink(victim);
		QTFS_I(victim)->attr_expire = jiffies - 1;
	}
	QTFS_I(d_inode(old))->attr_expire = jiffies - 1;
	dir_changed(odir);
	dir_changed(ndir);
	return 0;
}

static const char *qtfs_get_link(struct dentry *dentry, struct inode *inode, struct delayed_call *done)
{
	struct qtfs_req *r;
	char *target;
	int err;

	if (!dentry)
		return ERR_PTR(-ECHILD);
	err = qtfs_path_call(dentry, QTP_OP_READLINK, QTP_MAX_PATH, QTFS_IDEMPOTENT, &r);
	if (err) {
		qtfs_req_put(r);
		return ERR_PTR(err);
	}
	target = kmalloc(r->rsp_len + 1, GFP_KERNEL);
	if (target) {
		memcpy(target, r->rsp, r->rsp_len);
		target[r->rsp_len] = 0;
	}
	err = !target ? -ENOMEM : (!r->rsp_len || memchr(target, 0, r->rsp_len)) ? -EIO : 0;
	qtfs_req_put(r);
	if (err) {
		kfree(target);
		return ERR_PTR(err);
	}
	set_delayed_call(done, kfree_link, target);
	return target;
}

static ssize_t qtfs_listxattr(struct dentry *d, char *list, size_t size)
{
	return qtfs_xattr_list(d, list, size);
}

/* What every qtfs inode answers, whatever its type. */
#define QTFS_COMMON_IOPS \
	.getattr = qtfs_getattr, .setattr = qtfs_setattr, .listxattr = qtfs_listxattr

const struct inode_operations qtfs_dir_iops = {
	.lookup = qtfs_lookup,
	.create = qtfs_create,
	.atomic_open = qtfs_atomic_open,
	.link = qtfs_link,
	.unlink = qtfs_unlink,
	.symlink = qtfs_symlink,
	.mkdir = qtfs_mkdir,
	.rmdir = qtfs_rmdir,
	.mknod = qtfs_mknod,
	.rename = qtfs_rename,
	QTFS_COMMON_IOPS,
};

const struct inode_operations qtfs_file_iops = { QTFS_COMMON_IOPS };

const struct inode_operations qtfs_symlink_iops = {
	.get_link = qtfs_get_link,
	QTFS_COMMON_IOPS,
};

const struct inode_operations qtfs_special_iops = { QTFS_COMMON_IOPS };
