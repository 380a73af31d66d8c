//! Caller identity: the uid/gid of a FUSE request plus the calling process's
//! supplementary groups, read from `/proc/PID/status` and cached briefly per pid (a
//! process that changes its groups is seen within [`GROUPS_TTL`]).
//!
//! Owns only the cache; it never changes the daemon's own credentials.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use qtfs_client::Cred;
use qtfs_proto::MAX_GROUPS;

/// How long the groups read for a pid are reused.
pub const GROUPS_TTL: Duration = Duration::from_secs(1);
/// Bound on cached pids (the cache is cleared when it grows past this).
const MAX_CACHED: usize = 4096;

/// When a pid's groups were read, and what they were.
type Entry = (Instant, Arc<Vec<u32>>);

/// Supplementary groups per pid, cached for [`GROUPS_TTL`].
#[derive(Default)]
pub struct GroupsCache {
    map: Mutex<HashMap<u32, Entry>>,
}

impl GroupsCache {
    /// The credentials of a request from `pid` acting as `uid`/`gid`.
    pub fn cred(&self, uid: u32, gid: u32, pid: u32) -> Cred {
        Cred { uid, gid, groups: self.groups(pid).to_vec() }
    }

    fn groups(&self, pid: u32) -> Arc<Vec<u32>> {
        let now = Instant::now();
        if let Some((t, g)) = self.map.lock().get(&pid)
            && now.duration_since(*t) < GROUPS_TTL
        {
            return g.clone();
        }
        // A process that is gone (or pid 0 for kernel-originated requests) has no groups.
        let g = Arc::new(read_groups(pid).unwrap_or_default());
        let mut m = self.map.lock();
        if m.len() >= MAX_CACHED {
            m.clear();
        }
        m.insert(pid, (now, g.clone()));
        g
    }
}

/// The `Groups:` line of `/proc/PID/status` (first [`MAX_GROUPS`] entries).
pub fn read_groups(pid: u32) -> Option<Vec<u32>> {
    if pid == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_groups(&status)
}

fn parse_groups(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find(|l| l.starts_with("Groups:"))?;
    Some(line["Groups:".len()..].split_whitespace().filter_map(|g| g.parse().ok()).take(MAX_GROUPS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_groups_line() {
        let s = "Name:\tx\nUid:\t1\t1\t1\t1\nGroups:\t4 24 1000 \nNgid:\t0\n";
        assert_eq!(parse_groups(s), Some(vec![4, 24, 1000]));
        assert_eq!(parse_groups("Groups:\n"), Some(vec![]));
        assert_eq!(parse_groups("Name: x\n"), None);
    }

    #[test]
    fn reads_our_own_groups() {
        let pid = std::process::id();
        let mine = read_groups(pid).expect("own status");
        let c = GroupsCache::default().cred(5, 6, pid);
        assert_eq!((c.uid, c.gid), (5, 6));
        assert_eq!(c.groups, mine);
    }
}
