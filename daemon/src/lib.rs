//! # qtfs-daemon — the plumbing every qtfs daemon has, written once
//!
//! - [`init_logging`]: tracing to stderr at a QTP log level (`consts::LOG_*`), changeable
//!   at run time (`qtinfo -l`), so every daemon logs alike; [`configure`] and
//!   [`start_failed`], how every daemon's `main` begins and how it gives up; [`cli`], the
//!   command-line pieces the daemons read alike.
//! - [`block_signals`] / [`wait_signal`]: SIGINT and SIGTERM blocked in every thread and
//!   awaited synchronously by the main thread (no handler runs in a random thread);
//!   SIGPIPE ignored, so a peer that goes away is an EPIPE, not a death.
//! - [`admin`]: the admin socket (`qtcfg`/`qtinfo`): bind, accept with back-off, one
//!   thread per connection, the requests decoded, checked and answered alike; the daemon
//!   supplies only its state ([`admin::Admin`]).
//!
//! Owns no daemon's behaviour: configuration, the state behind the admin answers and the
//! serving loops live in the daemons (`engine`, `udsproxyd`).

use std::fmt::Display;
use std::process::ExitCode;

use qtfs_proto::consts;
use tracing_subscriber::{EnvFilter, reload};

pub mod admin;
pub mod cli;

/// The tracing filter for a QTP log level; `extra` adds directives (e.g. "io_uring=warn").
pub fn filter_for(level: u32, extra: &str) -> EnvFilter {
    let l = match level {
        consts::LOG_NONE => "off",
        consts::LOG_ERROR => "error",
        consts::LOG_WARN => "warn",
        consts::LOG_INFO => "info",
        _ => "debug",
    };
    if extra.is_empty() { EnvFilter::new(l) } else { EnvFilter::new(format!("{l},{extra}")) }
}

/// Sets up logging to stderr (colours only on a terminal) at `level` and returns the
/// function that changes the level later (the admin socket's ADMIN_LOG_LEVEL).
pub fn init_logging(level: u32, extra: &'static str) -> SetLevel {
    use tracing_subscriber::prelude::*;
    let (filter, handle) = reload::Layer::new(filter_for(level, extra));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .init();
    Box::new(move |l| {
        let _ = handle.reload(filter_for(l, extra));
    })
}

/// The function that changes the log level at run time ([`init_logging`]).
pub type SetLevel = Box<dyn Fn(u32) + Send + Sync>;

/// How every daemon's `main` begins: `parsed` is its command line turned into a
/// configuration and notes (its `config::from_cli`). An error is said on stderr as
/// `name: error` and gives `None` (the daemon exits with status 2); otherwise logging
/// starts at the level `level` reads from the configuration (`extra` as for
/// [`filter_for`]), each note is logged as a warning, and the configuration comes back
/// with the function that changes the level later.
pub fn configure<C, E: Display>(
    name: &str,
    parsed: Result<(C, Vec<String>), E>,
    level: fn(&C) -> u32,
    extra: &'static str,
) -> Option<(C, SetLevel)> {
    let (cfg, notes) = match parsed {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{name}: {e}");
            return None;
        }
    };
    let set_level = init_logging(level(&cfg), extra);
    for n in &notes {
        tracing::warn!("{n}");
    }
    Some((cfg, set_level))
}

/// A daemon that could not start: logs and says `e` on stderr as `name: e`; the exit
/// status is 1.
pub fn start_failed(name: &str, e: impl Display) -> ExitCode {
    tracing::error!("cannot start: {e}");
    eprintln!("{name}: {e}");
    ExitCode::from(1)
}

/// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts later, and
/// ignores SIGPIPE; returns the set for [`wait_signal`]. Call before starting threads.
pub fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set; pthread_sigmask on the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        set
    }
}

/// Waits for one of the signals of `set` (blocked by [`block_signals`]); returns it.
pub fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: waits for a blocked signal of `set`; `sig` is a valid out pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}
