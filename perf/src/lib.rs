//! # qtfs-perf — measuring qtfs-rs against its limits and its peers
//!
//! Shared by every benchmark binary of `perf/`: the results schema of `perf/README.md`
//! ([`results`]), facts about the machine ([`machine`]), SVG charts ([`chart`]), and
//! helpers that start the project's own daemons ([`procs`]). Benchmarks report ratios
//! against baselines measured in the same run; absolute numbers are kept but never
//! quoted alone.

pub mod chart;
pub mod machine;
pub mod procs;
pub mod results;

pub use results::{CaseResult, Results, System, Target};

/// The end of a harness's run: the results file and its markdown report in `out` (made if
/// missing) with every chart of the run ([`chart::draw_all`]), and the summary table and
/// the files' names on stdout. `program` names the harness in an error.
pub fn publish(results: &Results, out: &std::path::Path, program: &str) {
    let _ = std::fs::create_dir_all(out);
    let charts = chart::draw_all(results, &results.stem(out));
    match results.write(out, &charts) {
        Ok((j, m)) => {
            println!("\n{}", results.summary_table());
            println!("results: {} and {}", j.display(), m.display());
        }
        Err(e) => eprintln!("{program}: cannot write results: {e}"),
    }
}
