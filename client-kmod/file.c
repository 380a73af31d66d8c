// SPDX-License-Identifier: GPL-2.0
/*
 * file.c - open files and their data.
 *
 * Reads go through the page cache (read_folio, readahead in requests of up to 1 MiB)
 * unless the file is O_DIRECT or the mount is `-o proc` (sizes unknown): then every
 * read is a request. Writes are write-through: each write(2) is sent to the HOST at
 * once and the cached pages of its range are dropped, so a successful write is on the
 * HOST when it returns and nothing is lost if the DPU crashes; fsync adds the HOST's
 * fsync. Shared writable mappings are refused (they would need write-back).
 *
 * Handles belong to the session; when the engine lost the session (it restarted),
 * a file is reopened by path with its original flags on first use.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/uio.h>
#include <linux/highmem.h>
#include <linux/falloc.h>
#include <linux/splice.h>

#include "qtfs.h"


void qtfs_close_handle(struct qtfs_client *cl, u64 handle)
{
	struct qtp_handle_req h = { .handle = handle };
	struct qtfs_req *r;

	if (QTFS_CALL(cl, QTP_OP_CLOSE, handle_req, &h, 0, 0, &r))
		qtfs_debug("close of handle %llx failed", handle);
	qtfs_req_put(r);
}

int qtfs_file_attach(struct file *file, u64 handle, unsigned int oflags)
{
	struct qtfs_client *cl = qtfs_cl(file_inode(file));
	struct qtfs_file *qf = kzalloc(sizeof(*qf), GFP_KERNEL);

	if (!qf) {
		qtfs_close_handle(cl, handle);
		return -ENOMEM;
	}
	mutex_init(&qf->lock);
	qf->handle = handle;
	qf->generation = READ_ONCE(cl->generation);
	qf->flags = qtfs_wire_open_flags(oflags & ~(O_CREAT | O_EXCL | O_TRUNC));
	file->private_data = qf;
	return 0;
}

static int open_req(struct dentry *d, u32 wflags, struct qtp_open_rsp *o)
{
	struct qtfs_client *cl = QTFS_SB(d->d_sb)->cl;
	struct qtp_open_req op;
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	int err;

	err = qtfs_path_get(d, &qp);
	if (err)
		return err;
	qtfs_cred_fill(cl, &c);
	op = (struct qtp_open_req){ .ctx = c.ctx, .flags = wflags, .mode = 0, .groups = c.groups,
				    .groups_count = c.ngroups, .path = qp.p, .path_len = qp.len };
	err = QTFS_CALL(cl, QTP_OP_OPEN, open_req, &op, 256, 0, &r);
	qtfs_path_put(&qp);
	if (!err && qtp_open_rsp_decode(r->rsp, r->rsp_len, o) != r->rsp_len)
		err = -EIO;
	qtfs_req_put(r);
	return err;
}

/* The file's handle, reopened first if the session it belonged to is gone. */
static int file_handle(struct file *file, u64 *h)
{
	struct qtfs_client *cl = qtfs_cl(file_inode(file));
	struct qtfs_file *qf = file->private_data;
	struct qtp_open_rsp o;
	u32 gen;
	int err = 0;

	if (!qf)
		return -EBADF;
	if (likely(READ_ONCE(qf->generation) == READ_ONCE(cl->generation))) {
		*h = qf->handle;
		return 0;
	}
	mutex_lock(&qf->lock);
	gen = READ_ONCE(cl->generation);
	if (qf->generation != gen) {
		err = open_req(file->f_path.dentry, qf->flags, &o);
		if (!err) {
			qf->handle = o.handle;
			qf->generation = gen;
			qtfs_info("reopened %pd after the session was lost", file->f_path.dentry);
		}
	}
	*h = qf->handle;
	mutex_unlock(&qf->lock);
	return err;
}

