//! The results schema `qtfs-perf/1` (see `perf/README.md`), its computed fields (best,
//! spread, noise flag, ratios, targets) and the markdown report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::machine::Machine;

/// Rounds whose spread exceeds this many percent are flagged as noisy.
pub const NOISY_PCT: f64 = 15.0;

/// One system measured in a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct System {
    pub name: String,
    /// `measured`, `limit`, `peer` or `anchor`.
    pub role: String,
    pub detail: String,
}

impl System {
    pub fn new(name: &str, role: &str, detail: &str) -> System {
        System { name: name.into(), role: role.into(), detail: detail.into() }
    }
}

/// How the run was made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Method {
    pub rounds: u32,
    pub order: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub notes: String,
}

/// A target from an issue: `ratio` must be ≥ `min` (or ≤ `max`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub ratio: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub met: bool,
}

/// One case (workload × metric) with every system's rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    pub case: String,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub values: BTreeMap<String, Vec<f64>>,
    pub best: BTreeMap<String, f64>,
    pub spread_pct: BTreeMap<String, f64>,
    pub noisy: bool,
    pub ratios: BTreeMap<String, f64>,
    pub targets: Vec<Target>,
    /// Extra per-system figures (latency percentiles, RSS …), best round.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, BTreeMap<String, f64>>,
}

impl CaseResult {
    pub fn new(case: &str, metric: &str, unit: &str, higher_is_better: bool) -> CaseResult {
        CaseResult {
            case: case.into(),
            metric: metric.into(),
            unit: unit.into(),
            higher_is_better,
            values: BTreeMap::new(),
            best: BTreeMap::new(),
            spread_pct: BTreeMap::new(),
            noisy: false,
            ratios: BTreeMap::new(),
            targets: Vec::new(),
            extra: BTreeMap::new(),
        }
    }

    /// Adds one round's value for `system`.
    pub fn add(&mut self, system: &str, v: f64) {
        self.values.entry(system.into()).or_default().push(v);
    }

    /// Records an extra figure of `system` (kept from the best round by the caller).
    pub fn extra(&mut self, system: &str, key: &str, v: f64) {
        self.extra.entry(system.into()).or_default().insert(key.into(), v);
    }

    fn better(&self, a: f64, b: f64) -> bool {
        if self.higher_is_better { a > b } else { a < b }
    }

    /// Computes best, spread, noise, the ratios `A/B` asked for, and the targets.
    pub fn finish(&mut self, ratios: &[(&str, &str)], targets: &[(&str, Option<f64>, Option<f64>)]) {
        self.best.clear();
        self.spread_pct.clear();
        for (sys, vals) in &self.values {
            let mut best = vals[0];
            for &v in vals {
                if self.better(v, best) {
                    best = v;
                }
            }
            let (mn, mx) = vals.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let spread = if best.abs() > 0.0 { (mx - mn) / best.abs() * 100.0 } else { 0.0 };
            self.best.insert(sys.clone(), best);
            self.spread_pct.insert(sys.clone(), round2(spread));
        }
        self.noisy = self.spread_pct.values().any(|&s| s > NOISY_PCT);
        self.ratios.clear();
        for (a, b) in ratios {
            if let (Some(x), Some(y)) = (self.best.get(*a), self.best.get(*b))
                && *y != 0.0
            {
                self.ratios.insert(format!("{a}/{b}"), round3(x / y));
            }
        }
        self.targets = targets
            .iter()
            .map(|(r, min, max)| {
                let v = self.ratios.get(*r).copied();
                let met = v.is_some_and(|v| min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m));
                Target { ratio: (*r).into(), min: *min, max: *max, met }
            })
            .collect();
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub schema: String,
    pub suite: String,
    pub date: String,
    pub commit: String,
    pub machine: Machine,
    pub method: Method,
    pub systems: Vec<System>,
    pub results: Vec<CaseResult>,
}

impl Results {
    pub fn new(suite: &str, method: Method, systems: Vec<System>) -> Results {
        Results {
            schema: "qtfs-perf/1".into(),
            suite: suite.into(),
            date: crate::machine::utc_now_rfc3339(),
            commit: crate::machine::git_commit(),
            machine: Machine::probe(),
            method,
            systems,
            results: Vec::new(),
        }
    }

    /// `perf/results/<date>-<machine>-<suite>` (without extension).
    pub fn stem(&self, dir: &Path) -> PathBuf {
        let day = &self.date[..10.min(self.date.len())];
        dir.join(format!("{day}-{}-{}", self.machine.hostname, self.suite))
    }

