// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * super.c - the `qtfs` file system type: mount options, the super block, inodes and
 * their attributes, the caller's identity and wire paths.
 *
 *   mount -t qtfs [-o proc,relay,attr_timeout_ms=N,ro] /HOST/DIR /mnt
 *
 *   proc               files of unknown size (an exported /proc or /sys): no page cache,
 *                      every read(2) is a READ, so nothing is cut at a size of 0
 *   relay              HOST FIFOs and character devices (a VM's console pty under the
 *                      HOST's /dev/pts, a FIFO) are relayed to the HOST object: open,
 *                      read, write, poll/select/epoll and the terminal ioctls go to the
 *                      engine (relay.c); without it they act locally, as on NFS (a FIFO is
 *                      a pipe of this machine, a device node this machine's device)
 *   attr_timeout_ms=N  attribute and name cache lifetime (default: the parameter)
 *
 * Inodes are keyed by the HOST inode number and file type, so hard links share one
 * inode. Requests name paths relative to the export, built from the dentry tree.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/seq_file.h>
#include <linux/parser.h>
#include <linux/cred.h>
#include <linux/namei.h>
#include <linux/backing-dev.h>
#include <linux/pagemap.h>

#include "qtfs.h"

static struct kmem_cache *qtfs_inode_cache;

/* ---- identity and paths ---- */

void qtfs_cred_fill(struct qtfs_client *cl, struct qtfs_cred *c)
{
	const struct cred *cred = current_cred();
	struct group_info *gi = cred->group_info;
	u32 i, n = gi ? min_t(u32, gi->ngroups, QTP_MAX_GROUPS) : 0;

	c->ctx.export = cl->export_id;
	c->ctx.uid = from_kuid_munged(&init_user_ns, cred->fsuid);
	c->ctx.gid = from_kgid_munged(&init_user_ns, cred->fsgid);
	for (i = 0; i < n; i++)
		qtp_put32(c->groups + 4 * i, from_kgid_munged(&init_user_ns, gi->gid[i]));
	c->ngroups = n;
}

int qtfs_path_get(struct dentry *d, struct qtfs_path *qp)
{
	char *p;

	qp->buf = kmalloc(PATH_MAX, GFP_NOFS);
	if (!qp->buf)
		return -ENOMEM;
	/* Relative to the export: "/a/b" becomes "a/b", the root "". */
	p = dentry_path_raw(d, qp->buf, PATH_MAX);
	if (!IS_ERR(p) && *p == '/')
		p++;
	if (!IS_ERR(p) && strlen(p) > QTP_MAX_PATH)
		p = ERR_PTR(-ENAMETOOLONG);
	if (IS_ERR(p)) {
		kfree(qp->buf);
		qp->buf = NULL;
		return PTR_ERR(p);
	}
	qp->p = (const u8 *)p;
	qp->len = strlen(p);
	return 0;
}

void qtfs_path_put(struct qtfs_path *qp)
{
	kfree(qp->buf);
	qp->buf = NULL;
}

int qtfs_path_cred_get(struct dentry *d, struct qtfs_client *cl, struct qtfs_path *qp, struct qtfs_cred *c)
{
	int err = qtfs_path_get(d, qp);

	if (!err)
		qtfs_cred_fill(cl, c);
	return err;
}

int qtfs_path_call(struct dentry *d, u16 op, u32 cap, unsigned int flags, struct qtfs_req **rp)
{
	struct qtfs_client *cl = QTFS_SB(d->d_sb)->cl;
	struct qtp_path_req pr;
	struct qtfs_path qp;
	struct qtfs_cred c;
	int err;

	*rp = NULL;
	err = qtfs_path_cred_get(d, cl, &qp, &c);
	if (err)
		return err;
	pr = (struct qtp_path_req){ QTFS_PATH_CRED(c, qp) };
	err = QTFS_CALL(cl, op, path_req, &pr, cap, flags, rp);
	qtfs_path_put(&qp);
	return err;
}

/* ---- inodes ---- */

static struct inode *qtfs_alloc_inode(struct super_block *sb)
{
	struct qtfs_inode *qi = alloc_inode_sb(sb, qtfs_inode_cache, GFP_KERNEL);

	if (!qi)
		return NULL;
	qi->attr_expire = 0;
	qi->data_size = 0;
	qi->own_write = false;
	spin_lock_init(&qi->wlock);
	INIT_LIST_HEAD(&qi->wfiles);
	INIT_LIST_HEAD(&qi->ofiles);
	mutex_init(&qi->lock_mutex);
	INIT_LIST_HEAD(&qi->lowners);
	memset(&qi->data_mtime, 0, sizeof(qi->data_mtime));
	return &qi->vfs_inode;
}

static void qtfs_free_inode(struct inode *inode)
{
	kmem_cache_free(qtfs_inode_cache, QTFS_I(inode));
}

static void qtfs_inode_once(void *p)
{
	inode_init_once(&((struct qtfs_inode *)p)->vfs_inode);
}

static struct timespec64 ts(s64 sec, u32 nsec)
{
	return (struct timespec64){ .tv_sec = sec, .tv_nsec = nsec < NSEC_PER_SEC ? nsec : 0 };
}

/*
 * Takes fresh attributes. When the file changed on the HOST behind our back (mtime or
 * size differ from what the cached pages were read at), the cached pages are dropped:
 * close-to-open and attribute-timeout coherence, as NFS gives.
 */
void qtfs_apply_attr(struct inode *inode, const struct qtp_attr *a)
{
	struct qtfs_inode *qi = QTFS_I(inode);
	struct timespec64 mt = ts(a->mtime_sec, a->mtime_nsec);
	bool changed;

	inode->i_mode = (inode->i_mode & S_IFMT) | (a->mode & ~S_IFMT);
	set_nlink(inode, a->nlink);
	inode->i_uid = make_kuid(&init_user_ns, a->uid);
	inode->i_gid = make_kgid(&init_user_ns, a->gid);
	inode->i_blocks = a->blocks;
	qtfs_set_times(inode, ts(a->atime_sec, a->atime_nsec), mt, ts(a->ctime_sec, a->ctime_nsec));
	changed = !timespec64_equal(&qi->data_mtime, &mt) || qi->data_size != (loff_t)a->size;
	/* Our own writes moved mtime and size: that is no reason to drop our pages. */
	if (qi->own_write) {
		changed = false;
		qi->own_write = false;
	}
	/* Data not yet on the HOST (dirty or under write-back) keeps the size it needs. */
	if (mapping_tagged(inode->i_mapping, PAGECACHE_TAG_DIRTY) ||
	    mapping_tagged(inode->i_mapping, PAGECACHE_TAG_WRITEBACK))
		i_size_write(inode, max_t(loff_t, a->size, i_size_read(inode)));
	else
		i_size_write(inode, a->size);
	if (changed && qtfs_cached(inode) && inode->i_mapping->nrpages)
		invalidate_inode_pages2(inode->i_mapping);
	qi->data_mtime = mt;
	qi->data_size = a->size;
	qi->attr_expire = jiffies + QTFS_SB(inode->i_sb)->attr_timeout;
}

static int qtfs_inode_test(struct inode *inode, void *data)
{
	const struct qtp_attr *a = data;

	return inode->i_ino == a->ino && (inode->i_mode & S_IFMT) == (a->mode & S_IFMT);
}

static int qtfs_inode_set(struct inode *inode, void *data)
{
	const struct qtp_attr *a = data;

	inode->i_ino = a->ino;
	inode->i_mode = a->mode & S_IFMT;
	return 0;
}

struct inode *qtfs_iget(struct super_block *sb, const struct qtp_attr *a)
{
	struct inode *inode;
	umode_t type = a->mode & S_IFMT;

	if (!type)
		return ERR_PTR(-EIO);
	inode = iget5_locked(sb, (unsigned long)a->ino, qtfs_inode_test, qtfs_inode_set, (void *)a);
	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode->i_state & I_NEW)) {
		qtfs_apply_attr(inode, a);
		return inode;
	}
	inode->i_mode = type | (a->mode & ~S_IFMT);
	switch (type) {
	case S_IFDIR:
		inode->i_op = &qtfs_dir_iops;
		inode->i_fop = &qtfs_dir_fops;
		break;
	case S_IFREG:
		inode->i_op = &qtfs_file_iops;
		inode->i_fop = &qtfs_file_fops;
		inode->i_mapping->a_ops = &qtfs_aops;
		break;
	case S_IFLNK:
		inode->i_op = &qtfs_symlink_iops;
		inode_nohighmem(inode);
		break;
	default:
		inode->i_op = &qtfs_special_iops;
		if (QTFS_SB(sb)->relay && (type == S_IFIFO || type == S_IFCHR)) {
			/* -o relay: the HOST object, through the engine (relay.c) */
			inode->i_fop = &qtfs_relay_fops;
			inode->i_rdev = MKDEV(a->rdev_major, a->rdev_minor);
			break;
		}
		/* FIFOs, sockets and devices act locally, as on any network file system. */
		init_special_inode(inode, inode->i_mode, MKDEV(a->rdev_major, a->rdev_minor));
		break;
	}
	qtfs_apply_attr(inode, a);
	unlock_new_inode(inode);
	return inode;
}

