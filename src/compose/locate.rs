//! Where a setting was written, for errors found after a stack was loaded
//! (a probe whose CA file cannot be read, a key file that holds no key): the
//! position of a path such as `services.cache.x-muster.probes[0].redis.key_file`
//! in the files the stack was read from.

use std::path::PathBuf;
use std::sync::Arc;

use super::yaml::{self, Node, Pos, Value};

/// One step of a path: a mapping key or a list index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The position of the deepest node along `path` that some file of `files`
/// has, when a file has at least the first `at_least` steps. Of files that
/// reach the same depth the later wins (it overrides the earlier, as the
/// merge does). A key step points at the key itself. Files that cannot be
/// read or parsed any more are skipped: this only adds a line to an error.
pub fn locate(files: &[PathBuf], path: &[Step<'_>], at_least: usize) -> Option<Pos> {
    let mut best: Option<(usize, Pos)> = None;
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let name: Arc<str> = Arc::from(file.display().to_string());
        let Ok(root) = yaml::parse(&text, &name) else {
            continue;
        };
        if let Some((depth, pos)) = walk(&root, path) {
            if depth >= at_least && best.as_ref().is_none_or(|(d, _)| depth >= *d) {
                best = Some((depth, pos));
            }
        }
    }
    best.map(|(_, pos)| pos)
}

/// How many steps of `path` `root` has, and the position of the last one.
fn walk(root: &Node, path: &[Step<'_>]) -> Option<(usize, Pos)> {
    let mut node = root;
    let mut reached = None;
    for (depth, step) in path.iter().enumerate() {
        let (next, pos) = match (step, &node.value) {
            (Step::Key(key), Value::Map(entries)) => {
                match entries.iter().find(|(k, _)| k.name == *key) {
                    Some((k, v)) => (v, k.pos.clone()),
                    None => break,
                }
            }
            (Step::Index(i), Value::Seq(items)) => match items.get(*i) {
                Some(item) => (item, item.pos.clone()),
                None => break,
            },
            _ => break,
        };
        node = next;
        reached = Some((depth + 1, pos));
    }
    reached
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_deepest_step_in_the_file_that_has_it() {
        let dir = std::env::temp_dir().join(format!("muster-locate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("compose.yaml");
        let over = dir.join("compose.override.yaml");
        std::fs::write(
            &base,
            "services:\n  cache:\n    image: redis\n    x-muster:\n      probes:\n        - redis:\n            url: rediss://cache\n            key_file: /k.pem\n",
        )
        .unwrap();
        std::fs::write(&over, "services:\n  cache:\n    image: redis:7\n").unwrap();
        let path = [
            Step::Key("services"),
            Step::Key("cache"),
            Step::Key("x-muster"),
            Step::Key("probes"),
            Step::Index(0),
            Step::Key("redis"),
            Step::Key("key_file"),
        ];
        let files = [base.clone(), over.clone()];
        let pos = locate(&files, &path, 5).expect("found");
        assert_eq!(
            (pos.file.as_ref(), pos.line, pos.col),
            (base.display().to_string().as_str(), 8, 13)
        );
        // A field that is not written: the probe kind's key.
        let mut missing = path;
        missing[6] = Step::Key("cert_file");
        let pos = locate(&files, &missing, 5).expect("found");
        assert_eq!((pos.line, pos.col), (6, 11));
        // Not deep enough anywhere: nothing.
        assert!(locate(&files, &[Step::Key("services"), Step::Key("db")], 2).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
