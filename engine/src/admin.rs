//! The admin socket (`/var/run/qtfs/engine.sock`, mode 0600) for `qtcfg` and `qtinfo`:
//! the engine's state behind whitelist list/add/delete, log level, counters, connection
//! and channel states (requests are decoded and answered in `qtfs_daemon::admin`). Served
//! by plain threads: admin traffic is rare and must never touch the cores' loops, which
//! pick whitelist changes up through the generation counter.

use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use qtfs_proto::consts::{WlType, errno};
use qtfs_proto::{AdminInfo, ConnInfo, Name, OpCounter};

use crate::Shared;
use crate::whitelist::{Entry, Whitelist};

pub use qtfs_daemon::admin::bind;
use qtfs_daemon::admin::{Admin, info};

/// Serves admin connections until the engine shuts down.
pub fn serve(listener: UnixListener, shared: Arc<Shared>) {
    qtfs_daemon::admin::serve(listener, &shared.shutdown, "qtfs-admin-conn", shared.clone());
}

/// Applies `f` to a copy of the whitelist and publishes the result to every core.
fn update_whitelist<T>(
    shared: &Shared,
    persist: bool,
    f: impl FnOnce(&mut Whitelist) -> Result<T, i32>,
) -> Result<T, i32> {
    let mut guard = shared.whitelist.write();
    let mut wl = (**guard).clone();
    let r = f(&mut wl)?;
    if persist && let Err(e) = wl.persist(&shared.cfg.whitelist) {
        tracing::error!(file = %shared.cfg.whitelist.display(), "cannot persist the whitelist: {e}");
        return Err(e.raw_os_error().unwrap_or(errno::EIO));
    }
    *guard = Arc::new(wl);
    shared.wl_gen.fetch_add(1, Ordering::AcqRel);
    Ok(r)
}

impl Admin for Shared {
    const WL_TYPES: &'static [WlType] = &WlType::ALL;

    fn info(&self) -> AdminInfo<'static> {
        AdminInfo {
            cores: self.cfg.cores as u32,
            sessions: self.sessions.len() as u32,
            connections: self.conns.lock().len() as u32,
            channels: self.chans.lock().len() as u32,
            ..info(b"engine", self.started, &self.log_level)
        }
    }

    fn log_level(&self) -> (&AtomicU32, &(dyn Fn(u32) + Send + Sync)) {
        (&self.log_level, &*self.set_log_level)
    }

    fn wl_list(&self, types: &[WlType], each: &mut dyn FnMut(WlType, u32, &[u8])) {
        let wl = self.whitelist.read().clone();
        for &t in types {
            for (i, e) in wl.entries(t).iter().enumerate() {
                // As written: a symlinked entry is listed with the user's spelling.
                each(t, i as u32, e.path());
            }
        }
    }

    fn wl_add(&self, t: WlType, path: &[u8], persist: bool) -> Result<u32, i32> {
        // Resolved (file system work that may block) before the whitelist lock is taken.
        let entry = Entry::new(t, path).map_err(|e| e.errno())?;
        update_whitelist(self, persist, |wl| wl.insert(t, entry).map_err(|e| e.errno()))
    }

    fn wl_del(&self, t: WlType, index: u32, persist: bool) -> Result<Vec<u8>, i32> {
        let gone = update_whitelist(self, persist, |wl| wl.delete(t, index).map_err(|e| e.errno()))?;
        Ok(gone.path().to_vec())
    }

    fn counters(&self, clear: bool) -> (Vec<OpCounter>, u64) {
        crate::stats::merge(&self.stats, clear)
    }

    fn clear(&self) {
        crate::stats::merge(&self.stats, true);
    }

    fn conns(&self, each: &mut dyn FnMut(ConnInfo<'_>)) {
        let conns: Vec<_> = self.conns.lock().values().cloned().collect();
        for c in conns {
            let session = c.session.load(Ordering::Relaxed);
            let handles = if session != 0 { self.sessions.open_handles() as u32 } else { 0 };
            each(ConnInfo {
                conn_id: c.id,
                session,
                core: c.core,
                state: c.state.load(Ordering::Relaxed),
                inflight: c.inflight.load(Ordering::Relaxed),
                channels: c.channels.load(Ordering::Relaxed),
                handles,
                requests: c.requests.load(Ordering::Relaxed),
                bytes_in: c.bytes_in.load(Ordering::Relaxed),
                bytes_out: c.bytes_out.load(Ordering::Relaxed),
                peer: Name(c.peer.as_bytes()),
            });
        }
    }

    fn channels(&self) -> (Vec<u8>, u32) {
        let mut chans: Vec<_> = self.chans.lock().values().cloned().collect();
        chans.sort_by_key(|c| (c.conn_id, c.channel));
        qtfs_chan::listing::records(chans.iter().map(|c| &**c))
    }
}
