//! Container logs through the Engine API, for `muster logs` and the log pane
//! of `muster status --watch`.
//!
//! Why a module of its own: the engine's multiplexed log frames are not
//! lines. A frame can hold part of a line (the engine splits lines longer
//! than 16 KiB) or several lines (a TTY container's console stream), so a
//! `name-1  | ` prefix written per frame would land mid-line. [`LineSplitter`]
//! turns frames into whole lines, per stream, and is pure so that rule is
//! tested without a container. `--since` parsing ([`parse_since`]) is here
//! too, next to the one call that uses it.

use std::collections::VecDeque;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use super::client::{Engine, EngineError};

/// What to ask of one container's log.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Keep the stream open for new lines until the container stops.
    pub follow: bool,
    /// Only lines written at or after this Unix time (seconds).
    pub since: Option<i64>,
    /// Only the last N lines (of what `since` leaves); `None` = all.
    pub tail: Option<u64>,
    /// Prefix each line with the engine's RFC 3339 timestamp.
    pub timestamps: bool,
}

/// Which of the container's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One whole line of a container's output, without its line end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: LogStream,
    pub text: String,
}

/// Joins log frames into whole lines, one buffer per stream (stdout and
/// stderr frames interleave, and each may end mid-line).
#[derive(Debug, Default)]
pub struct LineSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LineSplitter {
    /// Adds one frame; returns the lines it completed.
    pub fn push(&mut self, stream: LogStream, bytes: &[u8]) -> Vec<LogLine> {
        let buffer = match stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        };
        buffer.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let rest = buffer.split_off(end + 1);
            let mut line = std::mem::replace(buffer, rest);
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(LogLine {
                stream,
                text: String::from_utf8_lossy(&line).into_owned(),
            });
        }
        lines
    }

    /// What is left when the stream ends: a last line without a line end.
    pub fn finish(&mut self) -> Vec<LogLine> {
        let mut lines = Vec::new();
        for (stream, buffer) in [
            (LogStream::Stdout, &mut self.stdout),
            (LogStream::Stderr, &mut self.stderr),
        ] {
            if !buffer.is_empty() {
                let line = std::mem::take(buffer);
                lines.push(LogLine {
                    stream,
                    text: String::from_utf8_lossy(&line).into_owned(),
                });
            }
        }
        lines
    }
}

/// `--since` as Compose takes it: a Go duration back from `now_s` (`42m`,
/// `1h30m`), an RFC 3339 time (`2026-12-07T03:20:00Z`), or Unix seconds.
/// Returns Unix seconds; the error names the value and the accepted forms.
/// A `--since` value that is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinceError {
    #[error("{0:?} is out of range")]
    OutOfRange(String),
    #[error("{0:?} is not a time: give a duration back from now (42m, 1h30m), an RFC 3339 time (2026-12-07T03:20:00Z) or Unix seconds")]
    NotATime(String),
}

pub fn parse_since(text: &str, now_s: i64) -> Result<i64, SinceError> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        if secs >= 0 {
            return Ok(secs);
        }
    }
    if let Some(ns) = super::parse_rfc3339_ns(text) {
        return i64::try_from(ns / 1_000_000_000)
            .map_err(|_| SinceError::OutOfRange(text.to_string()));
    }
    match crate::duration::parse(text) {
        Ok(back) => {
            let back = i64::try_from(back.as_secs()).unwrap_or(i64::MAX);
            Ok(now_s.saturating_sub(back).max(0))
        }
        Err(_) => Err(SinceError::NotATime(text.to_string())),
    }
}

impl Engine {
    /// The log of container `id` as whole lines. The stream ends with the
    /// log (or, with `follow`, when the container stops); errors are yielded.
    pub fn container_logs(
        &self,
        id: &str,
        query: &LogQuery,
    ) -> impl Stream<Item = Result<LogLine, EngineError>> + Send + 'static {
        let options = LogsOptions {
            follow: query.follow,
            stdout: true,
            stderr: true,
            since: query
                .since
                .map(|s| i32::try_from(s).unwrap_or(i32::MAX))
                .unwrap_or(0),
            until: 0,
            timestamps: query.timestamps,
            tail: query
                .tail
                .map(|n| n.to_string())
                .unwrap_or_else(|| "all".to_string()),
        };
        let id = id.to_string();
        let frames = self.docker().logs(&id, Some(options)).boxed();
        struct State {
            frames:
                futures_util::stream::BoxStream<'static, Result<LogOutput, bollard::errors::Error>>,
            splitter: LineSplitter,
            ready: VecDeque<Result<LogLine, EngineError>>,
            ended: bool,
            id: String,
        }
        let state = State {
            frames,
            splitter: LineSplitter::default(),
            ready: VecDeque::new(),
            ended: false,
            id,
        };
        futures_util::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(item) = s.ready.pop_front() {
                    return Some((item, s));
                }
                if s.ended {
                    return None;
                }
                match s.frames.next().await {
                    Some(Ok(frame)) => {
                        let (stream, bytes) = match frame {
                            LogOutput::StdErr { message } => (LogStream::Stderr, message),
                            LogOutput::StdOut { message }
                            | LogOutput::Console { message }
                            | LogOutput::StdIn { message } => (LogStream::Stdout, message),
                        };
                        s.ready
                            .extend(s.splitter.push(stream, &bytes).into_iter().map(Ok));
                    }
                    Some(Err(e)) => {
                        s.ended = true;
                        s.ready.extend(s.splitter.finish().into_iter().map(Ok));
                        let short: String = s.id.chars().take(12).collect();
                        s.ready.push_back(Err(EngineError::api(
                            format!("read the log of container {short}"),
                            e,
                        )));
                    }
                    None => {
                        s.ended = true;
                        s.ready.extend(s.splitter.finish().into_iter().map(Ok));
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn frames_become_whole_lines_per_stream() {
        let mut s = LineSplitter::default();
        assert!(s.push(LogStream::Stdout, b"hel").is_empty());
        // stderr between the halves of a stdout line does not cut it.
        assert_eq!(texts(&s.push(LogStream::Stderr, b"oops\n")), ["oops"]);
        let lines = s.push(LogStream::Stdout, b"lo\r\nsecond\nthi");
        assert_eq!(texts(&lines), ["hello", "second"]);
        assert!(lines.iter().all(|l| l.stream == LogStream::Stdout));
        assert_eq!(texts(&s.finish()), ["thi"]);
        assert!(s.finish().is_empty());
    }

    #[test]
    fn since_takes_durations_times_and_seconds() {
        let now = 1_800_000_000;
        assert_eq!(parse_since("42m", now), Ok(now - 42 * 60));
        assert_eq!(parse_since("1h30m", now), Ok(now - 5400));
        assert_eq!(parse_since("1700000000", now), Ok(1_700_000_000));
        assert_eq!(parse_since("2026-12-07T03:20:00Z", now), Ok(1_796_613_600));
        let err = parse_since("yesterday", now).unwrap_err().to_string();
        assert!(
            err.contains("\"yesterday\"") && err.contains("42m"),
            "{err}"
        );
    }
}