/* ---- super block ---- */

static int qtfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct qtp_statfs_rsp sr;
	struct qtfs_req *r;
	int err = qtfs_path_call(dentry, QTP_OP_STATFS, 128, QTFS_IDEMPOTENT, &r);

	if (!err && qtp_statfs_rsp_decode(r->rsp, r->rsp_len, &sr) != r->rsp_len)
		err = -EIO;
	if (!err) {
		buf->f_type = QTFS_MAGIC;
		buf->f_bsize = sr.statfs.bsize;
		buf->f_frsize = sr.statfs.frsize;
		buf->f_blocks = sr.statfs.blocks;
		buf->f_bfree = sr.statfs.bfree;
		buf->f_bavail = sr.statfs.bavail;
		buf->f_files = sr.statfs.files;
		buf->f_ffree = sr.statfs.ffree;
		buf->f_namelen = sr.statfs.namelen;
		buf->f_fsid = u64_to_fsid(sr.statfs.fsid);
	}
	qtfs_req_put(r);
	return err;
}

static int qtfs_show_options(struct seq_file *m, struct dentry *root)
{
	struct qtfs_sb *s = QTFS_SB(root->d_sb);

	if (s->proc)
		seq_puts(m, ",proc");
	if (s->relay)
		seq_puts(m, ",relay");
	seq_printf(m, ",attr_timeout_ms=%u", jiffies_to_msecs(s->attr_timeout));
	seq_printf(m, ",conns=%d", s->cl->nconns);
	return 0;
}

