//! The environment of a remote command. The client is not trusted (a root client's
//! commands run as root), so the environment is handled like a setuid program's: only
//! variables on an allow-list get through, the values of the well-known ones are checked,
//! and `PATH` is always the server's fixed search path.
//!
//! A deny-list cannot work: `BASH_ENV`, `ENV`, `PATH`, `GLIBC_TUNABLES`, `LOCPATH`,
//! `NLSPATH`, `HOSTALIASES`, `PYTHONPATH`, `PERL5OPT` and many more each make some program
//! read or run a file the caller names, and every interpreter adds its own.
//!
//! The allow-list is [`DEFAULT_ALLOW`] plus the operator's names (`--env-allow NAME`,
//! `--env-allow-file FILE`); a name ending in `*` allows every name with that prefix.

use std::collections::HashSet;
use std::path::Path;

/// The search path of every remote command, and of whitelist entries given as a bare
/// name (`--path` changes it).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What ordinary commands need, and what libvirt sets for qemu (`LC_ALL=C`, `HOME`,
/// `USER`, `LOGNAME`, `TMPDIR`, `XDG_DATA_HOME`, `XDG_CONFIG_HOME`, `XDG_CACHE_HOME`;
/// `QEMU_AUDIO_DRV` and `SDL_AUDIODRIVER` for some audio and display setups). libvirt's
/// `PATH` is replaced by the fixed one, its `LD_PRELOAD`/`LD_LIBRARY_PATH` dropped.
pub const DEFAULT_ALLOW: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "QEMU_AUDIO_DRV",
    "SDL_AUDIODRIVER",
];

/// Variables whose value must be an absolute path without `..` components: a relative
/// one would be taken relative to whatever directory the command is in.
const PATH_VALUED: &[&str] = &[
    "HOME",
    "TMPDIR",
    "SHELL",
    "XDG_RUNTIME_DIR",
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
];

/// Variables whose value is a name, never a path: glibc opens a locale named with a `/`
/// as a path (outside setuid programs), ncurses a terminal description likewise.
fn name_valued(name: &[u8]) -> bool {
    name.starts_with(b"LC_") || matches!(name, b"LANG" | b"LANGUAGE" | b"TERM")
}

/// The allow-list and the fixed PATH.
#[derive(Debug, Clone)]
pub struct EnvPolicy {
    exact: HashSet<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
    /// `PATH=...`, appended to every environment.
    path_entry: Vec<u8>,
}

/// Checks a `--path` value: a colon-separated list of absolute directories (an empty or
/// relative entry would make the search depend on the working directory).
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("--path is empty".into());
    }
    match path.split(':').find(|d| !d.starts_with('/')) {
        Some(d) => Err(format!("--path: {d:?} is not an absolute directory")),
        None => Ok(()),
    }
}

/// Checks one allow-list name (`NAME` or `PREFIX*`).
fn check_name(n: &str) -> Result<(), String> {
    let stem = n.strip_suffix('*').unwrap_or(n);
    if stem.is_empty() {
        return Err(format!("{n:?}: an allow-list entry must name a variable (or a non-empty prefix)"));
    }
    if stem.contains(['=', '*', '\0']) || stem.chars().any(char::is_whitespace) {
        return Err(format!("{n:?} is not a variable name (or PREFIX*)"));
    }
    if n == "PATH" {
        return Err("PATH cannot be allowed: it is always rexec_server's --path".into());
    }
    Ok(())
}

/// Parses an `--env-allow-file`: one name (or `PREFIX*`) per line, surrounding blanks
/// ignored, empty lines and lines starting with `#` skipped.
pub fn parse_names(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        check_name(l).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push(l.to_string());
    }
    Ok(out)
}

