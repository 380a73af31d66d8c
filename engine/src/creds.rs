//! Acting with the caller's identity.
//!
//! Ring operations carry an io_uring *personality* registered for the caller's
//! credentials; direct system calls run after switching the calling thread's file
//! system identity (`setfsuid`, `setfsgid`, per-thread `setgroups`) and dropping its
//! effective capabilities, as the kernel NFS server does. The switch is lazy: a thread
//! stays in the last identity until another is needed, so a single-user workload pays
//! for it once. Only raw syscalls are used, because glibc's wrappers change the ids of
//! every thread of the process.
//!
//! When the engine does not run as root it cannot impersonate anyone; then every
//! operation runs with the engine's own identity (announced at start).
//!
//! Which identity: the DPU is not trusted, so the ids a request claims are only a
//! proposal. [`IdPolicy::ident`] turns them into the HOST identity the request runs
//! with, for file requests and channel connects alike: `--map-uid`/`--map-gid` first
//! (DPU id → HOST id; ids not listed pass unchanged; supplementary groups are mapped
//! too), then `--root-squash` (a uid that is 0 *after* mapping becomes nobody, so no map
//! can produce HOST root either), then `--allow-uids`/`--allow-gids` on the result (uid,
//! gid and every supplementary group; anything outside is refused with EPERM, never
//! silently dropped, because dropping a group can grant what a group entry denies).
//!
//! Per export: `--export-policy PATH:OPTIONS` gives the exports at or beneath PATH their
//! own [`IdPolicy`] instead of the engine-wide one ([`ExportIds`]). MOUNT binds the export
//! to its policy, and every request naming that export (handles: the export they were
//! opened in) is translated by it.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use qtfs_proto::MAX_GROUPS;

/// An identity requests run with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Ident {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, sorted (so equal sets compare equal).
    pub groups: Vec<u32>,
}

impl Ident {
    pub fn new(uid: u32, gid: u32, groups: impl Iterator<Item = u32>) -> Ident {
        let mut g: Vec<u32> = groups.take(MAX_GROUPS).collect();
        g.sort_unstable();
        g.dedup();
        Ident { uid, gid, groups: g }
    }
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// A closed range of ids, `lo..=hi`.
pub type IdRange = (u32, u32);

/// How claimed ids become HOST ids (see the module comment). The default maps nothing,
/// squashes nothing and allows every id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdPolicy {
    /// `--root-squash`: a uid 0 (after mapping) runs as nobody (65534:65534, no groups).
    pub root_squash: bool,
    /// `--map-uid DPU=HOST`, sorted by DPU id, no DPU id twice.
    pub uid_map: Vec<(u32, u32)>,
    /// `--map-gid DPU=HOST` (gid and supplementary groups), sorted by DPU id.
    pub gid_map: Vec<(u32, u32)>,
    /// `--allow-uids`: HOST uids a request may run as; empty = any.
    pub allow_uids: Vec<IdRange>,
    /// `--allow-gids`: HOST gids (primary and supplementary); empty = any.
    pub allow_gids: Vec<IdRange>,
}

/// The user and group the kernel calls nobody / nogroup.
pub const NOBODY: u32 = 65534;

fn map_id(map: &[(u32, u32)], id: u32) -> u32 {
    match map.binary_search_by_key(&id, |&(from, _)| from) {
        Ok(i) => map[i].1,
        Err(_) => id,
    }
}

fn in_ranges(ranges: &[IdRange], id: u32) -> bool {
    ranges.is_empty() || ranges.iter().any(|&(lo, hi)| lo <= id && id <= hi)
}

