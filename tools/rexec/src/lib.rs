//! # qtfs-rexec — remote execution for the DPU offload
//!
//! `rexec BINARY [ARGS...]` runs on the DPU (typically as libvirt's `qemu-kvm`
//! trampoline) and makes `rexec_server` on the HOST run BINARY with the same argv,
//! environment, working directory and descriptors (stdio and inherited pipes relayed as
//! streams, regular files reopened by path, listening unix sockets relayed connection by
//! connection). Output, signals, exit status and lifetime stay tied to the local `rexec`
//! process, and a transport drop is survived by reattaching within a grace period.
//!
//! Modules: [`link`] (session framing, acknowledgement, retransmission), [`relay`]
//! (streams and flow control), [`client`] (rexec), [`server`] (rexec_server), [`pidfile`]
//! (`/var/run/rexec/pids`), [`sys`] (every system call), [`error`].

pub mod client;
pub mod error;
pub mod link;
pub mod pidfile;
pub mod relay;
pub mod server;
pub mod sys;

pub use error::{Error, Result};

/// Logging for both commands: `REXEC_LOG_FILE=std` logs to stderr, any other value
/// appends to that file; unset: rexec logs nothing (it must never disturb the relayed
/// output), rexec_server logs to stderr. `RUST_LOG` sets the level (default info).
pub fn init_logging(default_stderr: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match std::env::var("REXEC_LOG_FILE") {
        Ok(v) if v != "std" => {
            if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(&v) {
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::sync::Mutex::new(f))
                    .with_ansi(false)
                    .try_init();
            }
        }
        Ok(_) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(sys::isatty(2))
                .try_init();
        }
        Err(_) if default_stderr => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(sys::isatty(2))
                .try_init();
        }
        Err(_) => {}
    }
}
