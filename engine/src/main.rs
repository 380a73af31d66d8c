//! `engine`: the qtfs HOST server. See `engine --help`.

use std::process::ExitCode;

use clap::Parser;
use qtfs_engine::config::{Cli, from_cli};
use qtfs_engine::{Engine, StartOptions};

fn main() -> ExitCode {
    let parsed = from_cli(Cli::parse());
    let Some((cfg, set_log_level)) = qtfs_daemon::configure("engine", parsed, |c| c.log_level, "io_uring=warn") else {
        return ExitCode::from(2);
    };
    if cfg.psk.is_none() {
        let keyless: Vec<String> = cfg.listen.iter().map(|a| a.to_string()).collect();
        if cfg.insecure_remote {
            // config::from_cli allowed listeners other machines reach: say so as loudly as
            // a log can, on every line of the banner.
            for _ in 0..3 {
                tracing::error!(
                    listen = %keyless.join(","),
                    "*** INSECURE, REACHABLE FROM OTHER MACHINES: --insecure-allow-remote without --psk-file; \
                     ANYONE who reaches these listeners acts with the DPU's full power, unauthenticated ***"
                );
            }
        } else if cfg.insecure {
            tracing::warn!(
                listen = %keyless.join(","),
                "*** INSECURE TEST MODE: clients connect WITHOUT authentication (loopback and unix listeners only) ***"
            );
        }
    }
    if cfg.ids.is_identity() {
        tracing::info!(
            "identities: requests run with the uid/gid the DPU claims, 0 included \
             (see --root-squash, --map-uid, --allow-uids)"
        );
    }
    for e in &cfg.export_ids {
        tracing::info!(
            path = %String::from_utf8_lossy(&e.path),
            policy = ?e.ids,
            "identities of the exports at or beneath this path (--export-policy)"
        );
    }
    let set = qtfs_daemon::block_signals();
    let opts = StartOptions { set_log_level, on_core_start: None };
    let listen: Vec<String> = cfg.listen.iter().map(|a| a.to_string()).collect();
    let cores = cfg.cores;
    let admin = cfg.admin_socket.clone();
    let mut engine = match Engine::start(cfg, opts) {
        Ok(e) => e,
        Err(e) => return qtfs_daemon::start_failed("engine", e),
    };
    let bound: Vec<String> = engine.addrs().iter().map(|a| a.to_string()).collect();
    tracing::info!(
        cores,
        listen = %if bound.is_empty() { listen.join(",") } else { bound.join(",") },
        admin = %admin.map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        "engine ready"
    );
    let sig = qtfs_daemon::wait_signal(&set);
    tracing::info!(signal = sig, "shutting down: finishing in-flight requests");
    engine.stop();
    tracing::info!("engine stopped");
    ExitCode::SUCCESS
}
