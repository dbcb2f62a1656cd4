//! The "Done when" check: `muster config --json` on compose-go's
//! `loader/full-example.yml` (rewritten as tests/fixtures/compose/full-example/
//! compose.yaml, with stubs for what it names but does not define) carries
//! the fields of compose-go v2.10.1's `fullExampleJSON`
//! (loader/full-struct_test.go) with the same values.
//!
//! expected.json is fullExampleJSON with `${DIR}` for the working directory,
//! minus the fields muster does not carry yet, each listed in the README's
//! "Still different from Docker Compose": `container_name` and `network_mode` (the original sets them against
//! replicas and networks, which Compose's own consistency check refuses; the
//! compose-go test skips it), and the `~/configs` and `~/config_data` sources (home-relative paths, written
//! here as paths the test controls). `deploy.resources.reservations.generic_resources`
//! is in expected.json as fullExampleJSON has it (types.GenericResource), so
//! are `label_file` (example1.label and example2.label, the files of
//! compose-go's loader directory with the same lines) and the labels they add, and
//! so are the secrets' and configs' `mode: "0440"` (types.FileMode's
//! MarshalJSON writes the octal string, not the number). Everything else in
//! fullExampleJSON is in expected.json and must be in muster's output with
//! the same value; muster may print more (the stubs, `x-*` service keys).

use std::path::PathBuf;

use serde_json::Value;

use crate::support::Muster;

/// `expected` is contained in `actual`: every key of an object with an equal
/// (contained) value, arrays of the same length element by element.
fn contains(actual: &Value, expected: &Value, path: &str, missing: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => contains(av, ev, &p, missing),
                    None => missing.push(format!("{p}: missing (expected {ev})")),
                }
            }
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
            for (i, (av, ev)) in a.iter().zip(e).enumerate() {
                contains(av, ev, &format!("{path}[{i}]"), missing);
            }
        }
        (a, e) if a == e => {}
        (a, e) => missing.push(format!("{path}: {a} != expected {e}")),
    }
}

#[test]
fn config_json_carries_every_field_of_compose_go_s_full_example_json() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose/full-example");
    let mut cmd = Muster::new().dir(&dir);
    cmd.env("QUX", "qux_from_environment")
        .env("BAR", "value-of-secret4")
        .env_remove("FOO")
        .env_remove("COMPOSE_PROJECT_NAME");
    let out = cmd.run(&["config", "--json", "-f", "compose.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("value-of-secret4"),
        "a secret's value is never printed"
    );
    let actual: Value = serde_json::from_str(&text).expect("JSON");
    let expected_text = std::fs::read_to_string(dir.join("expected.json"))
        .expect("expected.json")
        .replace("${DIR}", &dir.display().to_string());
    let expected: Value = serde_json::from_str(&expected_text).expect("expected JSON");
    let mut missing = Vec::new();
    contains(&actual, &expected, "", &mut missing);
    assert!(
        missing.is_empty(),
        "differs from fullExampleJSON:\n{}",
        missing.join("\n")
    );
    // The top level in compose-go's JSON order (sorted, Project.MarshalJSON),
    // a service's fields in ServiceConfig order.
    assert!(text.starts_with("{\n  \"configs\": {"), "{text}");
    let foo = text.find("\n    \"foo\": {").expect("service foo");
    let at = |key: &str| {
        text[foo..]
            .find(&format!("\n      \"{key}\": "))
            .unwrap_or(usize::MAX)
    };
    let order = [
        "build",
        "cap_add",
        "cgroup_parent",
        "command",
        "configs",
        "depends_on",
        "hostname",
        "healthcheck",
        "image",
        "working_dir",
    ];
    let positions: Vec<usize> = order.iter().map(|k| at(k)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{order:?} at {positions:?}"
    );
}