impl IdPolicy {
    /// The HOST identity for the ids a request claims, or EPERM (wire errno) when the
    /// policy refuses them.
    pub fn ident(&self, uid: u32, gid: u32, groups: impl Iterator<Item = u32>) -> Result<Ident, i32> {
        let uid = map_id(&self.uid_map, uid);
        let id = if self.root_squash && uid == 0 {
            Ident::new(NOBODY, NOBODY, std::iter::empty())
        } else {
            Ident::new(uid, map_id(&self.gid_map, gid), groups.map(|g| map_id(&self.gid_map, g)))
        };
        let gids_ok = in_ranges(&self.allow_gids, id.gid) && id.groups.iter().all(|&g| in_ranges(&self.allow_gids, g));
        if !in_ranges(&self.allow_uids, id.uid) || !gids_ok {
            return Err(qtfs_proto::errno::EPERM);
        }
        Ok(id)
    }

    /// Whether requests are passed through unchanged (the engine's historical behaviour).
    pub fn is_identity(&self) -> bool {
        *self == IdPolicy::default()
    }
}

/// `--export-policy PATH:OPTIONS`: the identity policy of the exports whose root is
/// PATH or beneath it (the longest such PATH wins); it replaces the engine-wide policy
/// for them, as an /etc/exports line does, rather than adding to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportIds {
    /// Normalised absolute HOST path, symlinks resolved at start (as whitelist entries).
    pub path: Vec<u8>,
    pub ids: Arc<IdPolicy>,
}

/// The `--export-policy` entry for an export whose real root path is `real`: the longest
/// entry covering it; None means the engine-wide policy.
pub fn export_policy<'a>(list: &'a [ExportIds], real: &[u8]) -> Option<&'a ExportIds> {
    list.iter().filter(|e| crate::whitelist::prefix_match(&e.path, real)).max_by_key(|e| e.path.len())
}

/// An entry strictly beneath `real` whose policy differs from `own` (the policy an export
/// at `real` gets, None = `default`): an export at `real` would reach that tree with the
/// wrong identities, so MOUNT refuses it (mount the nested directory itself).
pub fn nested_conflict<'a>(
    list: &'a [ExportIds],
    real: &[u8],
    own: Option<&ExportIds>,
    default: &IdPolicy,
) -> Option<&'a ExportIds> {
    let own = own.map_or(default, |e| &*e.ids);
    list.iter().find(|e| e.path.len() > real.len() && crate::whitelist::prefix_match(real, &e.path) && *e.ids != *own)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

fn capget() -> io::Result<[CapData; 2]> {
    let mut h = CapHeader { version: CAP_V3, pid: 0 };
    let mut d = [CapData::default(); 2];
    // SAFETY: header and two data structs of the v3 layout.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(d) }
}

fn capset(d: &[CapData; 2]) -> io::Result<()> {
    let mut h = CapHeader { version: CAP_V3, pid: 0 };
    // SAFETY: header and two data structs of the v3 layout.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn raw_setgroups(g: &[u32]) -> io::Result<()> {
    // SAFETY: g holds g.len() gids; per-thread raw syscall.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, g.len(), g.as_ptr()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn raw_setfsuid(uid: u32) -> u32 {
    // SAFETY: per-thread raw syscall; returns the previous fsuid.
    unsafe { libc::syscall(libc::SYS_setfsuid, uid) as u32 }
}

fn raw_setfsgid(gid: u32) -> u32 {
    // SAFETY: per-thread raw syscall; returns the previous fsgid.
    unsafe { libc::syscall(libc::SYS_setfsgid, gid) as u32 }
}

/// Whether this process can take on other identities (it runs as root with
/// CAP_SETUID/CAP_SETGID).
pub fn can_impersonate() -> bool {
    // SAFETY: getter.
    let euid = unsafe { libc::geteuid() };
    euid == 0
        && capget()
            .map(|d| d[0].effective & (1 << CAP_SETUID) != 0 && d[0].effective & (1 << CAP_SETGID) != 0)
            .unwrap_or(false)
}

struct ThreadState {
    base_caps: [CapData; 2],
    base_uid: u32,
    base_gid: u32,
    base_groups: Vec<u32>,
    /// None = running as base.
    current: Option<Ident>,
    enabled: bool,
}

