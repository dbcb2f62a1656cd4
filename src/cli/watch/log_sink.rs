//! Where muster's own log lines go while `status --watch` owns the terminal.
//!
//! The tracing subscriber writes to stderr, which is the same terminal: a
//! warning printed there would draw over the full-screen view and stay until
//! the next full redraw. So while the view is up, each formatted line is kept
//! here instead (the last [`KEPT`]); the view shows the newest one in its
//! status bar, and the lines are printed to stderr once the terminal is
//! restored. Outside the view every line goes straight to stderr.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Lines kept while the view is up.
const KEPT: usize = 50;

static ON_SCREEN: AtomicBool = AtomicBool::new(false);
static KEPT_LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The subscriber's writer: one per log event.
pub enum LogWriter {
    Stderr(std::io::Stderr),
    /// The event's bytes, kept on drop.
    Kept(Vec<u8>),
}

/// For `tracing_subscriber::fmt().with_writer(...)`.
pub fn writer() -> LogWriter {
    if ON_SCREEN.load(Ordering::Relaxed) {
        LogWriter::Kept(Vec::new())
    } else {
        LogWriter::Stderr(std::io::stderr())
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LogWriter::Stderr(e) => e.write(buf),
            LogWriter::Kept(v) => {
                v.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LogWriter::Stderr(e) => e.flush(),
            LogWriter::Kept(_) => Ok(()),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if let LogWriter::Kept(bytes) = self {
            let text = String::from_utf8_lossy(bytes).trim_end().to_string();
            if text.is_empty() {
                return;
            }
            let mut kept = KEPT_LINES.lock().unwrap_or_else(|p| p.into_inner());
            kept.push(text);
            let excess = kept.len().saturating_sub(KEPT);
            kept.drain(..excess);
        }
    }
}

/// The view is up: keep log lines from now on.
pub fn hold() {
    ON_SCREEN.store(true, Ordering::Relaxed);
}

/// The view is gone: log lines go to stderr again, and those kept meanwhile
/// are printed there now.
pub fn release() {
    ON_SCREEN.store(false, Ordering::Relaxed);
    let kept = std::mem::take(&mut *KEPT_LINES.lock().unwrap_or_else(|p| p.into_inner()));
    let mut err = std::io::stderr();
    for line in kept {
        let _ = writeln!(err, "{line}");
    }
}

/// The newest line kept while the view is up, for its status bar (colour
/// codes removed).
pub fn latest() -> Option<String> {
    let kept = KEPT_LINES.lock().unwrap_or_else(|p| p.into_inner());
    kept.last().map(|line| plain(line))
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn colour_codes_are_dropped() {
        assert_eq!(
            super::plain("\u{1b}[33m WARN\u{1b}[0m muster: slow"),
            " WARN muster: slow"
        );
    }
}