static int qtfs_open(struct inode *inode, struct file *file)
{
	struct qtp_open_rsp o;
	int err;

	err = generic_file_open(inode, file);
	if (err)
		return err;
	/* O_TRUNC arrives as a setattr after the open; O_DIRECT is ours to honour. */
	err = open_req(file->f_path.dentry, qtfs_wire_open_flags(file->f_flags & ~(O_CREAT | O_EXCL | O_TRUNC)), &o);
	if (err)
		return err;
	/* Close-to-open: the attributes of the open tell whether cached pages are stale. */
	if (o.attr.ino == inode->i_ino && (o.attr.mode & S_IFMT) == (inode->i_mode & S_IFMT))
		qtfs_apply_attr(inode, &o.attr);
	return qtfs_file_attach(file, o.handle, file->f_flags);
}

static int qtfs_release(struct inode *inode, struct file *file)
{
	struct qtfs_file *qf = file->private_data;

	if (!qf)
		return 0;
	if (qf->generation == READ_ONCE(qtfs_cl(inode)->generation))
		qtfs_close_handle(qtfs_cl(inode), qf->handle);
	kfree(qf);
	return 0;
}

static bool cached(struct inode *inode)
{
	return !QTFS_SB(inode->i_sb)->proc;
}

/* One READ of len bytes at pos into r (response in r->rsp). */
static int read_req(struct file *file, loff_t pos, u32 len, struct qtfs_req **rp)
{
	struct qtp_read_req rr = { .offset = pos, .len = len };
	int err;

	*rp = NULL;
	err = file_handle(file, &rr.handle);
	if (err)
		return err;
	err = QTFS_CALL(qtfs_cl(file_inode(file)), QTP_OP_READ, read_req, &rr, len, QTFS_IDEMPOTENT, rp);
	if (!err && (*rp)->rsp_len > len)
		err = -EIO;
	return err;
}

static ssize_t read_direct(struct kiocb *iocb, struct iov_iter *to)
{
	loff_t pos = iocb->ki_pos;
	ssize_t total = 0;
	int err = 0;

	while (iov_iter_count(to)) {
		u32 n = min_t(size_t, iov_iter_count(to), QTFS_IO_MAX);
		struct qtfs_req *r;
		u32 got;

		err = read_req(iocb->ki_filp, pos, n, &r);
		if (err) {
			qtfs_req_put(r);
			break;
		}
		got = r->rsp_len;
		if (copy_to_iter(r->rsp, got, to) != got)
			err = -EFAULT;
		qtfs_req_put(r);
		if (err)
			break;
		pos += got;
		total += got;
		if (got < n)
			break; /* end of file */
	}
	iocb->ki_pos = pos;
	return total ? total : err;
}

static ssize_t qtfs_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	int err;

	if ((iocb->ki_flags & IOCB_DIRECT) || !cached(inode))
		return read_direct(iocb, to);
	/* Sizes and staleness come from the attributes: refresh them when they expired. */
	err = qtfs_revalidate_inode(iocb->ki_filp->f_path.dentry, false);
	if (err)
		return err;
	return generic_file_read_iter(iocb, to);
}

