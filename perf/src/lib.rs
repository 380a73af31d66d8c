//! # qtfs-perf — measuring qtfs-rs against its limits and its peers
//!
//! Shared by every benchmark binary of `perf/`: the results schema of `perf/README.md`
//! ([`results`]), facts about the machine ([`machine`]), PNG charts ([`chart`]), and
//! helpers that start the project's own daemons ([`procs`]). Benchmarks report ratios
//! against baselines measured in the same run; absolute numbers are kept but never
//! quoted alone.

pub mod chart;
pub mod machine;
pub mod procs;
pub mod results;

pub use results::{CaseResult, Results, System, Target};
