//! Builds inside `muster up`: a missing image is built, `up --build` rebuilds
//! and recreates the container because the image ID changed (the config hash
//! did not), `muster ps` shows the new image ID, and `up --no-build` with a
//! missing image fails naming the flag.

use crate::support::build::{inspect_image, BuildStack, BUSYBOX};
use crate::support::text;

fn ps(s: &BuildStack) -> serde_json::Value {
    let out = s.muster(&["--json", "ps"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ps --json");
    rows[0].clone()
}

#[test]
fn up_builds_a_missing_image_and_up_build_recreates_after_a_change() {
    let s = BuildStack::new("upbuild");
    s.write(
        "app/Dockerfile",
        &format!(
            "FROM {BUSYBOX}\n{}\nCOPY version.txt /version.txt\nCMD [\"sleep\", \"600\"]\n",
            s.label()
        ),
    );
    s.write("app/version.txt", "1");
    s.compose("services:\n  app:\n    build: ./app\n    stop_grace_period: 1s\n");
    let image = format!("{}-app", s.name());

    let out = s.muster(&["up", "--wait-timeout", "90s"]);
    assert!(
        out.status.success(),
        "first up builds the missing image: {}",
        text(&out)
    );
    let first_image = inspect_image(&image, "{{.Id}}").expect("image built by up");
    let first = ps(&s);
    assert_eq!(first["image_id"], first_image.as_str());
    let ps_text = text(&s.muster(&["ps"]));
    assert!(
        ps_text.contains("IMAGE ID") && ps_text.contains(&first_image[..19]),
        "ps shows the image ID: {ps_text}"
    );

    // A change in the context: a plain `up` keeps what runs (the image is there).
    s.write("app/version.txt", "2");
    let out = s.muster(&["up", "--wait-timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ps(&s)["id"], first["id"], "no rebuild without --build");

    let out = s.muster(&["up", "--build", "--wait-timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let second_image = inspect_image(&image, "{{.Id}}").expect("image rebuilt");
    assert_ne!(second_image, first_image, "the rebuild made a new image");
    let second = ps(&s);
    assert_ne!(second["id"], first["id"], "the container was recreated");
    assert_eq!(second["image_id"], second_image.as_str());
    // The old image lost its name; remove it with the project's images.
    let _ = std::process::Command::new("docker")
        .args(["image", "rm", "-f", &first_image])
        .output();
}

#[test]
fn up_no_build_with_a_missing_image_fails_and_names_the_flag() {
    let s = BuildStack::new("nobuild");
    s.write("Dockerfile", &format!("FROM {BUSYBOX}\n{}\n", s.label()));
    s.compose("services:\n  app:\n    build: .\n");
    let out = s.muster(&["up", "--no-build", "--wait-timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains(&format!(
            "image {}-app is not present and --no-build forbids building it",
            s.name()
        )),
        "{all}"
    );
    assert!(
        inspect_image(&format!("{}-app", s.name()), "{{.Id}}").is_none(),
        "nothing was built"
    );
}