static ssize_t qtfs_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct file *file = iocb->ki_filp;
	struct inode *inode = file_inode(file);
	struct qtfs_client *cl = qtfs_cl(inode);
	loff_t start, pos;
	ssize_t total = 0, ret;
	int err = 0;

	inode_lock(inode);
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out;
	start = pos = iocb->ki_pos;
	while (iov_iter_count(from)) {
		u32 n = min_t(size_t, iov_iter_count(from), QTFS_IO_MAX);
		struct qtp_write_req w = { .offset = pos, .flags = 0, .data_len = n };
		struct qtp_write_rsp wr;
		struct qtfs_req *r;

		err = file_handle(file, &w.handle);
		if (err)
			break;
		r = qtfs_req_new(QTP_OP_WRITE, QTP_WRITE_REQ_FIXED + n, 16);
		if (!r) {
			err = -ENOMEM;
			break;
		}
		w.data_len = 0; /* the fixed part only; the data is copied straight from the caller */
		qtp_write_req_encode(&w, qtfs_req_payload(r), QTP_WRITE_REQ_FIXED);
		if (copy_from_iter(qtfs_req_payload(r) + QTP_WRITE_REQ_FIXED, n, from) != n) {
			qtfs_req_put(r);
			err = -EFAULT;
			break;
		}
		err = qtfs_req_run(cl, r, 0);
		if (!err && (qtp_write_rsp_decode(r->rsp, r->rsp_len, &wr) != r->rsp_len || wr.written > n))
			err = -EIO;
		qtfs_req_put(r);
		if (err) {
			iov_iter_revert(from, n);
			break;
		}
		if (wr.written < n)
			iov_iter_revert(from, n - wr.written);
		pos += wr.written;
		total += wr.written;
		if (wr.written < n)
			break;
	}
	if (total) {
		if (iocb->ki_flags & IOCB_APPEND) {
			/* The HOST appended; its size says where. */
			QTFS_I(inode)->attr_expire = jiffies - 1;
			if (!qtfs_revalidate_inode(file->f_path.dentry, true))
				pos = i_size_read(inode);
			start = max_t(loff_t, pos - total, 0);
		} else if (pos > i_size_read(inode)) {
			i_size_write(inode, pos);
		}
		if (inode->i_mapping->nrpages)
			invalidate_inode_pages2_range(inode->i_mapping, start >> PAGE_SHIFT, (pos - 1) >> PAGE_SHIFT);
		QTFS_I(inode)->data_size = i_size_read(inode);
		QTFS_I(inode)->attr_expire = jiffies - 1; /* mtime moved */
		iocb->ki_pos = pos;
	}
	ret = total ? total : err;
out:
	inode_unlock(inode);
	if (ret > 0)
		ret = generic_write_sync(iocb, ret);
	return ret;
}

static int qtfs_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	struct qtp_fsync_req f = { .flags = datasync ? QTP_FSYNC_DATASYNC : 0 };
	struct qtfs_req *r;
	int err;

	err = file_write_and_wait_range(file, start, end);
	if (!err)
		err = file_handle(file, &f.handle);
	if (err)
		return err;
	err = QTFS_CALL(qtfs_cl(file_inode(file)), QTP_OP_FSYNC, fsync_req, &f, 0, 0, &r);
	qtfs_req_put(r);
	return err;
}

static loff_t qtfs_llseek(struct file *file, loff_t offset, int whence)
{
	struct inode *inode = file_inode(file);
	struct qtp_llseek_req l = { .offset = offset, .whence = whence };
	struct qtp_llseek_rsp lr;
	struct qtfs_req *r;
	int err;

	switch (whence) {
	case SEEK_DATA:
	case SEEK_HOLE:
		err = file_handle(file, &l.handle);
		if (err)
			return err;
		err = QTFS_CALL(qtfs_cl(inode), QTP_OP_LLSEEK, llseek_req, &l, 16, QTFS_IDEMPOTENT, &r);
		if (!err && qtp_llseek_rsp_decode(r->rsp, r->rsp_len, &lr) != r->rsp_len)
			err = -EIO;
		qtfs_req_put(r);
		if (err)
			return err;
		return vfs_setpos(file, lr.offset, inode->i_sb->s_maxbytes);
	case SEEK_END:
		err = qtfs_revalidate_inode(file->f_path.dentry, true);
		if (err)
			return err;
		fallthrough;
	default:
		return generic_file_llseek(file, offset, whence);
	}
}

