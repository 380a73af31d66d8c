/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat.h - the few VFS interfaces that changed between 6.1 (Debian bookworm, the
 * version built and tested in CI) and newer kernels. Everything version-dependent
 * lives here so the rest of the module reads as one kernel's code.
 */
#ifndef QTFS_COMPAT_H
#define QTFS_COMPAT_H

#include <linux/version.h>
#include <linux/fs.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#include <linux/mnt_idmapping.h>
typedef struct mnt_idmap qtfs_idmap_t;
#define QTFS_NOP_IDMAP (&nop_mnt_idmap)
#else
typedef struct user_namespace qtfs_idmap_t;
#define QTFS_NOP_IDMAP (&init_user_ns)
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
#define qtfs_generic_fillattr(idmap, mask, inode, stat) generic_fillattr(idmap, mask, inode, stat)
#else
#define qtfs_generic_fillattr(idmap, mask, inode, stat) generic_fillattr(idmap, inode, stat)
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
static inline void qtfs_set_times(struct inode *inode, struct timespec64 a, struct timespec64 m,
				  struct timespec64 c)
{
	inode_set_atime_to_ts(inode, a);
	inode_set_mtime_to_ts(inode, m);
	inode_set_ctime_to_ts(inode, c);
}
static inline struct timespec64 qtfs_get_mtime(struct inode *inode) { return inode_get_mtime(inode); }
#else
static inline void qtfs_set_times(struct inode *inode, struct timespec64 a, struct timespec64 m,
				  struct timespec64 c)
{
	inode->i_atime = a;
	inode->i_mtime = m;
	inode->i_ctime = c;
}
static inline struct timespec64 qtfs_get_mtime(struct inode *inode) { return inode->i_mtime; }
#endif

/* 6.15 made ->mkdir return the dentry it instantiated (or NULL for the one given). */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
#define QTFS_MKDIR_RET struct dentry *
#define QTFS_MKDIR_RETURN(err) ERR_PTR(err)
#else
#define QTFS_MKDIR_RET int
#define QTFS_MKDIR_RETURN(err) (err)
#endif

/* 6.14 gave ->d_revalidate the parent and name. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
#define QTFS_REVALIDATE_ARGS struct inode *qtfs_dir, const struct qstr *qtfs_name, struct dentry *dentry, unsigned int flags
#else
#define QTFS_REVALIDATE_ARGS struct dentry *dentry, unsigned int flags
#endif

/*
 * splice/sendfile of a file: before 6.5 generic_file_splice_read() goes through
 * ->read_iter, so O_DIRECT and -o proc files (every read a request) are read whole. From
 * 6.5 filemap_splice_read() reads the page cache up to i_size, which is 0 for /proc
 * files: file.c then uses copy_splice_read() (->read_iter) for the files not cached.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#define QTFS_HAVE_COPY_SPLICE_READ 1
#define QTFS_SPLICE_READ qtfs_splice_read
#define QTFS_RELAY_SPLICE_READ copy_splice_read
#else
#define QTFS_SPLICE_READ generic_file_splice_read
#define QTFS_RELAY_SPLICE_READ generic_file_splice_read
#endif

/* 6.5 asks the file to say it takes O_DIRECT; before, a_ops->direct_IO said it. */
#ifdef FMODE_CAN_ODIRECT
#define QTFS_ALLOW_ODIRECT(file) ((file)->f_mode |= FMODE_CAN_ODIRECT)
#else
#define QTFS_ALLOW_ODIRECT(file) do { } while (0)
#endif

/* The folio a buffered write copies into (locked, referenced). */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define QTFS_GET_WRITE_FOLIO(mapping, index) \
	__filemap_get_folio(mapping, index, FGP_WRITEBEGIN, mapping_gfp_mask(mapping))
#else
#define QTFS_GET_WRITE_FOLIO(mapping, index) ({ \
	struct page *__p = grab_cache_page_write_begin(mapping, index); \
	__p ? page_folio(__p) : NULL; })
#endif

/* ->write_begin/->write_end took pages until 6.12, folios since. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#define QTFS_WRITE_BEGIN_END_WRAPPERS(begin, end)						\
static int qtfs_write_begin(struct file *f, struct address_space *m, loff_t pos, unsigned int len,	\
			    struct folio **foliop, void **fsdata)					\
{ return begin(f, m, pos, len, foliop); }							\
static int qtfs_write_end(struct file *f, struct address_space *m, loff_t pos, unsigned int len,	\
			  unsigned int copied, struct folio *folio, void *fsdata)			\
{ return end(f, m, pos, len, copied, folio); }
#else
#define QTFS_WRITE_BEGIN_END_WRAPPERS(begin, end)						\
static int qtfs_write_begin(struct file *f, struct address_space *m, loff_t pos, unsigned int len,	\
			    struct page **pagep, void **fsdata)						\
{												\
	struct folio *folio;									\
	int err = begin(f, m, pos, len, &folio);						\
	if (!err)										\
		*pagep = &folio->page;								\
	return err;										\
}												\
static int qtfs_write_end(struct file *f, struct address_space *m, loff_t pos, unsigned int len,	\
			  unsigned int copied, struct page *page, void *fsdata)			\
{ return end(f, m, pos, len, copied, page_folio(page)); }
#endif
#define QTFS_WRITE_BEGIN qtfs_write_begin
#define QTFS_WRITE_END qtfs_write_end

/* write_cache_pages() callbacks took pages until 6.3, folios since. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define QTFS_WRITEPAGE_CB(name, fn) \
static int name(struct folio *folio, struct writeback_control *wbc, void *data) { return fn(folio, wbc, data); }
#else
#define QTFS_WRITEPAGE_CB(name, fn) \
static int name(struct page *page, struct writeback_control *wbc, void *data) { return fn(page_folio(page), wbc, data); }
#endif

/* 6.2: sockets of network file systems must not use the task's page fragment. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
#define QTFS_SK_NO_TASK_FRAG(sk) ((sk)->sk_use_task_frag = false)
#else
#define QTFS_SK_NO_TASK_FRAG(sk) do { } while (0)
#endif

/* 6.9 moved the owner, flags, type and pid of struct file_lock into file_lock_core. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
#include <linux/filelock.h>
#define QTFS_FL_FLAGS(fl) ((fl)->c.flc_flags)
#define QTFS_FL_TYPE(fl) ((fl)->c.flc_type)
#define QTFS_FL_OWNER(fl) ((fl)->c.flc_owner)
#define QTFS_FL_PID(fl) ((fl)->c.flc_pid)
#else
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#include <linux/filelock.h>
#endif
#define QTFS_FL_FLAGS(fl) ((fl)->fl_flags)
#define QTFS_FL_TYPE(fl) ((fl)->fl_type)
#define QTFS_FL_OWNER(fl) ((fl)->fl_owner)
#define QTFS_FL_PID(fl) ((fl)->fl_pid)
#endif

/*
 * Names: newer kernels' <crypto/sha2.h> declares lib/crypto helpers such as
 * hmac_sha256(), so the module's own helpers carry a qtfs_ prefix (qtfs_hmac_sha256()
 * in conn.c, over the crypto_shash API that every supported kernel has).
 */

/*
 * A relayed FIFO or device is a stream (stream_open clears FMODE_LSEEK); 6.12 removed
 * no_llseek, whose job that flag now does alone.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#define QTFS_NO_LLSEEK NULL
#else
#define QTFS_NO_LLSEEK no_llseek
#endif

#endif /* QTFS_COMPAT_H */
