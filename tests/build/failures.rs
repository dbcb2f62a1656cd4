//! What a failed build says: the service, the Dockerfile line and step, the
//! failed step's whole output; exit 1; nothing that depends on it started.
//! A Dockerfile syntax error and a missing context directory are named by
//! file and line too.

use crate::support::build::{BuildStack, BUSYBOX};
use crate::support::text;

fn containers(project: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Label \"com.docker.compose.service\"}}",
            "--filter",
        ])
        .arg(format!("label=com.docker.compose.project={project}"))
        .output()
        .expect("run docker");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_failing_run_step_names_service_line_and_step_with_its_output_and_blocks_dependents() {
    let s = BuildStack::new("failrun");
    s.write(
        "broken/Dockerfile",
        &format!(
            "FROM {BUSYBOX}\n{}\n# the next step fails\nRUN echo preparing && \\\n    echo 'first line of the failure' && echo 'second line' && exit 3\nRUN echo never\n",
            s.label()
        ),
    );
    s.compose(&format!(
        "services:\n  broken:\n    build: ./broken\n  web:\n    image: {BUSYBOX}\n    command: [\"sleep\", \"60\"]\n    depends_on: [broken]\n"
    ));

    let out = s.muster(&["build", "--progress", "quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dockerfile = s.path().join("broken/Dockerfile");
    assert!(
        stderr.contains(&format!(
            "service broken: build failed at {}:4 (step 3/",
            dockerfile.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("returned a non-zero code: 3"), "{stderr}");
    for line in ["preparing", "first line of the failure", "second line"] {
        assert!(
            stderr.contains(line),
            "the step's output is in the error: {stderr}"
        );
    }

    let out = s.muster(&["up", "--wait-timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("first line of the failure"), "{all}");
    assert!(all.contains("blocked"), "web is blocked: {all}");
    assert!(
        containers(s.name()).is_empty(),
        "no container was created for a failed build or its dependent"
    );
}

#[test]
fn a_dockerfile_syntax_error_names_its_line() {
    let s = BuildStack::new("syntax");
    s.write(
        "Dockerfile",
        &format!("FROM {BUSYBOX}\n{}\nFORM typo\n", s.label()),
    );
    s.compose("services:\n  app:\n    build: .\n");
    let out = s.muster(&["build"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "service app: build failed at {}:3",
            s.path().join("Dockerfile").display()
        )) && stderr.contains("unknown instruction: FORM"),
        "{stderr}"
    );
}

#[test]
fn a_missing_context_directory_is_named_with_file_line_and_field() {
    let s = BuildStack::new("noctx");
    let file = s.compose("services:\n  app:\n    build:\n      context: ./nowhere\n");
    let out = s.muster(&["build"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:5:16: services.app.build.context: build context {} does not exist",
            file.display(),
            s.path().join("nowhere").display()
        )),
        "{stderr}"
    );
    let s2 = BuildStack::new("gitctx");
    let file = s2.compose("services:\n  app:\n    build: https://github.com/example/app.git\n");
    let out = s2.muster(&["build"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:4:12: services.app.build.context:",
            file.display()
        )) && stderr.contains("muster builds from a local directory only"),
        "{stderr}"
    );
}