static long qtfs_fallocate(struct file *file, int mode, loff_t offset, loff_t len)
{
	struct inode *inode = file_inode(file);
	struct qtp_fallocate_req f = { .mode = mode, .offset = offset, .len = len };
	struct qtfs_req *r;
	int err;

	err = file_handle(file, &f.handle);
	if (err)
		return err;
	inode_lock(inode);
	err = QTFS_CALL(qtfs_cl(inode), QTP_OP_FALLOCATE, fallocate_req, &f, 0, 0, &r);
	qtfs_req_put(r);
	if (!err) {
		if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + len > i_size_read(inode))
			i_size_write(inode, offset + len);
		if (inode->i_mapping->nrpages)
			invalidate_inode_pages2_range(inode->i_mapping, offset >> PAGE_SHIFT,
						      (offset + len - 1) >> PAGE_SHIFT);
		QTFS_I(inode)->data_size = i_size_read(inode);
		QTFS_I(inode)->attr_expire = jiffies - 1;
	}
	inode_unlock(inode);
	return err;
}

static int qtfs_mmap(struct file *file, struct vm_area_struct *vma)
{
	if ((vma->vm_flags & (VM_SHARED | VM_MAYWRITE)) == (VM_SHARED | VM_MAYWRITE))
		return -EOPNOTSUPP; /* no write-back of dirty mapped pages */
	if (!cached(file_inode(file)))
		return -ENODEV;
	return generic_file_mmap(file, vma);
}

const struct file_operations qtfs_file_fops = {
	.owner = THIS_MODULE,
	.open = qtfs_open,
	.release = qtfs_release,
	.llseek = qtfs_llseek,
	.read_iter = qtfs_read_iter,
	.write_iter = qtfs_write_iter,
	.mmap = qtfs_mmap,
	.fsync = qtfs_fsync,
	.fallocate = qtfs_fallocate,
	.splice_read = QTFS_SPLICE_READ,
	.splice_write = iter_file_splice_write,
};

/* ---- page cache ---- */

static void fill_folio(struct folio *folio, const u8 *src, size_t len)
{
	size_t off, fsz = folio_size(folio);

	for (off = 0; off < fsz; off += PAGE_SIZE) {
		u8 *dst = kmap_local_folio(folio, off);
		size_t n = off < len ? min_t(size_t, len - off, PAGE_SIZE) : 0;

		if (n)
			memcpy(dst, src + off, n);
		if (n < PAGE_SIZE)
			memset(dst + n, 0, PAGE_SIZE - n);
		kunmap_local(dst);
	}
}

static int qtfs_read_folio(struct file *file, struct folio *folio)
{
	struct qtfs_req *r;
	int err;

	if (!file) {
		folio_unlock(folio);
		return -EIO;
	}
	err = read_req(file, folio_pos(folio), folio_size(folio), &r);
	if (!err) {
		fill_folio(folio, r->rsp, r->rsp_len);
		folio_mark_uptodate(folio);
	}
	qtfs_req_put(r);
	folio_unlock(folio);
	return err;
}

static void qtfs_readahead(struct readahead_control *ractl)
{
	struct qtfs_req *r = NULL;
	loff_t bpos = 0, bend = 0; /* the bytes r holds: [bpos, bend) */
	loff_t end = readahead_pos(ractl) + readahead_length(ractl);
	struct folio *folio;
	bool failed = !ractl->file;

	while ((folio = readahead_folio(ractl)) != NULL) {
		loff_t fpos = folio_pos(folio);

		if (!failed && (fpos < bpos || fpos >= bpos + QTFS_IO_MAX || (!r))) {
			u32 n = min_t(loff_t, end - fpos, QTFS_IO_MAX);

			qtfs_req_put(r);
			r = NULL;
			if (read_req(ractl->file, fpos, n, &r))
				failed = true;
			bpos = fpos;
			bend = r ? fpos + r->rsp_len : fpos;
		}
		if (!failed) {
			size_t have = fpos < bend ? bend - fpos : 0;

			fill_folio(folio, r->rsp + (fpos - bpos), min_t(size_t, have, folio_size(folio)));
			folio_mark_uptodate(folio);
		}
		folio_unlock(folio);
	}
	qtfs_req_put(r);
}

const struct address_space_operations qtfs_aops = {
	.read_folio = qtfs_read_folio,
	.readahead = qtfs_readahead,
};