static void qtfs_evict_inode(struct inode *inode)
{
	qtfs_locks_evict(inode);
	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
}

static const struct super_operations qtfs_sops = {
	.alloc_inode = qtfs_alloc_inode,
	.free_inode = qtfs_free_inode,
	.evict_inode = qtfs_evict_inode,
	.drop_inode = generic_delete_inode, /* the HOST is the cache of record */
	.statfs = qtfs_statfs,
	.show_options = qtfs_show_options,
};

enum { OPT_PROC, OPT_RELAY, OPT_ATTR_TIMEOUT, OPT_ERR };
static const match_table_t qtfs_tokens = {
	{ OPT_PROC, "proc" },
	{ OPT_RELAY, "relay" },
	{ OPT_ATTR_TIMEOUT, "attr_timeout_ms=%u" },
	{ OPT_ERR, NULL },
};

static int parse_options(struct qtfs_sb *s, char *data)
{
	substring_t args[MAX_OPT_ARGS];
	char *o;
	int n;

	while (data && (o = strsep(&data, ",")) != NULL) {
		if (!*o)
			continue;
		switch (match_token(o, qtfs_tokens, args)) {
		case OPT_PROC:
			s->proc = true;
			break;
		case OPT_RELAY:
			s->relay = true;
			break;
		case OPT_ATTR_TIMEOUT:
			if (match_int(&args[0], &n) || n < 0)
				return -EINVAL;
			s->attr_timeout = msecs_to_jiffies(n);
			break;
		default:
			qtfs_err("unknown mount option '%s' (known: proc, relay, attr_timeout_ms=N)", o);
			return -EINVAL;
		}
	}
	return 0;
}

