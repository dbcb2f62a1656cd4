//! `muster rollout SERVICE --image REF` pulls REF before the first batch,
//! with progress; a failed pull fails the rollout before anything is stopped.

use crate::support::registry::{image_present, Registry};
use crate::support::{text, Muster, BUSYBOX_IMAGE};
use crate::{local_name, pushed, Stack};

fn container_ids(stack: &Stack) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", &stack.project.label_filter()])
        .output()
        .expect("docker ps");
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

#[test]
fn rollout_pulls_the_new_image_before_the_first_batch() {
    crate::support::ensure_test_images();
    let registry = Registry::start();
    let (image, _guard) = pushed(&registry, &local_name("roll"), "muster/web:2", 2 << 20, 1);
    let stack = Stack::new("pullroll", &[("web", BUSYBOX_IMAGE, "")]);
    let out = stack.muster(Muster::new(), &["up"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = container_ids(&stack);
    assert_eq!(before.len(), 1);

    // A tag the registry does not have: refused, nothing stopped.
    let missing = registry.image("muster/web:nope");
    let out = stack.muster(Muster::new(), &["rollout", "web", "--image", &missing]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    for needle in [
        "service web",
        "manifest unknown",
        "nothing was changed",
        missing.as_str(),
    ] {
        assert!(all.contains(needle), "{all} lacks {needle:?}");
    }
    assert_eq!(container_ids(&stack), before);

    let out = stack.muster(Muster::new(), &["rollout", "web", "--image", &image]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("pulled {image}")), "{all}");
    assert!(image_present(&image));
    let after = container_ids(&stack);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "the container was replaced");
}
