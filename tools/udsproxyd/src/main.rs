//! `udsproxyd`: the DPU end of the unix-socket proxy. See `udsproxyd --help`.

use std::process::ExitCode;

use clap::Parser;
use qtfs_udsproxyd::config::{Cli, from_cli};
use qtfs_udsproxyd::{Daemon, sys};

fn main() -> ExitCode {
    let parsed = from_cli(Cli::parse());
    let Some((cfg, set_level)) = qtfs_daemon::configure("udsproxyd", parsed, |c| c.log_level, "") else {
        return ExitCode::from(2);
    };
    if cfg.insecure && cfg.psk.is_none() {
        tracing::warn!("*** INSECURE TEST MODE: the engine connection is not authenticated ***");
    }
    // The request socket is 0666 by design; everything else we create stays private.
    sys::umask(0o077);
    // One socket per channel (the original raised its limit to 65536 too).
    let nofile = sys::raise_nofile(65536);
    if nofile < 4096 {
        tracing::warn!(limit = nofile, "descriptor limit is low: at most about that many channels");
    }
    let set = qtfs_daemon::block_signals();
    let socket = cfg.socket.clone();
    let admin = cfg.admin_socket.clone();
    let server = cfg.server.to_string();
    let mut d = match Daemon::start(cfg, set_level) {
        Ok(d) => d,
        Err(e) => return qtfs_daemon::start_failed("udsproxyd", e),
    };
    tracing::info!(server = %server, socket = %socket.display(), admin = %admin.display(), "udsproxyd ready");
    let sig = qtfs_daemon::wait_signal(&set);
    tracing::info!(signal = sig, "shutting down");
    d.stop();
    ExitCode::SUCCESS
}
