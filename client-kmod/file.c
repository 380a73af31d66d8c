// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * file.c - open files and their data.
 *
 * Data goes through the page cache: reads fill it (read_folio, and readahead in
 * requests of up to 1 MiB); writes copy into it (write_begin/write_end) and are then
 * written back at once (writepages batches contiguous pages into requests of up to
 * 1 MiB), so a write(2) that succeeded is on the HOST when it returns, and the pages
 * stay cached for later reads. Shared writable mappings are written back by the usual
 * write-back, msync, fsync and close. O_DIRECT files and `-o proc` mounts (sizes
 * unknown) bypass the cache: every read and write is a request.
 *
 * Handles belong to the session; when the engine lost the session (it restarted),
 * a file is reopened by path with its original flags on first use. Write-back uses
 * any writable handle of the inode (kept on qtfs_inode.wfiles, counted so a handle
 * outlives its struct file while write-back still uses it).
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/writeback.h>
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

static void qf_release(struct kref *ref)
{
	struct qtfs_file *qf = container_of(ref, struct qtfs_file, ref);

	if (qf->generation == READ_ONCE(qf->cl->generation))
		qtfs_close_handle(qf->cl, qf->handle);
	dput(qf->dentry);
	kfree(qf);
}

static void qf_put(struct qtfs_file *qf)
{
	kref_put(&qf->ref, qf_release);
}

/* The flags a handle of this file is (re)opened with: creation and O_TRUNC are done. */
static u32 handle_flags(struct file *file)
{
	return qtfs_wire_open_flags(file->f_flags & ~(O_CREAT | O_EXCL | O_TRUNC));
}

int qtfs_file_attach(struct file *file, u64 handle)
{
	struct inode *inode = file_inode(file);
	struct qtfs_inode *qi = QTFS_I(inode);
	struct qtfs_file *qf = kzalloc(sizeof(*qf), GFP_KERNEL);

	if (!qf) {
		qtfs_close_handle(qtfs_cl(inode), handle);
		return -ENOMEM;
	}
	kref_init(&qf->ref);
	mutex_init(&qf->lock);
	INIT_LIST_HEAD(&qf->wnode);
	INIT_LIST_HEAD(&qf->onode);
	qf->cl = qtfs_cl(inode);
	qf->dentry = dget(file->f_path.dentry);
	qf->handle = handle;
	qf->generation = READ_ONCE(qf->cl->generation);
	qf->flags = handle_flags(file);
	qf->writable = file->f_mode & FMODE_WRITE;
	spin_lock(&qi->wlock);
	list_add_tail(&qf->onode, &qi->ofiles); /* under the struct file's reference */
	if (qf->writable) {
		kref_get(&qf->ref); /* the list's reference */
		list_add_tail(&qf->wnode, &qi->wfiles);
	}
	spin_unlock(&qi->wlock);
	file->private_data = qf;
	return 0;
}

int qtfs_open_req(struct dentry *d, u32 wflags, struct qtp_open_rsp *o)
{
	struct qtfs_client *cl = QTFS_SB(d->d_sb)->cl;
	struct qtp_open_req op;
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	int err;

	err = qtfs_path_cred_get(d, cl, &qp, &c);
	if (err)
		return err;
	op = (struct qtp_open_req){ QTFS_PATH_CRED(c, qp), .flags = wflags, .mode = 0 };
	err = QTFS_CALL(cl, QTP_OP_OPEN, open_req, &op, 256, 0, &r);
	qtfs_path_put(&qp);
	return qtfs_open_done(err, r, o);
}