struct mount_args {
	const char *remote;
	char *data;
};

static int qtfs_fill_super(struct super_block *sb, void *data, int silent)
{
	struct mount_args *ma = data;
	struct qtfs_sb *s;
	struct qtp_attr root;
	struct inode *inode;
	int err;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	sb->s_fs_info = s;
	s->valid_after = jiffies - 1; /* nothing cached yet; stamps are after it */
	s->attr_timeout = msecs_to_jiffies(READ_ONCE(qtfs_attr_timeout_ms)); /* 0..1 h, checked when set */
	err = parse_options(s, ma->data);
	if (err)
		return err;
	if (ma->remote[0] != '/') {
		qtfs_err("mount source must be an absolute HOST path, not '%s'", ma->remote);
		return -EINVAL;
	}
	s->cl = qtfs_client_start(ma->remote, sb_rdonly(sb), &root, &err);
	if (!s->cl)
		return err;
	sb->s_magic = QTFS_MAGIC;
	sb->s_op = &qtfs_sops;
	sb->s_d_op = &qtfs_dentry_ops;
	sb->s_xattr = qtfs_xattr_handlers;
	sb->s_maxbytes = MAX_LFS_FILESIZE;
	sb->s_blocksize = PAGE_SIZE;
	sb->s_blocksize_bits = PAGE_SHIFT;
	sb->s_time_gran = 1;
	err = super_setup_bdi(sb);
	if (err)
		return err;
	/* Read ahead in large requests: a round trip costs more than the bytes. */
	sb->s_bdi->ra_pages = (1024 * 1024) / PAGE_SIZE;
	sb->s_bdi->io_pages = (1024 * 1024) / PAGE_SIZE;
	inode = qtfs_iget(sb, &root);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	if (!S_ISDIR(inode->i_mode)) {
		iput(inode);
		return -ENOTDIR;
	}
	sb->s_root = d_make_root(inode);
	if (!sb->s_root)
		return -ENOMEM;
	qtfs_inval_attach(s->cl, sb); /* INVALs act on the dcache from now on */
	return 0;
}

static struct dentry *qtfs_mount(struct file_system_type *t, int flags, const char *dev, void *data)
{
	struct mount_args ma = { .remote = dev, .data = data };

	if (!dev || !*dev)
		return ERR_PTR(-EINVAL);
	return mount_nodev(t, flags, &ma, qtfs_fill_super);
}

static void qtfs_kill_sb(struct super_block *sb)
{
	struct qtfs_sb *s = QTFS_SB(sb);

	/* INVAL work walks the dcache: stopped before the dentries go */
	if (s && s->cl)
		qtfs_inval_detach(s->cl);
	kill_anon_super(sb);
	if (s) {
		if (s->cl)
			qtfs_client_stop(s->cl);
		kfree(s);
	}
}

static struct file_system_type qtfs_fs_type = {
	.owner = THIS_MODULE,
	.name = "qtfs",
	.mount = qtfs_mount,
	.kill_sb = qtfs_kill_sb,
};

int qtfs_fs_init(void)
{
	int err;

	qtfs_inode_cache = kmem_cache_create("qtfs_inode", sizeof(struct qtfs_inode), 0,
					     SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT, qtfs_inode_once);
	if (!qtfs_inode_cache)
		return -ENOMEM;
	err = register_filesystem(&qtfs_fs_type);
	if (err)
		kmem_cache_destroy(qtfs_inode_cache);
	return err;
}

void qtfs_fs_exit(void)
{
	unregister_filesystem(&qtfs_fs_type);
	rcu_barrier();
	kmem_cache_destroy(qtfs_inode_cache);
}