/// Reads an `--env-allow-file`. Like the whitelist, it must not be writable by group or
/// others: it decides what reaches commands that may run as root.
pub fn load_names(path: &Path) -> Result<Vec<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = md.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o}); chmod 0400 it",
            path.display(),
            mode & 0o7777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_names(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether `v` is an absolute path without a `..` component.
fn absolute_clean(v: &[u8]) -> bool {
    v.first() == Some(&b'/') && !v.split(|&c| c == b'/').any(|c| c == b"..")
}

/// The value checks of the well-known variables (others are not checked).
fn value_ok(name: &[u8], value: &[u8]) -> bool {
    if PATH_VALUED.iter().any(|p| p.as_bytes() == name) {
        return absolute_clean(value);
    }
    if name_valued(name) {
        return !value.contains(&b'/');
    }
    if name == b"TZ" {
        // A zone name (relative to the zoneinfo directory) or a POSIX rule; a file
        // only from the system's zone database.
        let v = value.strip_prefix(b":").unwrap_or(value);
        if v.windows(2).any(|w| w == b"..") {
            return false;
        }
        return v.first() != Some(&b'/') || v.starts_with(b"/usr/share/zoneinfo/") || v == b"/etc/localtime";
    }
    true
}

impl EnvPolicy {
    /// [`DEFAULT_ALLOW`] plus `extra`; `path` is the fixed PATH (see [`check_path`]).
    pub fn new<S: AsRef<str>>(extra: &[S], path: &str) -> Result<EnvPolicy, String> {
        check_path(path)?;
        let mut exact = HashSet::new();
        let mut prefixes = Vec::new();
        for n in DEFAULT_ALLOW.iter().copied().chain(extra.iter().map(AsRef::as_ref)) {
            check_name(n)?;
            match n.strip_suffix('*') {
                Some(p) => prefixes.push(p.as_bytes().to_vec()),
                None => {
                    exact.insert(n.as_bytes().to_vec());
                }
            }
        }
        Ok(EnvPolicy { exact, prefixes, path_entry: format!("PATH={path}").into_bytes() })
    }

    /// Whether the name is on the allow-list (PATH never is).
    pub fn allows(&self, name: &[u8]) -> bool {
        name != b"PATH" && (self.exact.contains(name) || self.prefixes.iter().any(|p| name.starts_with(p)))
    }

    /// The environment a command gets from the client's `KEY=VALUE` entries: allowed
    /// variables with acceptable values, first occurrence only, in the client's order,
    /// then `PATH`. Also returns the names of what was dropped (names only: values may be
    /// secrets), marked " (bad value)" or " (repeated)" when the name itself is allowed.
    pub fn apply(&self, env: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<String>) {
        let mut out = Vec::with_capacity(env.len() + 1);
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut dropped = Vec::new();
        for e in env {
            let eq = e.iter().position(|&c| c == b'=').unwrap_or(e.len());
            let (name, value) = (&e[..eq], e.get(eq + 1..).unwrap_or(&[]));
            let shown = String::from_utf8_lossy(name);
            if !self.allows(name) {
                dropped.push(shown.into_owned());
            } else if !value_ok(name, value) {
                dropped.push(format!("{shown} (bad value)"));
            } else if !seen.insert(name) {
                dropped.push(format!("{shown} (repeated)"));
            } else {
                out.push(e.clone());
            }
        }
        out.push(self.path_entry.clone());
        (out, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn only_allowed_names_with_sane_values_pass_and_path_is_fixed() {
        let p = EnvPolicy::new(&["FOO", "MY_*"], DEFAULT_PATH).unwrap();
        let (out, dropped) = p.apply(&env(&[
            "LC_ALL=C",
            "HOME=/var/lib/libvirt/qemu/domain-1-vm",
            "BASH_ENV=/tmp/evil",
            "PATH=/tmp/evil",
            "FOO=1",
            "MY_X=2",
            "MYX=3",
            "HOME=/second",
            "TMPDIR=tmp",
            "XDG_CACHE_HOME=/a/../b",
            "LANG=../../tmp/evil",
            "TZ=Europe/Paris",
            "TERM=/tmp/evil",
            "LD_PRELOAD=/tmp/evil.so",
        ]));
        let out: Vec<String> = out.iter().map(|e| String::from_utf8_lossy(e).into_owned()).collect();
        assert_eq!(
            out,
            [
                "LC_ALL=C",
                "HOME=/var/lib/libvirt/qemu/domain-1-vm",
                "FOO=1",
                "MY_X=2",
                "TZ=Europe/Paris",
                &format!("PATH={DEFAULT_PATH}")
            ]
        );
        assert_eq!(
            dropped,
            [
                "BASH_ENV",
                "PATH",
                "MYX",
                "HOME (repeated)",
                "TMPDIR (bad value)",
                "XDG_CACHE_HOME (bad value)",
                "LANG (bad value)",
                "TERM (bad value)",
                "LD_PRELOAD"
            ]
        );
    }

    #[test]
    fn tz_files_only_from_the_zone_database() {
        assert!(value_ok(b"TZ", b":/etc/localtime"));
        assert!(value_ok(b"TZ", b"/usr/share/zoneinfo/UTC"));
        assert!(value_ok(b"TZ", b"CET-1CEST,M3.5.0,M10.5.0/3"));
        assert!(!value_ok(b"TZ", b"/tmp/zone"));
        assert!(!value_ok(b"TZ", b":/usr/share/zoneinfo/../../../tmp/zone"));
        assert!(!value_ok(b"TZ", b"../../tmp/zone"));
    }

    #[test]
    fn names_and_paths_are_validated() {
        assert!(EnvPolicy::new(&["PATH"], DEFAULT_PATH).is_err());
        assert!(EnvPolicy::new(&["*"], DEFAULT_PATH).is_err());
        assert!(EnvPolicy::new(&["A=B"], DEFAULT_PATH).is_err());
        assert!(EnvPolicy::new(&["A*B"], DEFAULT_PATH).is_err());
        assert!(EnvPolicy::new::<&str>(&[], "/usr/bin::/bin").is_err());
        assert!(EnvPolicy::new::<&str>(&[], "bin:/usr/bin").is_err());
        // A prefix pattern never reaches PATH.
        let p = EnvPolicy::new(&["PA*"], "/opt/bin").unwrap();
        assert!(p.allows(b"PAGER") && !p.allows(b"PATH"));
        assert_eq!(p.apply(&[]).0, [b"PATH=/opt/bin".to_vec()]);
        assert_eq!(parse_names("# comment\n\n  FOO  \nLD_*\n").unwrap(), ["FOO", "LD_*"]);
        assert!(parse_names("FOO BAR\n").is_err());
    }
}
