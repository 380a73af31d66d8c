// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * inval.c - prompt coherence: the engine's INVAL messages (feat::INVAL, asked for in
 * every handshake) drop what this mount cached of a path that changed on the HOST or
 * through another client, within milliseconds instead of the attribute timeout.
 *
 * The receiver threads only queue a message (qtfs_inval_queue: a copy of the path, at
 * most QUEUE_MAX waiting, beyond that one "drop everything"); a work item takes the
 * queue and, for each path, walks the dcache from the mount's root (d_hash_and_lookup:
 * cached names only, never a request; a path not cached has nothing to drop) and:
 *   ATTR   expires the inode's attributes (the next stat or read asks the HOST);
 *   DATA   also drops the inode's clean cached pages (invalidate_inode_pages2, which
 *          unmaps them from live mmaps, so those fault the new data in); dirty pages,
 *          ours and not yet written, stay;
 *   ENTRY  expires the dentry (d_revalidate looks it up again; a negative one finds a
 *          new file) and its directory's attributes, and the attributes of the object
 *          the name led to (its link count);
 *   ALL    (also queued when a connection dropped: INVALs in flight on it are lost)
 *          moves the super block's valid_after, so every name and attribute cached
 *          until now is stale, and drops the clean pages of every mmapped inode.
 * Our own changes come back as INVALs too; they cost a re-read, never correctness.
 * The attribute timeout stays the fallback (an engine without INVAL, a HOST file
 * system it cannot watch).
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/pagemap.h>
#include <linux/dcache.h>

#include "qtfs.h"

#define QUEUE_MAX 1024

struct inval_item {
	struct list_head node;
	u32 flags;
	u32 len;
	char path[];
};

static void inval_work(struct work_struct *w);

void qtfs_inval_init(struct qtfs_client *cl)
{
	spin_lock_init(&cl->inval_lock);
	INIT_LIST_HEAD(&cl->inval_q);
	INIT_WORK(&cl->inval_work, inval_work);
}

/* Called by the receiver threads (and when a connection drops): never sleeps long. */
void qtfs_inval_queue(struct qtfs_client *cl, u32 flags, const u8 *path, u32 len)
{
	struct inval_item *it = NULL;

	if (!(flags & QTP_INVAL_ALL) && len) {
		it = kmalloc(sizeof(*it) + len + 1, GFP_NOFS);
		if (it) {
			it->flags = flags;
			it->len = len;
			memcpy(it->path, path, len);
			it->path[len] = 0;
		}
	}
	spin_lock(&cl->inval_lock);
	if (!cl->inval_sb) {
		spin_unlock(&cl->inval_lock);
		kfree(it);
		return;
	}
	if ((flags & QTP_INVAL_ALL) || !it || cl->inval_n >= QUEUE_MAX) {
		cl->inval_all = true; /* also when the path could not be kept: drop everything */
		kfree(it);
	} else {
		list_add_tail(&it->node, &cl->inval_q);
		cl->inval_n++;
	}
	queue_work(system_unbound_wq, &cl->inval_work);
	spin_unlock(&cl->inval_lock);
}

/* The super block is ready: INVALs are acted on from now on. */
void qtfs_inval_attach(struct qtfs_client *cl, struct super_block *sb)
{
	spin_lock(&cl->inval_lock);
	cl->inval_sb = sb;
	spin_unlock(&cl->inval_lock);
}

/* Before the super block goes: no more work on it; what is queued is dropped. */
void qtfs_inval_detach(struct qtfs_client *cl)
{
	struct inval_item *it, *n;
	LIST_HEAD(q);

	spin_lock(&cl->inval_lock);
	cl->inval_sb = NULL;
	list_splice_init(&cl->inval_q, &q);
	cl->inval_n = 0;
	cl->inval_all = false;
	spin_unlock(&cl->inval_lock);
	cancel_work_sync(&cl->inval_work);
	list_for_each_entry_safe(it, n, &q, node)
		kfree(it);
	/* the work item may have been running with its own list: it frees that */
}

