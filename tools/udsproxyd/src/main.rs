//! `udsproxyd`: the DPU end of the unix-socket proxy. See `udsproxyd --help`.

use std::process::ExitCode;

use clap::Parser;
use qtfs_proto::consts;
use qtfs_udsproxyd::config::{Cli, from_cli};
use qtfs_udsproxyd::{Daemon, sys};
use tracing_subscriber::{EnvFilter, reload};

fn filter_for(level: u32) -> EnvFilter {
    let l = match level {
        consts::LOG_NONE => "off",
        consts::LOG_ERROR => "error",
        consts::LOG_WARN => "warn",
        consts::LOG_INFO => "info",
        _ => "debug",
    };
    EnvFilter::new(l)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (cfg, notes) = match from_cli(cli) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("udsproxyd: {e}");
            return ExitCode::from(2);
        }
    };
    let (filter, handle) = reload::Layer::new(filter_for(cfg.log_level));
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .init();
    for n in &notes {
        tracing::warn!("{n}");
    }
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
    let set = sys::block_signals();
    let socket = cfg.socket.clone();
    let admin = cfg.admin_socket.clone();
    let server = cfg.server.to_string();
    let set_level = Box::new(move |l| {
        let _ = handle.reload(filter_for(l));
    });
    let mut d = match Daemon::start(cfg, set_level) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("udsproxyd: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(server = %server, socket = %socket.display(), admin = %admin.display(), "udsproxyd ready");
    let sig = sys::wait_signal(&set);
    tracing::info!(signal = sig, "shutting down");
    d.stop();
    ExitCode::SUCCESS
}