/* The HOST handle, reopened first if the session it belonged to is gone. */
static int qf_handle(struct qtfs_file *qf, u64 *h)
{
	struct qtp_open_rsp o;
	u32 gen;
	int err = 0;

	if (!qf)
		return -EBADF;
	if (likely(READ_ONCE(qf->generation) == READ_ONCE(qf->cl->generation))) {
		*h = qf->handle;
		return 0;
	}
	mutex_lock(&qf->lock);
	gen = READ_ONCE(qf->cl->generation);
	if (qf->generation != gen) {
		err = qtfs_open_req(qf->dentry, qf->flags, &o);
		if (!err) {
			qf->handle = o.handle;
			qf->generation = gen;
			qtfs_info("reopened %pd after the session was lost", qf->dentry);
		}
	}
	*h = qf->handle;
	mutex_unlock(&qf->lock);
	return err;
}

int qtfs_file_handle(struct file *file, u64 *h)
{
	return qf_handle(file->private_data, h);
}

static int file_handle(struct file *file, u64 *h)
{
	return qtfs_file_handle(file, h);
}

static int qtfs_open(struct inode *inode, struct file *file)
{
	struct qtp_open_rsp o;
	u32 wf;
	int err;

	err = generic_file_open(inode, file);
	if (err)
		return err;
	/* O_TRUNC arrives as a setattr after the open; O_DIRECT is ours to honour. */
	wf = handle_flags(file);
	if ((wf & QTP_O_ACCMODE) == QTP_O_WRONLY && qtfs_cached(inode)) {
		/*
		 * A write-only file gets a readable handle when the caller may read: a write
		 * of part of a page that is not cached (dropped by an INVAL or reclaim) reads
		 * the rest of the page first. read(2) of the file is still refused by the VFS.
		 */
		err = qtfs_open_req(file->f_path.dentry, (wf & ~QTP_O_ACCMODE) | QTP_O_RDWR, &o);
		if (!err)
			wf = (wf & ~QTP_O_ACCMODE) | QTP_O_RDWR;
		else if (err == -EACCES || err == -EPERM)
			err = qtfs_open_req(file->f_path.dentry, wf, &o);
	} else {
		err = qtfs_open_req(file->f_path.dentry, wf, &o);
	}
	if (err)
		return err;
	/* Close-to-open: the attributes of the open tell whether cached pages are stale. */
	if (o.attr.ino == inode->i_ino && (o.attr.mode & S_IFMT) == (inode->i_mode & S_IFMT))
		qtfs_apply_attr(inode, &o.attr);
	QTFS_ALLOW_ODIRECT(file);
	err = qtfs_file_attach(file, o.handle);
	if (!err)
		((struct qtfs_file *)file->private_data)->flags = wf; /* for a reopen */
	return err;
}

/*
 * close(2): what this file wrote is on the HOST, or close reports why not; then the
 * closing process's POSIX locks on the file are released (after the data is there).
 */
static int qtfs_flush(struct file *file, fl_owner_t id)
{
	int err = 0;

	if (file->f_mode & FMODE_WRITE)
		err = filemap_write_and_wait(file->f_mapping);
	qtfs_locks_flush(file, id);
	return err;
}

int qtfs_release(struct inode *inode, struct file *file)
{
	struct qtfs_file *qf = file->private_data;
	struct qtfs_inode *qi = QTFS_I(inode);

	if (!qf)
		return 0;
	qtfs_locks_release(file); /* its flock and OFD locks */
	spin_lock(&qi->wlock);
	list_del_init(&qf->onode);
	spin_unlock(&qi->wlock);
	if (qf->writable) {
		filemap_write_and_wait(inode->i_mapping);
		spin_lock(&qi->wlock);
		list_del_init(&qf->wnode);
		spin_unlock(&qi->wlock);
		qf_put(qf);
	}
	qf_put(qf);
	return 0;
}

/* The first handle open on qi (writer: the first writable one), referenced; NULL if none. */
static struct qtfs_file *qf_first(struct qtfs_inode *qi, bool writer)
{
	struct qtfs_file *qf;