    /// Writes `<stem>.json` and `<stem>.md`; returns their paths.
    pub fn write(&self, dir: &Path, charts: &[PathBuf]) -> std::io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let stem = self.stem(dir);
        let json = stem.with_extension("json");
        let md = stem.with_extension("md");
        std::fs::write(&json, serde_json::to_string_pretty(self).map_err(std::io::Error::other)? + "\n")?;
        std::fs::write(&md, self.markdown(charts))?;
        Ok((json, md))
    }

    /// A table a person reads in ten seconds: best value per system and the ratios.
    pub fn summary_table(&self) -> String {
        let mut systems: Vec<&str> = Vec::new();
        for r in &self.results {
            for s in r.best.keys() {
                if !systems.contains(&s.as_str()) {
                    systems.push(s);
                }
            }
        }
        let mut out = String::new();
        out.push_str("| case | unit |");
        for s in &systems {
            out.push_str(&format!(" {s} |"));
        }
        out.push_str(" ratios | targets |\n|---|---|");
        for _ in &systems {
            out.push_str("---|");
        }
        out.push_str("---|---|\n");
        for r in &self.results {
            out.push_str(&format!("| {}{} | {} |", r.case, if r.noisy { " ⚠" } else { "" }, r.unit));
            for s in &systems {
                match r.best.get(*s) {
                    Some(v) => out.push_str(&format!(" {} |", human(*v))),
                    None => out.push_str(" — |"),
                }
            }
            let ratios: Vec<String> = r.ratios.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
            let targets: Vec<String> = r
                .targets
                .iter()
                .map(|t| {
                    let bound = match (t.min, t.max) {
                        (Some(m), _) => format!("≥ {m}"),
                        (_, Some(m)) => format!("≤ {m}"),
                        _ => String::new(),
                    };
                    format!("{} {} {}", t.ratio, bound, if t.met { "✔" } else { "✘" })
                })
                .collect();
            out.push_str(&format!(" {} | {} |\n", ratios.join(", "), targets.join(", ")));
        }
        out
    }

    pub fn markdown(&self, charts: &[PathBuf]) -> String {
        let mut md = format!(
            "# {} — {}\n\nCommit `{}`, {} ({} CPUs, {}, kernel {}).\n\nMethod: {} round(s), {} order, {} s per case{}.\n\n",
            self.suite,
            self.date,
            self.commit,
            self.machine.hostname,
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.kernel,
            self.method.rounds,
            self.method.order,
            self.method.duration_s,
            if self.method.notes.is_empty() { String::new() } else { format!("; {}", self.method.notes) }
        );
        md.push_str("Systems:\n\n");
        for s in &self.systems {
            md.push_str(&format!("- **{}** ({}): {}\n", s.name, s.role, s.detail));
        }
        md.push_str("\n## Summary\n\n");
        md.push_str(&self.summary_table());
        md.push_str(&format!(
            "\n⚠ = the rounds of some system differ by more than {NOISY_PCT} %: treat that ratio with care.\n"
        ));
        let extras: Vec<&CaseResult> = self.results.iter().filter(|r| !r.extra.is_empty()).collect();
        if !extras.is_empty() {
            md.push_str("\n## Details\n\n| case | system | figures |\n|---|---|---|\n");
            for r in extras {
                for (sys, kv) in &r.extra {
                    let f: Vec<String> = kv.iter().map(|(k, v)| format!("{k} {}", human(*v))).collect();
                    md.push_str(&format!("| {} | {} | {} |\n", r.case, sys, f.join(", ")));
                }
            }
        }
        if !charts.is_empty() {
            md.push_str("\n## Charts\n\n");
            for c in charts {
                let name = c.file_name().and_then(|n| n.to_str()).unwrap_or("chart.svg");
                md.push_str(&format!("![{name}]({name})\n\n"));
            }
        }
        md
    }
}

/// Short human form of a number (3 significant digits, k/M suffixes).
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_spread_ratios_targets() {
        let mut c = CaseResult::new("4k-read", "iops", "IOPS", true);
        c.add("ours", 100.0);
        c.add("ours", 80.0);
        c.add("limit", 120.0);
        c.add("limit", 119.0);
        c.finish(&[("ours", "limit")], &[("ours/limit", Some(0.8), None), ("ours/limit", Some(0.9), None)]);
        assert_eq!(c.best["ours"], 100.0);
        assert_eq!(c.spread_pct["ours"], 20.0);
        assert!(c.noisy);
        assert_eq!(c.ratios["ours/limit"], 0.833);
        assert!(c.targets[0].met);
        assert!(!c.targets[1].met);
        // Lower is better for latency: best is the minimum.
        let mut l = CaseResult::new("pingpong", "p50", "µs", false);
        l.add("a", 30.0);
        l.add("a", 20.0);
        l.finish(&[], &[]);
        assert_eq!(l.best["a"], 20.0);
    }

    #[test]
    fn report_mentions_every_system() {
        let mut r =
            Results::new("unit", Method { rounds: 1, ..Default::default() }, vec![System::new("a", "measured", "x")]);
        let mut c = CaseResult::new("case", "m", "u", true);
        c.add("a", 1.0);
        c.add("b", 2.0);
        c.finish(&[("a", "b")], &[]);
        r.results.push(c);
        let t = r.summary_table();
        assert!(t.contains("| a |") && t.contains("a/b 0.50"));
        let json = serde_json::to_string(&r).unwrap();
        let back: Results = serde_json::from_str(&json).unwrap();
        assert_eq!(back.results[0].ratios["a/b"], 0.5);
    }
}
