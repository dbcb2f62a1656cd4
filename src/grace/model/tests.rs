//! The grace model's unit tests, kept beside it so that model.rs holds only the
//! pure model (and stays under the 800-line limit): estimates, decisions and tuning
//! from scripted samples, no I/O and no clock.

use super::*;

fn s(ms: u64, image: &str, at_ms: u64) -> Sample {
    Sample {
        ms,
        image: image.into(),
        at_ms,
    }
}

fn image(size: u64) -> ImageFacts {
    ImageFacts {
        reference: "big:1".into(),
        id: "sha256:aaaaaaaaaaaaaaaa".into(),
        size,
        has_healthcheck: false,
        compressed: false,
    }
}

/// Margin 1.5 and five samples: the numbers these tests were written
/// with (the first suggestion), kept so the arithmetic reads easily.
fn margin_1_5_five_samples() -> GraceConfig {
    GraceConfig {
        margin: 1.5,
        min_samples: 5,
        ..GraceConfig::default()
    }
}

#[test]
fn defaults_leave_room_under_the_1_5_p95_target() {
    let cfg = GraceConfig::default();
    assert_eq!(
        (cfg.margin, cfg.min_samples, cfg.samples_kept),
        (1.4, 10, 50)
    );
}

fn inputs<'a>(cold: &'a [Sample], warm: &'a [Sample], size: u64) -> GraceInputs<'a> {
    GraceInputs {
        last_image: last_image(cold, warm),
        setting: GraceSetting::Auto,
        declared: Duration::from_secs(10),
        image: Ok(image(size)),
        cold,
        warm,
        failure_window: Duration::from_secs(3),
    }
}

#[test]
fn p95_is_nearest_rank() {
    let d: Vec<Duration> = (1..=100).map(Duration::from_secs).collect();
    assert_eq!(p95(&d), Some(Duration::from_secs(95)));
    let d: Vec<Duration> = (1..=9).map(Duration::from_secs).collect();
    assert_eq!(p95(&d), Some(Duration::from_secs(9)));
    assert_eq!(p95(&[]), None);
    assert_eq!(p95(&[Duration::from_secs(4)]), Some(Duration::from_secs(4)));
}

#[test]
fn size_model_follows_the_coefficients() {
    let cfg = GraceConfig::default();
    assert_eq!(size_model(&cfg, 500_000_000), None);
    // 14.2 GB: 10 s + 16 s × 14.2 = 237.2 s -> 238 s.
    assert_eq!(
        size_model(&cfg, 14_200_000_000),
        Some(Duration::from_secs(238))
    );
    let d = decide(&cfg, "agent", &inputs(&[], &[], 14_200_000_000));
    assert_eq!(d.period, Duration::from_secs(238));
    assert_eq!(d.source, GraceSource::ImageSize);
    assert_eq!(d.next_start, Some(StartKind::Cold));
    assert!(d.reasons[0].contains("14.2 GB → 238 s"), "{:?}", d.reasons);
}