	spin_lock(&qi->wlock);
	qf = writer ? list_first_entry_or_null(&qi->wfiles, struct qtfs_file, wnode) :
		      list_first_entry_or_null(&qi->ofiles, struct qtfs_file, onode);
	if (qf)
		kref_get(&qf->ref);
	spin_unlock(&qi->wlock);
	return qf;
}

/*
 * Attributes of an inode through any handle open on it: what fstat(2) must answer
 * once the name was unlinked or renamed away on the HOST (getattr has no struct file).
 * -ENOENT when nothing is open.
 */
int qtfs_open_file_attr(struct inode *inode, struct qtp_attr *a)
{
	struct qtfs_file *qf = qf_first(QTFS_I(inode), false);
	struct qtp_handle_req h = {};
	struct qtfs_req *r;
	int err;

	if (!qf)
		return -ENOENT;
	err = qf_handle(qf, &h.handle);
	if (!err) {
		err = QTFS_CALL(qf->cl, QTP_OP_FGETATTR, handle_req, &h, QTP_ATTR_SIZE, QTFS_IDEMPOTENT, &r);
		err = qtfs_attr_done(err, r, a);
	}
	qf_put(qf);
	return err;
}

/* One READ of len bytes at pos into *rp (response in (*rp)->rsp; put it always). */
static int read_req(struct qtfs_file *qf, loff_t pos, u32 len, struct qtfs_req **rp)
{
	struct qtp_read_req rr = { .offset = pos, .len = len };
	int err;

	*rp = NULL;
	err = qf_handle(qf, &rr.handle);
	if (err)
		return err;
	err = QTFS_CALL(qf->cl, QTP_OP_READ, read_req, &rr, len, QTFS_IDEMPOTENT, rp);
	if (!err && (*rp)->rsp_len > len)
		err = -EIO;
	return err;
}

/* One WRITE of the n bytes that fill() puts into the request; returns bytes written. */
static ssize_t write_req(struct qtfs_file *qf, loff_t pos, u32 n,
			 int (*fill)(void *dst, u32 n, void *arg), void *arg)
{
	struct qtp_write_req w = { .offset = pos, .flags = 0, .data_len = 0 };
	struct qtp_write_rsp wr;
	struct qtfs_req *r;
	int err;

	err = qf_handle(qf, &w.handle);
	if (err)
		return err;
	r = qtfs_req_new(QTP_OP_WRITE, QTP_WRITE_REQ_FIXED + n, 16);
	if (!r)
		return -ENOMEM;
	/* The fixed part only; the data goes straight behind it. */
	qtp_write_req_encode(&w, qtfs_req_payload(r), QTP_WRITE_REQ_FIXED);
	err = fill(qtfs_req_payload(r) + QTP_WRITE_REQ_FIXED, n, arg);
	if (!err)
		err = qtfs_req_run(qf->cl, r, 0);
	if (!err && (qtp_write_rsp_decode(r->rsp, r->rsp_len, &wr) != r->rsp_len || wr.written > n))
		err = -EIO;
	qtfs_req_put(r);
	return err ? err : wr.written;
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

		err = read_req(iocb->ki_filp->private_data, pos, n, &r);
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

	if ((iocb->ki_flags & IOCB_DIRECT) || !qtfs_cached(inode))
		return read_direct(iocb, to);
	/* Sizes and staleness come from the attributes: refresh them when they expired. */
	err = qtfs_revalidate_inode(iocb->ki_filp->f_path.dentry, false);
	if (err)
		return err;
	return generic_file_read_iter(iocb, to);
}

static int fill_from_iter(void *dst, u32 n, void *arg)
{
	return copy_from_iter(dst, n, arg) == n ? 0 : -EFAULT;
}