thread_local! {
    static STATE: RefCell<Option<ThreadState>> = const { RefCell::new(None) };
}

fn init_state() -> ThreadState {
    let enabled = can_impersonate();
    // SAFETY: getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut groups = vec![0u32; 256];
    // SAFETY: buffer of 256 gids.
    let n = unsafe { libc::getgroups(256, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    ThreadState {
        base_caps: capget().unwrap_or_default(),
        base_uid: uid,
        base_gid: gid,
        base_groups: groups,
        current: None,
        enabled,
    }
}

fn restore_base(st: &mut ThreadState) -> io::Result<()> {
    if st.current.is_none() {
        return Ok(());
    }
    // Capabilities first: setgroups below needs CAP_SETGID back.
    capset(&st.base_caps)?;
    raw_setfsuid(st.base_uid);
    raw_setfsgid(st.base_gid);
    raw_setgroups(&st.base_groups)?;
    st.current = None;
    Ok(())
}

fn apply(st: &mut ThreadState, id: &Ident) -> io::Result<()> {
    raw_setgroups(&id.groups)?;
    raw_setfsgid(id.gid);
    raw_setfsuid(id.uid);
    // setfsuid does not report failure; check that it took.
    if raw_setfsuid(u32::MAX) != id.uid || raw_setfsgid(u32::MAX) != id.gid {
        let _ = restore_base_inner(st);
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    let mut dropped = st.base_caps;
    dropped[0].effective = 0;
    dropped[1].effective = 0;
    capset(&dropped)?;
    st.current = Some(id.clone());
    Ok(())
}

fn restore_base_inner(st: &mut ThreadState) -> io::Result<()> {
    st.current = Some(Ident::default());
    restore_base(st)
}

/// Runs `f` with the thread acting as `id` (file system ids, groups, no capabilities).
/// Root (`uid == 0`) runs as the engine itself.
pub fn with_ident<R>(id: &Ident, f: impl FnOnce() -> R) -> io::Result<R> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let st = s.get_or_insert_with(init_state);
        if !st.enabled || id.is_root() {
            restore_base(st)?;
        } else if st.current.as_ref() != Some(id) {
            restore_base(st)?;
            apply(st, id)?;
        }
        Ok::<(), io::Error>(())
    })?;
    Ok(f())
}

/// Puts the thread back into the engine's own identity.
pub fn reset() {
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut() {
            let _ = restore_base(st);
        }
    });
}

/// Registers an io_uring personality for `id`: the thread briefly takes the identity,
/// the ring records its credentials, and the thread returns to the engine's identity.
pub fn register_personality(sub: &io_uring::Submitter<'_>, id: &Ident) -> io::Result<u16> {
    let r = with_ident(id, || sub.register_personality())?;
    reset();
    r
}

