//! The build context as a tar stream: the context directory walked on a
//! blocking task, `.dockerignore` applied, each entry written by the `tar`
//! crate into a writer that hands 256 KiB chunks to a bounded channel, which
//! is the HTTP request body of `POST /build`.
//!
//! Why streamed: contexts of the stacks muster runs hold model files and
//! datasets of many GB; holding the tar in memory (or in a temp file) would
//! cost that much RAM (or disk and time) before the engine sees a byte. With
//! a channel of 8 chunks, at most about 2 MiB are in flight and the engine
//! reads while the walk goes on.
//!
//! As the Docker CLI does: owners are 0:0, symlinks are sent as links (never
//! followed out of the context), sockets and fifos are left out, and an
//! excluded directory is not walked unless an exception may re-include
//! something below it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::ignore::IgnoreRules;

/// Bytes per chunk handed to the request body.
const CHUNK: usize = 256 * 1024;
/// Chunks buffered between the walk and the engine.
const IN_FLIGHT: usize = 8;

/// What to send: the directory, its rules, and files added under a name of
/// their own (an inline Dockerfile, or one from outside the context).
#[derive(Debug, Clone)]
pub struct ContextSpec {
    pub root: PathBuf,
    pub rules: IgnoreRules,
    pub extra: Vec<(String, Vec<u8>)>,
}

/// What was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextStats {
    /// Bytes of the tar stream (what the engine received).
    pub bytes: u64,
    /// Regular files in it.
    pub files: u64,
}

/// The chunks of the tar stream, in order; an `Err` ends a failed walk.
pub type Chunks = mpsc::Receiver<Result<Bytes, io::Error>>;
/// The walk: what was sent, or why it stopped.
pub type Sender = tokio::task::JoinHandle<Result<ContextStats, io::Error>>;

/// Starts sending: the receiver yields the chunks (for the request body);
/// the handle ends with what was sent, or the error that stopped the walk.
pub fn stream(spec: ContextSpec) -> (Chunks, Sender) {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let handle = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
            sent: 0,
        };
        let result = write_tar(&spec, &mut writer);
        match result {
            Ok(files) => {
                writer.flush()?;
                Ok(ContextStats {
                    bytes: writer.sent,
                    files,
                })
            }
            Err(e) => {
                // The request must fail, not end as if the context were complete.
                let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    });
    (rx, handle)
}

struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
    sent: u64,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.sent += chunk.len() as u64;
        self.tx.blocking_send(Ok(Bytes::from(chunk))).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the engine stopped reading the build context",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Writes the whole archive; returns the number of regular files.
fn write_tar(spec: &ContextSpec, out: &mut ChannelWriter) -> io::Result<u64> {
    let mut tar = tar::Builder::new(out);
    let mut files = 0;
    walk(spec, &spec.root, "", &mut tar, &mut files)?;
    for (name, data) in &spec.extra {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        tar.append_data(&mut h, name, data.as_slice())?;
        files += 1;
    }
    tar.into_inner()?.flush()?;
    Ok(files)
}

fn walk(
    spec: &ContextSpec,
    dir: &Path,
    rel_dir: &str,
    tar: &mut tar::Builder<&mut ChannelWriter>,
    files: &mut u64,
) -> io::Result<()> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(|e| with_path(e, dir))?
        .collect::<Result<_, _>>()
        .map_err(|e| with_path(e, dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(path = %entry.path().display(), "file name is not UTF-8; left out of the build context");
            continue;
        };
        let rel = if rel_dir.is_empty() {
            name.to_string()
        } else {
            format!("{rel_dir}/{name}")
        };
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| with_path(e, &path))?;
        let excluded = spec.rules.excludes(&rel);
        if meta.is_dir() {
            if excluded && !spec.rules.may_reinclude_below(&rel) {
                continue;
            }
            if !excluded {
                let mut h = header(&meta);
                tar.append_data(&mut h, format!("{rel}/"), io::empty())?;
            }
            walk(spec, &path, &rel, tar, files)?;
            continue;
        }
        if excluded {
            continue;
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(|e| with_path(e, &path))?;
            let mut h = header(&meta);
            h.set_size(0);
            tar.append_link(&mut h, &rel, &target)?;
        } else if meta.is_file() {
            let file = File::open(&path).map_err(|e| with_path(e, &path))?;
            let mut h = header(&meta);
            tar.append_data(&mut h, &rel, file)?;
            *files += 1;
        }
        // Sockets, fifos and devices are not part of a build context.
    }
    Ok(())
}

/// A header from the file's metadata, owned by root as the Docker CLI sends it.
fn header(meta: &fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_uid(0);
    h.set_gid(0);
    // Empty names cannot fail to fit.
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the whole stream back and lists the entry names.
    async fn names(spec: ContextSpec) -> (Vec<String>, ContextStats) {
        let (mut rx, handle) = stream(spec);
        let mut data = Vec::new();
        while let Some(chunk) = rx.recv().await {
            data.extend_from_slice(&chunk.expect("chunk"));
        }
        let stats = handle.await.expect("join").expect("walk");
        assert_eq!(stats.bytes, data.len() as u64);
        let mut archive = tar::Archive::new(data.as_slice());
        let mut out = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            assert_eq!(entry.header().uid().expect("uid"), 0);
            out.push(entry.path().expect("path").display().to_string());
        }
        (out, stats)
    }

    #[tokio::test]
    async fn the_stream_holds_what_the_rules_leave_in() {
        let dir = std::env::temp_dir().join(format!("muster-ctx-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("src/deep")).expect("mkdir");
        fs::create_dir_all(dir.join("target/debug")).expect("mkdir");
        for f in [
            "Dockerfile",
            "src/main.rs",
            "src/deep/x.rs",
            "target/debug/big",
            "notes.md",
            "README.md",
        ] {
            fs::write(dir.join(f), f).expect("write");
        }
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).expect("symlink");
        let rules = IgnoreRules::parse("target\n*.md\n!README.md\n").expect("rules");
        let (names, stats) = names(ContextSpec {
            root: dir.clone(),
            rules,
            extra: vec![(".muster.Dockerfile".into(), b"FROM scratch\n".to_vec())],
        })
        .await;
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(
            names,
            vec![
                "Dockerfile",
                "README.md",
                "link",
                "src/",
                "src/deep/",
                "src/deep/x.rs",
                "src/main.rs",
                ".muster.Dockerfile"
            ]
        );
        assert_eq!(stats.files, 5);
    }
}