/* O_DIRECT and -o proc: each write(2) is sent as it is, the cache stays out of it. */
static ssize_t write_direct(struct kiocb *iocb, struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	loff_t start = iocb->ki_pos, pos = start;
	ssize_t total = 0, n;
	int err;

	err = filemap_write_and_wait_range(inode->i_mapping, start, start + iov_iter_count(from) - 1);
	if (err)
		return err;
	while (iov_iter_count(from)) {
		u32 want = min_t(size_t, iov_iter_count(from), QTFS_IO_MAX);

		n = write_req(iocb->ki_filp->private_data, pos, want, fill_from_iter, from);
		if (n < 0) {
			iov_iter_revert(from, want);
			err = n;
			break;
		}
		if (n < want)
			iov_iter_revert(from, want - n);
		pos += n;
		total += n;
		if (n < want)
			break;
	}
	if (total) {
		if (pos > i_size_read(inode))
			i_size_write(inode, pos);
		if (inode->i_mapping->nrpages)
			invalidate_inode_pages2_range(inode->i_mapping, start >> PAGE_SHIFT, (pos - 1) >> PAGE_SHIFT);
		qtfs_data_changed(inode);
		iocb->ki_pos = pos;
	}
	return total ? total : err;
}

static ssize_t qtfs_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct file *file = iocb->ki_filp;
	struct inode *inode = file_inode(file);
	loff_t start;
	ssize_t ret;
	int err;

	inode_lock(inode);
	if (iocb->ki_flags & IOCB_APPEND) {
		/* Append where the HOST's file ends now. */
		ret = qtfs_revalidate_inode(file->f_path.dentry, true);
		if (ret)
			goto out;
	}
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out;
	if ((iocb->ki_flags & IOCB_DIRECT) || !qtfs_cached(inode)) {
		ret = write_direct(iocb, from);
		goto out;
	}
	start = iocb->ki_pos;
	ret = generic_perform_write(iocb, from);
	/* Whether generic_perform_write() moves ki_pos differs across 6.1 stable builds. */
	if (ret > 0)
		iocb->ki_pos = start + ret;
	if (ret > 0) {
		/* Write-through: the bytes are on the HOST before write(2) returns. */
		err = filemap_write_and_wait_range(inode->i_mapping, start, start + ret - 1);
		if (err)
			ret = err;
		qtfs_data_changed(inode);
	}
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
		err = filemap_write_and_wait(inode->i_mapping);
		if (!err)
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

	inode_lock(inode);
	err = filemap_write_and_wait_range(inode->i_mapping, offset, offset + len - 1);
	if (!err)
		err = file_handle(file, &f.handle);
	if (!err) {
		err = QTFS_CALL(qtfs_cl(inode), QTP_OP_FALLOCATE, fallocate_req, &f, 0, 0, &r);
		qtfs_req_put(r);
	}
	if (!err) {
		if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + len > i_size_read(inode))
			i_size_write(inode, offset + len);
		if (inode->i_mapping->nrpages)
			invalidate_inode_pages2_range(inode->i_mapping, offset >> PAGE_SHIFT,
						      (offset + len - 1) >> PAGE_SHIFT);
		qtfs_data_changed(inode);
	}
	inode_unlock(inode);
	return err;
}

static int qtfs_mmap(struct file *file, struct vm_area_struct *vma)
{
	if (!qtfs_cached(file_inode(file)))
		return -ENODEV; /* no page cache for files of unknown size */
	return generic_file_mmap(file, vma);
}

#ifdef QTFS_HAVE_COPY_SPLICE_READ
/* sendfile/splice: through ->read_iter where there is no page cache to splice from. */
static ssize_t qtfs_splice_read(struct file *in, loff_t *ppos, struct pipe_inode_info *pipe, size_t len,
				unsigned int flags)
{
	if (!qtfs_cached(file_inode(in)) || (in->f_flags & O_DIRECT))
		return copy_splice_read(in, ppos, pipe, len, flags);
	return filemap_splice_read(in, ppos, pipe, len, flags);
}
#endif

