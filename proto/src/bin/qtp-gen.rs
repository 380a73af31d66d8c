//! Regenerates qtp.h, the golden-test table, the golden vectors and PROTOCOL.md tables.
//!
//! Usage: `cargo run -p qtfs-proto --bin qtp-gen [--check]`

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let check = std::env::args().any(|a| a == "--check");
    let files = match qtfs_proto::codegen::generated_files(root) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("qtp-gen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = 0;
    for (path, want) in files {
        if std::fs::read(&path).map(|have| have == want).unwrap_or(false) {
            continue;
        }
        stale += 1;
        if check {
            println!("stale: {}", path.display());
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).expect("create dir");
            }
            std::fs::write(&path, want).expect("write");
            println!("wrote {}", path.display());
        }
    }
    if check && stale > 0 {
        eprintln!("{stale} generated files are stale: run `cargo run -p qtfs-proto --bin qtp-gen`");
        return ExitCode::FAILURE;
    }
    if stale == 0 {
        println!("all generated files are up to date");
    }
    ExitCode::SUCCESS
}
