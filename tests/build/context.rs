//! What `muster build` sends and applies: `.dockerignore` (a large file is
//! not sent), build args with interpolation and bare keys, target stages,
//! an inline Dockerfile, labels and extra tags on the image.

use crate::support::build::{inspect_image, run_in, BuildStack, BUSYBOX};
use crate::support::text;

#[test]
fn dockerignore_keeps_a_large_file_out_of_the_context() {
    let s = BuildStack::new("ignore");
    s.write(
        "app/Dockerfile",
        &format!(
            "FROM {BUSYBOX}\n{}\nCOPY . /ctx\nRUN test ! -e /ctx/big.bin && test ! -e /ctx/logs/a.log && test -e /ctx/logs/keep.log && test -e /ctx/src/main.txt\n",
            s.label()
        ),
    );
    s.write("app/src/main.txt", "code");
    s.write("app/logs/a.log", "noise");
    s.write("app/logs/keep.log", "kept");
    s.write(
        "app/.dockerignore",
        "# not sent\n/big.bin\nlogs/**\n!logs/keep.log\n",
    );
    // 500 MB, sparse on disk; the tar would carry every byte of it.
    let big = std::fs::File::create(s.path().join("app/big.bin")).expect("create big file");
    big.set_len(500 * 1024 * 1024).expect("size big file");
    s.compose("services:\n  app:\n    build: ./app\n");

    let out = s.muster(&["--json", "build", "--progress", "quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json output is JSON");
    let built = &report["built"][0];
    assert_eq!(built["service"], "app");
    assert_eq!(built["image"], format!("{}-app", s.name()));
    let sent = built["context_bytes"].as_u64().expect("context_bytes");
    assert!(sent < 1024 * 1024, "the context held {sent} bytes");
    assert_eq!(
        built["context_files"], 4,
        "Dockerfile, .dockerignore, main.txt, keep.log"
    );
    let id = inspect_image(&format!("{}-app", s.name()), "{{.Id}}").expect("image built");
    assert_eq!(built["id"], id);
}

#[test]
fn args_are_interpolated_and_bare_keys_come_from_the_environment() {
    let s = BuildStack::new("args");
    s.write(
        "Dockerfile",
        &format!(
            "FROM {BUSYBOX}\n{}\nARG FROM_FILE\nARG BARE\nARG UNSET_BARE=default\nRUN printf '%s|%s|%s' \"$FROM_FILE\" \"$BARE\" \"$UNSET_BARE\" > /args\n",
            s.label()
        ),
    );
    s.compose(
        "services:\n  app:\n    build:\n      context: .\n      args:\n        FROM_FILE: v-${VERSION:-none}\n        BARE:\n        UNSET_BARE:\n",
    );
    let out = s.muster_env(&["build"], &[("VERSION", "7"), ("BARE", "from-env")]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("app     | Step 1/"),
        "plain progress per service: {stderr}"
    );
    let args = run_in(&format!("{}-app", s.name()), &["cat", "/args"]);
    assert_eq!(
        args, "v-7|from-env|default",
        "a bare key with no value is not passed"
    );
}

#[test]
fn target_inline_dockerfile_labels_and_tags() {
    let s = BuildStack::new("target");
    let tag = format!("{}-extra:v1", s.name());
    let label = s.label();
    s.compose(&format!(
        r#"services:
  staged:
    image: {name}-staged:1
    build:
      context: .
      target: first
      dockerfile_inline: |
        FROM {BUSYBOX} AS first
        {label}
        RUN echo first > /stage
        FROM first AS second
        RUN echo second > /stage
      labels:
        team.owner: agents
      tags: ["{tag}"]
  scratchy:
    build:
      context: ./bin
      dockerfile_inline: |
        FROM scratch
        {label}
        COPY hello.txt /hello.txt
"#,
        name = s.name()
    ));
    s.write("bin/hello.txt", "hi");
    let out = s.muster(&["build", "--progress", "quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("staged") && stdout.contains("scratchy"),
        "{stdout}"
    );

    let staged = format!("{}-staged:1", s.name());
    assert_eq!(
        run_in(&staged, &["cat", "/stage"]).trim(),
        "first",
        "target stage"
    );
    assert_eq!(
        inspect_image(&staged, "{{index .Config.Labels \"team.owner\"}}").as_deref(),
        Some("agents")
    );
    assert_eq!(
        inspect_image(&tag, "{{.Id}}"),
        inspect_image(&staged, "{{.Id}}"),
        "the extra tag names the same image"
    );
    let scratchy = format!("{}-scratchy", s.name());
    assert!(
        inspect_image(&scratchy, "{{.Id}}").is_some(),
        "a FROM scratch image from an inline Dockerfile"
    );
}