const struct file_operations qtfs_file_fops = {
	.owner = THIS_MODULE,
	.open = qtfs_open,
	.flush = qtfs_flush,
	.release = qtfs_release,
	.llseek = qtfs_llseek,
	.read_iter = qtfs_read_iter,
	.write_iter = qtfs_write_iter,
	.mmap = qtfs_mmap,
	.fsync = qtfs_fsync,
	.fallocate = qtfs_fallocate,
	.lock = qtfs_lock,
	.flock = qtfs_flock,
	.splice_read = QTFS_SPLICE_READ,
	.splice_write = iter_file_splice_write,
};

/* ---- page cache: reading ---- */

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

static int read_into_folio(struct qtfs_file *qf, struct folio *folio)
{
	struct qtfs_req *r;
	int err = read_req(qf, folio_pos(folio), folio_size(folio), &r);

	if (!err) {
		fill_folio(folio, r->rsp, r->rsp_len);
		folio_mark_uptodate(folio);
	}
	qtfs_req_put(r);
	return err;
}

static int qtfs_read_folio(struct file *file, struct folio *folio)
{
	int err = file ? read_into_folio(file->private_data, folio) : -EIO;

	folio_unlock(folio);
	return err;
}

static void qtfs_readahead(struct readahead_control *ractl)
{
	struct qtfs_file *qf = ractl->file ? ractl->file->private_data : NULL;
	struct qtfs_req *r = NULL;
	loff_t bpos = 0, bend = 0; /* r holds the bytes [bpos, bend) */
	loff_t end = readahead_pos(ractl) + readahead_length(ractl);
	struct folio *folio;
	bool failed = !qf;

	while ((folio = readahead_folio(ractl)) != NULL) {
		loff_t fpos = folio_pos(folio);

		if (!failed && (!r || fpos < bpos || fpos >= bpos + QTFS_IO_MAX)) {
			u32 n = min_t(loff_t, end - fpos, QTFS_IO_MAX);

			qtfs_req_put(r);
			failed = read_req(qf, fpos, n, &r) != 0;
			bpos = fpos;
			bend = failed ? fpos : fpos + r->rsp_len;
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

/* ---- page cache: writing ---- */

static int qtfs_write_begin_folio(struct file *file, struct address_space *mapping, loff_t pos, unsigned int len,
				  struct folio **foliop)
{
	struct folio *folio = QTFS_GET_WRITE_FOLIO(mapping, pos >> PAGE_SHIFT);
	int err;

	if (IS_ERR_OR_NULL(folio))
		return folio ? PTR_ERR(folio) : -ENOMEM;
	if (!folio_test_uptodate(folio) && len != folio_size(folio)) {
		size_t from = offset_in_folio(folio, pos);

		if (folio_pos(folio) >= i_size_read(mapping->host)) {
			folio_zero_segments(folio, 0, from, from + len, folio_size(folio));
			folio_mark_uptodate(folio);
		} else {
			/* A partial write of a cached-out page: its other bytes come first. */
			err = file ? read_into_folio(file->private_data, folio) : -EIO;
			if (err) {
				folio_unlock(folio);
				folio_put(folio);
				return err;
			}
		}
	}
	*foliop = folio;
	return 0;
}

static int qtfs_write_end_folio(struct file *file, struct address_space *mapping, loff_t pos, unsigned int len,
				unsigned int copied, struct folio *folio)
{
	struct inode *inode = mapping->host;

	if (!folio_test_uptodate(folio)) {
		/* Only whole-page writes get here without reading: a short copy is retried. */
		if (copied < len) {
			folio_unlock(folio);
			folio_put(folio);
			return 0;
		}
		folio_mark_uptodate(folio);
	}
	if (pos + copied > i_size_read(inode))
		i_size_write(inode, pos + copied);
	folio_mark_dirty(folio);
	folio_unlock(folio);
	folio_put(folio);
	return copied;
}

QTFS_WRITE_BEGIN_END_WRAPPERS(qtfs_write_begin_folio, qtfs_write_end_folio)

/* Contiguous dirty folios gathered for one WRITE. */
struct wb_batch {
	struct qtfs_file *qf;
	struct address_space *mapping;
	struct folio *folios[QTFS_IO_MAX / PAGE_SIZE];
	int n;
	int err;
};

static int fill_from_folios(void *dst, u32 n, void *arg)
{
	struct wb_batch *b = arg;
	u32 off = 0;
	int i;

	for (i = 0; i < b->n && off < n; i++) {
		size_t fsz = min_t(size_t, folio_size(b->folios[i]), n - off);
		size_t o;

		for (o = 0; o < fsz; o += PAGE_SIZE) {
			u8 *src = kmap_local_folio(b->folios[i], o);

			memcpy(dst + off + o, src, min_t(size_t, PAGE_SIZE, fsz - o));
			kunmap_local(src);
		}
		off += fsz;
	}
	return 0;
}

static void wb_flush(struct wb_batch *b)
{
	struct inode *inode = b->mapping->host;
	loff_t pos, size = i_size_read(inode), len = 0;
	ssize_t done = 0;
	int i, err = 0;

	if (!b->n)
		return;
	pos = folio_pos(b->folios[0]);
	for (i = 0; i < b->n; i++)
		len += folio_size(b->folios[i]);
	len = clamp_t(loff_t, size - pos, 0, len); /* nothing past the end of the file */
	if (len) {
		done = write_req(b->qf, pos, len, fill_from_folios, b);
		if (done >= 0 && done < len)
			done = -EIO; /* the HOST's file system is full or failing */
		err = done < 0 ? done : 0;
	}
	for (i = 0; i < b->n; i++)
		folio_end_writeback(b->folios[i]);
	if (err) {
		qtfs_warn("write-back of %pd at %lld failed (%d)", b->qf->dentry, pos, err);
		mapping_set_error(b->mapping, err);
		b->err = err;
	}
	b->n = 0;
}

static int wb_add(struct folio *folio, struct writeback_control *wbc, void *arg)
{
	struct wb_batch *b = arg;

	if (b->n && (b->n == ARRAY_SIZE(b->folios) ||
		     folio->index != b->folios[b->n - 1]->index + folio_nr_pages(b->folios[b->n - 1])))
		wb_flush(b);
	folio_start_writeback(folio);
	folio_unlock(folio);
	b->folios[b->n++] = folio;
	return 0;
}

QTFS_WRITEPAGE_CB(wb_cb, wb_add)

static int qtfs_writepages(struct address_space *mapping, struct writeback_control *wbc)
{
	struct qtfs_file *qf = qf_first(QTFS_I(mapping->host), true);
	struct wb_batch *b;
	int err;

	if (!qf) {
		/* Queued for write-back while open; write-through already cleaned it. */
		if (!mapping_tagged(mapping, PAGECACHE_TAG_DIRTY))
			return 0;
		qtfs_err("dirty pages of inode %lu without a writable handle", mapping->host->i_ino);
		return -EIO;
	}
	b = kzalloc(sizeof(*b), GFP_NOFS);
	if (!b) {
		qf_put(qf);
		return -ENOMEM;
	}
	b->qf = qf;
	b->mapping = mapping;
	err = write_cache_pages(mapping, wbc, wb_cb, b);
	wb_flush(b);
	if (!err)
		err = b->err;
	kfree(b);
	qf_put(qf);
	return err;
}

const struct address_space_operations qtfs_aops = {
	.read_folio = qtfs_read_folio,
	.readahead = qtfs_readahead,
	.write_begin = QTFS_WRITE_BEGIN,
	.write_end = QTFS_WRITE_END,
	.writepages = qtfs_writepages,
	.dirty_folio = filemap_dirty_folio,
	.direct_IO = noop_direct_IO, /* O_DIRECT is served by read_iter/write_iter */
};