fn raw_setresuid(e: u32) -> io::Result<()> {
    // SAFETY: per-thread raw syscall; -1 leaves the real and saved ids alone.
    let r = unsafe { libc::syscall(libc::SYS_setresuid, u32::MAX, e, u32::MAX) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn raw_setresgid(e: u32) -> io::Result<()> {
    // SAFETY: per-thread raw syscall; -1 leaves the real and saved ids alone.
    let r = unsafe { libc::syscall(libc::SYS_setresgid, u32::MAX, e, u32::MAX) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Registers an io_uring personality acting as `id` on sockets as well as files (used by
/// unix-socket channels): the *effective* uid/gid are switched too, because
/// `SO_PEERCRED` and `SCM_CREDENTIALS` report effective ids, and the file system ids
/// follow them. Raw per-thread syscalls; the thread is back in the engine's own identity
/// (and capabilities, restored by the kernel when the effective uid returns to 0) before
/// this returns.
pub fn register_socket_personality(sub: &io_uring::Submitter<'_>, id: &Ident) -> io::Result<u16> {
    reset();
    // SAFETY: getters.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut base_groups = vec![0u32; 256];
    // SAFETY: buffer of 256 gids.
    let n = unsafe { libc::getgroups(256, base_groups.as_mut_ptr()) };
    base_groups.truncate(n.max(0) as usize);
    let switched = raw_setgroups(&id.groups).and_then(|_| raw_setresgid(id.gid)).and_then(|_| raw_setresuid(id.uid));
    let r = switched.and_then(|_| sub.register_personality());
    // Back to the engine: the uid first (it brings the capabilities back), then the rest.
    let restored = raw_setresuid(euid).and_then(|_| raw_setresgid(egid)).and_then(|_| raw_setgroups(&base_groups));
    if let Err(e) = restored {
        // Continuing with a foreign identity would be worse than stopping.
        panic!("cannot restore the engine's identity after registering a personality: {e}");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_then_squash_then_ranges() {
        let none = IdPolicy::default();
        assert_eq!(none.ident(0, 0, [5, 3, 5].into_iter()).unwrap(), Ident { uid: 0, gid: 0, groups: vec![3, 5] });
        let p = IdPolicy {
            root_squash: true,
            uid_map: vec![(0, 1500), (7, 0)],
            gid_map: vec![(0, 1500), (10, 2000)],
            allow_uids: vec![(1000, 1999), (NOBODY, NOBODY)],
            allow_gids: vec![(1000, 2999), (NOBODY, NOBODY)],
        };
        assert_eq!(p.ident(0, 0, [10].into_iter()).unwrap(), Ident { uid: 1500, gid: 1500, groups: vec![2000] });
        // A map to 0 is squashed like a claimed 0 would be.
        assert_eq!(p.ident(7, 0, [10].into_iter()).unwrap(), Ident { uid: NOBODY, gid: NOBODY, groups: vec![] });
        assert_eq!(p.ident(1200, 1200, std::iter::empty()).unwrap().uid, 1200);
        assert_eq!(p.ident(3000, 1200, std::iter::empty()), Err(qtfs_proto::errno::EPERM), "uid outside");
        assert_eq!(p.ident(1200, 5, std::iter::empty()), Err(qtfs_proto::errno::EPERM), "gid outside");
        assert_eq!(p.ident(1200, 1200, [1200, 4].into_iter()), Err(qtfs_proto::errno::EPERM), "a group outside");
    }

    #[test]
    fn export_policies_by_longest_path() {
        let squash = Arc::new(IdPolicy { root_squash: true, ..IdPolicy::default() });
        let none = Arc::new(IdPolicy::default());
        let list = vec![
            ExportIds { path: b"/srv".to_vec(), ids: squash.clone() },
            ExportIds { path: b"/srv/open".to_vec(), ids: none.clone() },
            ExportIds { path: b"/srv/same".to_vec(), ids: squash.clone() },
        ];
        let at = |p: &[u8]| export_policy(&list, p).map(|e| e.path.clone());
        assert_eq!(at(b"/srv/x"), Some(b"/srv".to_vec()));
        assert_eq!(at(b"/srv/open/sub"), Some(b"/srv/open".to_vec()));
        assert_eq!(at(b"/srv/opener"), Some(b"/srv".to_vec()), "component prefixes only");
        assert_eq!(at(b"/var"), None);
        // /srv holds /srv/open, whose policy differs (from /srv's and from the default).
        let d = IdPolicy::default();
        assert!(nested_conflict(&list, b"/srv", export_policy(&list, b"/srv"), &d).is_some());
        assert!(nested_conflict(&list, b"/", None, &d).is_some());
        assert!(nested_conflict(&list, b"/srv/open", export_policy(&list, b"/srv/open"), &d).is_none());
        let only_same = &[ExportIds { path: b"/srv/same".to_vec(), ids: squash }];
        assert!(nested_conflict(only_same, b"/srv", None, &IdPolicy { root_squash: true, ..d.clone() }).is_none());
        assert!(nested_conflict(only_same, b"/srv", None, &d).is_some());
    }
}