static void expire_inode(struct inode *inode)
{
	QTFS_I(inode)->attr_expire = jiffies - 1;
}

/* The dentry at path under the root, from the dcache only (NULL: not cached). */
static struct dentry *cached_dentry(struct super_block *sb, const char *path)
{
	struct dentry *d = dget(sb->s_root);
	const char *p = path;

	while (d && *p) {
		const char *e = strchrnul(p, '/');
		struct qstr q = QSTR_INIT(p, e - p);
		struct dentry *next = NULL;

		if (q.len && !(q.len == 1 && p[0] == '.')) {
			if (d_really_is_negative(d) || (q.len == 2 && p[0] == '.' && p[1] == '.'))
				next = NULL;
			else
				next = d_hash_and_lookup(d, &q);
			dput(d);
			d = IS_ERR(next) ? NULL : next;
		}
		p = *e ? e + 1 : e;
	}
	return d;
}

static void inval_path(struct super_block *sb, u32 flags, char *path)
{
	struct dentry *d;
	struct inode *inode;

	if (flags & QTP_INVAL_ENTRY) {
		/* the directory's attributes (mtime, link count), also when the name is not cached */
		char *slash = strrchr(path, '/');
		struct dentry *dir;

		if (slash)
			*slash = 0;
		dir = cached_dentry(sb, slash ? path : "");
		if (slash)
			*slash = '/';
		if (dir && d_inode(dir))
			expire_inode(d_inode(dir));
		dput(dir);
	}
	d = cached_dentry(sb, path);
	if (!d)
		return;
	inode = d_inode(d);
	if (flags & QTP_INVAL_ENTRY)
		d->d_time = qtfs_stale_stamp(sb); /* looked up again (a negative one too) */
	if (inode && (flags & (QTP_INVAL_ATTR | QTP_INVAL_DATA | QTP_INVAL_ENTRY)))
		expire_inode(inode);
	if (inode && (flags & QTP_INVAL_DATA) && S_ISREG(inode->i_mode) && inode->i_mapping->nrpages)
		invalidate_inode_pages2(inode->i_mapping); /* -EBUSY for dirty pages: they stay */
	qtfs_debug("inval %#x %s%s", flags, path, inode ? "" : " (negative)");
	dput(d);
}

static void inval_all(struct super_block *sb)
{
	struct inode *inode, *prev = NULL;

	WRITE_ONCE(QTFS_SB(sb)->valid_after, jiffies);
	/* mmaps never ask for attributes: drop their clean pages now */
	spin_lock(&sb->s_inode_list_lock);
	list_for_each_entry(inode, &sb->s_inodes, i_sb_list) {
		if (!S_ISREG(inode->i_mode) || !mapping_mapped(inode->i_mapping))
			continue;
		if (!igrab(inode))
			continue;
		spin_unlock(&sb->s_inode_list_lock);
		invalidate_inode_pages2(inode->i_mapping);
		iput(prev);
		prev = inode;
		cond_resched();
		spin_lock(&sb->s_inode_list_lock);
	}
	spin_unlock(&sb->s_inode_list_lock);
	iput(prev);
	qtfs_debug("inval: everything of the mount");
}

static void inval_work(struct work_struct *w)
{
	struct qtfs_client *cl = container_of(w, struct qtfs_client, inval_work);
	struct inval_item *it, *n;
	struct super_block *sb;
	bool all;
	LIST_HEAD(q);

	spin_lock(&cl->inval_lock);
	sb = cl->inval_sb;
	list_splice_init(&cl->inval_q, &q);
	cl->inval_n = 0;
	all = cl->inval_all;
	cl->inval_all = false;
	spin_unlock(&cl->inval_lock);
	/* detach() waits for this work before the super block goes away */
	if (sb && all)
		inval_all(sb);
	list_for_each_entry_safe(it, n, &q, node) {
		if (sb && !all)
			inval_path(sb, it->flags, it->path);
		kfree(it);
	}
}