#[test]
fn warm_starts_are_learned_apart_from_cold_ones() {
    let cfg = margin_1_5_five_samples();
    let img = "sha256:aaaaaaaaaaaaaaaa";
    let cold: Vec<Sample> = (0..5).map(|i| s(200_000 + i * 10_000, img, i)).collect();
    // Four warm samples: not enough; the warm start is taken as a cold one.
    let warm: Vec<Sample> = (0..4).map(|i| s(20_000, img, 100 + i)).collect();
    let d = decide(&cfg, "a", &inputs(&cold, &warm, 14_200_000_000));
    assert_eq!(d.next_start, Some(StartKind::Warm));
    // cold p95 240 s × 1.5 − 3 s = 357 s.
    assert_eq!(d.period, Duration::from_secs(357));
    assert_eq!(d.source, GraceSource::Learned);
    // A fifth warm sample: warm starts are learned, size no longer counts.
    let warm: Vec<Sample> = (0..5).map(|i| s(20_000, img, 100 + i)).collect();
    let d = decide(&cfg, "a", &inputs(&cold, &warm, 14_200_000_000));
    // 20 s × 1.5 − 3 s = 27 s.
    assert_eq!(d.period, Duration::from_secs(27));
    assert_eq!(d.learned.as_ref().unwrap().kind, StartKind::Warm);
    assert!(
        d.reasons[0].contains("5 warm samples, p95 20 s × 1.5 − 3 s failure window → 27 s"),
        "{:?}",
        d.reasons
    );
    // A new image ID makes the next start cold again.
    let mut other = inputs(&cold, &warm, 14_200_000_000);
    other.image = Ok(ImageFacts {
        id: "sha256:bbbbbbbbbbbbbbbb".into(),
        ..image(14_200_000_000)
    });
    let d = decide(&cfg, "a", &other);
    assert_eq!(d.next_start, Some(StartKind::Cold));
    assert_eq!(d.period, Duration::from_secs(357));
}

#[test]
fn declared_is_a_floor_and_the_learned_term_never_undercuts_p95() {
    let cfg = margin_1_5_five_samples();
    let img = "sha256:aaaaaaaaaaaaaaaa";
    let warm: Vec<Sample> = (0..5).map(|i| s(4_000, img, i)).collect();
    let d = decide(&cfg, "a", &inputs(&[], &warm, 1_000));
    // 4 s × 1.5 − 3 s = 3 s < p95: the learned term is 4 s; declared 10 s wins.
    assert_eq!(d.learned.as_ref().unwrap().period, Duration::from_secs(4));
    assert_eq!(d.period, Duration::from_secs(10));
    assert_eq!(d.source, GraceSource::Declared);
}

#[test]
fn fixed_off_and_uninspectable_images() {
    let cfg = GraceConfig::default();
    let mut i = inputs(&[], &[], 20_000_000_000);
    i.setting = GraceSetting::Fixed(Duration::from_secs(45));
    assert_eq!(decide(&cfg, "a", &i).period, Duration::from_secs(45));
    i.setting = GraceSetting::Off;
    assert_eq!(decide(&cfg, "a", &i).period, Duration::ZERO);
    i.setting = GraceSetting::Auto;
    i.image = Err(ImageError::Absent {
        reference: "no such image".into(),
    });
    let d = decide(&cfg, "a", &i);
    assert_eq!(d.period, Duration::from_secs(10));
    assert_eq!(d.next_start, None);
    assert!(
        d.reasons[0].contains("cannot be inspected"),
        "{:?}",
        d.reasons
    );
}

#[test]
fn config_file_is_validated_with_field_names() {
    let parse = |yaml: &str| {
        let file: GraceFile = serde_saphyr::from_str(yaml).unwrap();
        GraceConfig::from_file(&file)
    };
    for (yaml, field) in [
        ("margin: 0.8\n", "grace.margin (line 1)"),
        ("margin: abc\n", "grace.margin (line 1)"),
        ("min_samples: 0\n", "grace.min_samples"),
        (
            "min_samples: 10\nsamples_kept: 5\n",
            "grace.samples_kept (line 2)",
        ),
        ("size_base: ten seconds\n", "grace.size_base"),
        ("size_per_gb: 5\n", "grace.size_per_gb"),
        ("size_min_gb: -1\n", "grace.size_min_gb"),
    ] {
        let e = parse(yaml).unwrap_err().to_string();
        assert!(e.starts_with(field), "{yaml}: {e}");
    }
    let cfg = parse("margin: 2\nsize_per_gb: 20s\nmin_samples: 3\n").unwrap();
    assert_eq!(cfg.margin, 2.0);
    assert_eq!(cfg.min_samples, 3);
    assert_eq!(cfg.size_per_gb, Duration::from_secs(20));
    assert_eq!(cfg.size_base, GraceConfig::default().size_base);
}
