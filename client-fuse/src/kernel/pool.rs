//! The worker pool of the ring transports ([`super::ring`], [`super::devring`]): threads
//! for the requests that may wait for something other than the engine (a lock's holder,
//! a relay's peer), which must not stall a ring thread. Owns those threads and the
//! channel that feeds them.

use std::io;
use std::sync::{Arc, mpsc};
use std::thread::{Scope, ScopedJoinHandle};

use parking_lot::Mutex;

/// Starts `n` (at least one) workers named `{name}{i}` in `sc`, each taking jobs from one
/// channel and handing them to `serve`, until every sender of the returned one is gone.
/// Their handles go to `handles` (also those started before a failure).
pub(super) fn start<'scope, 'env, T: Send + 'env>(
    sc: &'scope Scope<'scope, 'env>,
    n: usize,
    name: &str,
    serve: impl Fn(T) + Send + Sync + 'env,
    handles: &mut Vec<ScopedJoinHandle<'scope, io::Result<()>>>,
) -> io::Result<mpsc::Sender<T>> {
    let (tx, rx) = mpsc::channel::<T>();
    let rx = Arc::new(Mutex::new(rx));
    let serve = Arc::new(serve);
    for i in 0..n.max(1) {
        let (rx, serve) = (rx.clone(), serve.clone());
        let worker = move || -> io::Result<()> {
            loop {
                let next = rx.lock().recv();
                match next {
                    Ok(job) => serve(job),
                    Err(_) => return Ok(()),
                }
            }
        };
        handles.push(std::thread::Builder::new().name(format!("{name}{i}")).spawn_scoped(sc, worker)?);
    }
    Ok(tx)
}
