//! `engine`: the qtfs HOST server. See `engine --help`.

use std::process::ExitCode;

use clap::Parser;
use qtfs_engine::config::{Cli, from_cli};
use qtfs_engine::{Engine, StartOptions};
use qtfs_proto::consts;
use tracing_subscriber::{EnvFilter, reload};

fn filter_for(level: u32) -> EnvFilter {
    let l = match level {
        consts::LOG_NONE => "off",
        consts::LOG_ERROR => "error",
        consts::LOG_WARN => "warn",
        consts::LOG_INFO => "info",
        _ => "debug",
    };
    EnvFilter::new(format!("{l},io_uring=warn"))
}

/// Blocks SIGINT/SIGTERM in every thread (inherited) and returns the set, so that the
/// main thread can wait for them synchronously.
fn block_signals() -> libc::sigset_t {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (cfg, notes) = match from_cli(cli) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("engine: {e}");
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
    let set = block_signals();
    let opts = StartOptions {
        set_log_level: Box::new(move |l| {
            let _ = handle.reload(filter_for(l));
        }),
        on_core_start: None,
    };
    let listen: Vec<String> = cfg.listen.iter().map(|a| a.to_string()).collect();
    let cores = cfg.cores;
    let admin = cfg.admin_socket.clone();
    let mut engine = match Engine::start(cfg, opts) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("engine: {e}");
            return ExitCode::from(1);
        }
    };
    let bound: Vec<String> = engine.addrs().iter().map(|a| a.to_string()).collect();
    tracing::info!(
        cores,
        listen = %if bound.is_empty() { listen.join(",") } else { bound.join(",") },
        admin = %admin.map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        "engine ready"
    );
    let mut sig: libc::c_int = 0;
    // SAFETY: waits for one of the blocked signals in `set`.
    unsafe { libc::sigwait(&set, &mut sig) };
    tracing::info!(signal = sig, "shutting down: finishing in-flight requests");
    engine.stop();
    tracing::info!("engine stopped");
    ExitCode::SUCCESS
}
