//! Admission of connections that have not authenticated yet.
//!
//! Until ATTACH succeeds a connection costs the engine memory and a descriptor while
//! proving nothing, so their number is bounded per peer address and in total, across
//! every core (`PREAUTH_PER_PEER`, `PREAUTH_TOTAL`). A connection over either bound is
//! closed right after accept, before anything is allocated for it; one that attaches
//! (or closes) gives its place back. Together with the handshake timeout and the small
//! pre-ATTACH frame limit (`super::PREAUTH_MAX_PAYLOAD`) this bounds what anonymous
//! peers can hold: about `PREAUTH_TOTAL` × (a 1 KiB receive buffer + a descriptor +
//! bookkeeping) for at most `super::HANDSHAKE_TIMEOUT`.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Connections in their handshake from one peer address (TCP: the IP, vsock: the CID,
/// unix: every local peer together).
pub(crate) const PREAUTH_PER_PEER: u32 = 64;
/// Connections in their handshake, every peer and every core together.
pub(crate) const PREAUTH_TOTAL: usize = 1024;

/// The counts behind the bounds; one per engine, shared by its cores.
#[derive(Default)]
pub(crate) struct PreAuthGate {
    inner: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<Box<str>, u32>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Peer,
    Total,
}

/// The address part of a peer name as `sys::peer_name` writes it: the port goes
/// (`1.2.3.4:5` → `1.2.3.4`, `[::1]:5` → `[::1]`, `vsock:3:5` → `vsock:3`); `unix`
/// and unknown families stay whole.
pub(crate) fn peer_key(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((addr, port)) if !addr.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => addr,
        _ => peer,
    }
}

impl PreAuthGate {
    /// Takes a place for a new connection from `key` (see [`peer_key`]).
    pub fn admit(&self, key: &str) -> Result<(), Refused> {
        let mut g = self.inner.lock();
        if g.total >= PREAUTH_TOTAL {
            return Err(Refused::Total);
        }
        let n = g.per_peer.get(key).copied().unwrap_or(0);
        if n >= PREAUTH_PER_PEER {
            return Err(Refused::Peer);
        }
        g.per_peer.insert(key.into(), n + 1);
        g.total += 1;
        Ok(())
    }

    /// Gives back a place taken by [`PreAuthGate::admit`].
    pub fn release(&self, key: &str) {
        let mut g = self.inner.lock();
        let gone = match g.per_peer.get_mut(key) {
            Some(n) => {
                *n -= 1;
                *n == 0
            }
            None => {
                tracing::error!(peer = key, "pre-auth gate released twice");
                return;
            }
        };
        if gone {
            g.per_peer.remove(key);
        }
        g.total = g.total.saturating_sub(1);
    }

    /// Connections in their handshake right now.
    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.inner.lock().total
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn keys_drop_the_port() {
        assert_eq!(peer_key("127.0.0.1:4242"), "127.0.0.1");
        assert_eq!(peer_key("[::1]:80"), "[::1]");
        assert_eq!(peer_key("vsock:3:1024"), "vsock:3");
        assert_eq!(peer_key("unix"), "unix");
        assert_eq!(peer_key("?"), "?");
    }

    #[test]
    fn bounds_per_peer_and_in_total() {
        let g = PreAuthGate::default();
        for _ in 0..PREAUTH_PER_PEER {
            g.admit("a").unwrap();
        }
        assert_eq!(g.admit("a"), Err(Refused::Peer));
        g.release("a");
        g.admit("a").unwrap();
        let mut i = 0;
        while g.total() < PREAUTH_TOTAL {
            g.admit(&format!("p{}", i / PREAUTH_PER_PEER)).unwrap();
            i += 1;
        }
        assert_eq!(g.admit("fresh"), Err(Refused::Total));
        g.release("a");
        g.admit("fresh").unwrap();
    }
}
