//! [`LogTail`]: the log of a child daemon a test started (the engine, rexec_server,
//! udsproxyd …). It owns the reader thread(s) that drain the child's pipe(s) line by
//! line, and the lines read so far (all of them, in order); tests ask it whether a line
//! has appeared — waiting for it, since the reader races the test — and print it in
//! failure messages. Draining the pipe also keeps the child from blocking on a full one.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, LockResult, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long [`LogTail::contains`] waits for a line.
pub const LOG_WAIT: Duration = Duration::from_secs(10);

/// The lines a child writes to its pipe(s), collected by a thread of their own.
///
/// Dropping it does not stop the reader: that ends when the pipe closes (the child
/// exits or is killed).
pub struct LogTail {
    shared: Arc<Shared>,
    tag: String,
}

struct Shared {
    lines: Mutex<Vec<String>>,
    /// Pipes still being read; changed with `lines` locked, so that a waiter that sees
    /// it at 0 has seen every line.
    readers: Mutex<usize>,
    /// Signalled on every new line and when a pipe closes.
    changed: Condvar,
}

impl LogTail {
    /// Starts collecting the lines of `pipe` (a `ChildStderr`, a `ChildStdout`, …).
    /// `tag` names the process in failure messages and in the echo; with the
    /// environment variable `echo_var` set (`QTFS_TEST_LOG`, say), every line is also
    /// written to the test's stderr as `[tag] line`.
    pub fn new(pipe: impl Read + Send + 'static, tag: &str, echo_var: &str) -> LogTail {
        let t = LogTail {
            shared: Arc::new(Shared { lines: Mutex::new(Vec::new()), readers: Mutex::new(0), changed: Condvar::new() }),
            tag: tag.to_string(),
        };
        t.also(pipe, echo_var);
        t
    }

    /// Collects the lines of another pipe of the same child (its stdout beside its
    /// stderr, say) into this log, interleaved as they are read.
    pub fn also(&self, pipe: impl Read + Send + 'static, echo_var: &str) {
        let echo = std::env::var_os(echo_var).is_some();
        let shared = self.shared.clone();
        let tag = self.tag.clone();
        *shared.readers.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        std::thread::Builder::new()
            .name(format!("log-{tag}"))
            .spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    // Not `lines()`: a line that is not UTF-8 must not end the reading
                    // (the child would then block on a full pipe).
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let mut line = String::from_utf8_lossy(&buf).into_owned();
                    if line.ends_with('\n') {
                        line.pop();
                        if line.ends_with('\r') {
                            line.pop();
                        }
                    }
                    if echo {
                        eprintln!("[{tag}] {line}");
                    }
                    shared.lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                    shared.changed.notify_all();
                }
                let _g = shared.lines.lock().unwrap_or_else(|e| e.into_inner());
                *shared.readers.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                shared.changed.notify_all();
            })
            .expect("spawn the log reader thread");
    }

    /// The name given at [`new`](Self::new).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Whether a line contains `needle`, waiting up to [`LOG_WAIT`] (10 s) for one: a
    /// line the process has already written may not have been read yet. Returns at
    /// once when every pipe has closed.
    pub fn contains(&self, needle: &str) -> bool {
        self.contains_within(needle, LOG_WAIT)
    }

    /// [`contains`](Self::contains) with its own limit.
    pub fn contains_within(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_line(timeout, |l| l.contains(needle)).is_some()
    }

    /// The first line that contains `needle`, waiting up to `timeout` for one.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_line(timeout, |l| l.contains(needle))
    }

    /// The first line for which `pred` holds, waiting up to `timeout` for one (None
    /// after that, or at once when every pipe has closed without one).
    pub fn wait_line(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = 0;
        loop {
            if let Some(l) = lines[seen..].iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            seen = lines.len();
            let now = Instant::now();
            if now >= deadline || self.closed() {
                return None;
            }
            lines = self.shared.changed.wait_timeout(lines, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// How many lines (read so far) contain `needle`; does not wait.
    pub fn count(&self, needle: &str) -> usize {
        self.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|l| l.contains(needle)).count()
    }

    /// How many lines have been read so far.
    pub fn len(&self) -> usize {
        self.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the lines read so far; does not wait.
    pub fn lines(&self) -> Vec<String> {
        self.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The lines read so far, one per line, for failure messages; does not wait.
    pub fn text(&self) -> String {
        let lines = self.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = String::new();
        for l in lines.iter() {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// The lines themselves, locked (the reader waits meanwhile): spelled like
    /// `Mutex::lock`, so that `log.lock().unwrap()` reads as it did when the log was an
    /// `Arc<Mutex<Vec<String>>>`.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, Vec<String>>> {
        self.shared.lines.lock()
    }

    /// Whether every pipe has closed (the child exited, and no other process holds
    /// them): nothing more will come.
    pub fn closed(&self) -> bool {
        *self.shared.readers.lock().unwrap_or_else(|e| e.into_inner()) == 0
    }
}

/// The lines read so far, as a list.
impl std::fmt::Debug for LogTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.lock().unwrap_or_else(|e| e.into_inner()).iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn waits_for_a_line_and_keeps_all() {
        let (mut w, r) = UnixStream::pair().unwrap();
        let log = LogTail::new(r, "t", "QTFS_TEST_LOG_UNSET_VAR");
        assert!(!log.contains_within("ready", Duration::from_millis(50)));
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            w.write_all(b"one\r\ntwo \xff\nthe engine ready listen=x\n").unwrap();
            w
        });
        assert!(log.contains("ready"), "waited for the line");
        assert_eq!(log.wait_for("listen=", Duration::ZERO).as_deref(), Some("the engine ready listen=x"));
        assert_eq!(log.lines(), ["one", "two \u{fffd}", "the engine ready listen=x"]);
        assert_eq!(log.count("o"), 2);
        assert_eq!(log.len(), 3);
        assert_eq!(log.text(), "one\ntwo \u{fffd}\nthe engine ready listen=x\n");
        assert_eq!(log.lock().unwrap().len(), 3);
        assert!(!log.closed());
        drop(h.join().unwrap());
        // The pipe closed: a missing line is answered at once, not after the wait.
        let t0 = Instant::now();
        assert!(!log.contains("absent"));
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(log.closed());
        assert_eq!(format!("{log:?}"), "[\"one\", \"two \u{fffd}\", \"the engine ready listen=x\"]");
    }

    #[test]
    fn two_pipes_into_one_log() {
        let (mut w1, r1) = UnixStream::pair().unwrap();
        let (mut w2, r2) = UnixStream::pair().unwrap();
        let log = LogTail::new(r1, "t", "QTFS_TEST_LOG_UNSET_VAR");
        log.also(r2, "QTFS_TEST_LOG_UNSET_VAR");
        w1.write_all(b"err\n").unwrap();
        w2.write_all(b"out").unwrap();
        drop(w2);
        assert!(log.contains("out"), "an unterminated last line counts");
        assert!(log.contains("err"));
        assert!(!log.closed(), "one pipe is still open");
        drop(w1);
        assert!(crate::wait_until(Duration::from_secs(5), || log.closed()));
    }
}
