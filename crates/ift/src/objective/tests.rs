use super::*;

fn parse(text: &str) -> Result<Objective, FieldError> {
    Objective::from_table(text.parse::<toml::Table>().unwrap())
}

#[test]
fn missing_kind_is_sft_and_existing_ift_keys_still_read() {
    assert_eq!(parse("").unwrap(), Objective::default());
    let o = parse("kind = \"ift\"\nlambda = 0.3\ngamma = 0.9\nprediction = \"topk\"\ntop_k = 2")
        .unwrap();
    let Objective::Ift(p) = o else {
        panic!("{o:?}")
    };
    assert_eq!(
        (p.lambda, p.gamma, p.prediction),
        (Lambda::Static(0.3), 0.9, Prediction::TopK { k: 2 })
    );
}

/// Each kind's keys are its options type's fields (issue 28: no hand-kept
/// list); these are the keys `docs/config.md` documents.
#[test]
fn each_kind_accepts_its_options_keys() {
    let want: [(ObjectiveKind, &[&str]); 7] = [
        (ObjectiveKind::Sft, &["normalize"]),
        (ObjectiveKind::Orpo, &["beta"]),
        (
            ObjectiveKind::Simpo,
            &["beta", "gamma_beta_ratio", "label_smoothing", "sft_weight"],
        ),
        (
            ObjectiveKind::Dpo,
            &[
                "beta",
                "label_smoothing",
                "loss_type",
                "sft_weight",
                "reference",
                "reference_free",
            ],
        ),
        (
            ObjectiveKind::Tdpo,
            &["beta", "alpha", "variant", "sft_weight", "reference"],
        ),
        (
            ObjectiveKind::Kto,
            &[
                "beta",
                "desirable_weight",
                "undesirable_weight",
                "sft_weight",
                "reference",
                "reference_free",
            ],
        ),
        (
            ObjectiveKind::Ift,
            &[
                "normalize",
                "lambda",
                "lambda_schedule",
                "min_lambda",
                "max_lambda",
                "lambda_warmup_steps",
                "lambda_disturb",
                "disturb_std",
                "gamma",
                "propagation_type",
                "propagation_side",
                "propagation_norm",
                "propagation",
                "detach_weights",
                "prediction",
                "top_k",
                "top_p",
                "temperature",
                "embedding_grad",
            ],
        ),
    ];
    for (kind, keys) in want {
        let mut got = kind.keys();
        let mut keys = keys.to_vec();
        got.sort();
        keys.sort();
        assert_eq!(got, keys, "{}", kind.name());
    }
}

/// Every key of every objective, given to every other objective that lacks it,
/// is an error naming the key, its own kind and the kind given.
#[test]
fn a_key_of_another_objective_is_rejected_naming_both() {
    for owner in ObjectiveKind::ALL {
        for key in owner.keys() {
            for other in ObjectiveKind::ALL
                .into_iter()
                .filter(|k| !k.keys().contains(&key))
            {
                let text = format!("kind = \"{}\"\n{key} = 1", other.name());
                let e = parse(&text).unwrap_err();
                assert_eq!(e.field, format!("objective.{key}"), "{text}");
                assert!(
                    e.message.contains(&format!("`{}`", owner.name())),
                    "{text}: {}",
                    e.message
                );
                assert!(
                    e.message.contains(&format!("not of `{}`", other.name())),
                    "{text}: {}",
                    e.message
                );
            }
        }
    }
}

#[test]
fn unknown_key_and_unknown_kind_are_named() {
    let e = parse("kind = \"dpo\"\nbetta = 0.1").unwrap_err();
    assert_eq!(e.field, "objective.betta");
    assert!(
        e.message.contains("unknown key for objective kind `dpo`"),
        "{}",
        e.message
    );
    let e = parse("kind = \"rlhf\"").unwrap_err();
    assert_eq!(e.field, "objective.kind");
    assert!(
        e.message.contains("sft, ift, dpo, orpo, simpo, tdpo, kto"),
        "{}",
        e.message
    );
    let e = parse("kind = \"dpo\"\nloss_type = \"squared\"").unwrap_err();
    assert_eq!(e.field, "objective.loss_type");
    assert!(
        e.message.contains("unknown variant `squared`"),
        "{}",
        e.message
    );
}

#[test]
fn out_of_range_values_name_key_value_and_range() {
    for (text, field, range) in [
        ("kind = \"ift\"\nlambda = 1.5", "objective.lambda", "[0, 1]"),
        ("kind = \"ift\"\ngamma = -0.1", "objective.gamma", "[0, 1]"),
        (
            "kind = \"ift\"\nprediction = \"nucleus\"\ntemperature = 0.0",
            "objective.temperature",
            "> 0",
        ),
        (
            "kind = \"ift\"\nprediction = \"nucleus\"\ntop_p = 1.5",
            "objective.top_p",
            "(0, 1]",
        ),
        ("kind = \"dpo\"\nbeta = 0.0", "objective.beta", "> 0"),
        (
            "kind = \"dpo\"\nlabel_smoothing = 0.5",
            "objective.label_smoothing",
            "[0, 0.5)",
        ),
        (
            "kind = \"kto\"\nundesirable_weight = -1.0",
            "objective.undesirable_weight",
            "> 0",
        ),
        (
            "kind = \"simpo\"\ngamma_beta_ratio = -1.0",
            "objective.gamma_beta_ratio",
            ">= 0",
        ),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.field, field, "{text}");
        assert!(e.message.contains(range), "{text}: {}", e.message);
        let value = text
            .rsplit('=')
            .next()
            .unwrap()
            .trim()
            .trim_end_matches(".0");
        assert!(e.message.contains(value), "{text}: {}", e.message);
    }
}

#[test]
fn a_key_the_chosen_mode_does_not_use_is_rejected() {
    for (text, field) in [
        ("kind = \"ift\"\ntop_k = 3", "objective.top_k"),
        (
            "kind = \"ift\"\nprediction = \"topk\"\ntemperature = 0.7",
            "objective.temperature",
        ),
        ("kind = \"ift\"\nmin_lambda = 0.1", "objective.min_lambda"),
        (
            "kind = \"ift\"\nlambda_schedule = \"linear\"\nlambda = 0.3",
            "objective.lambda",
        ),
        ("kind = \"ift\"\ndisturb_std = 0.1", "objective.disturb_std"),
        (
            "kind = \"dpo\"\nloss_type = \"ipo\"\nlabel_smoothing = 0.1",
            "objective.label_smoothing",
        ),
    ] {
        assert_eq!(parse(text).unwrap_err().field, field, "{text}");
    }
}

#[test]
fn every_objective_round_trips_through_its_table() {
    for text in [
        "kind = \"sft\"\nnormalize = \"token\"",
        "kind = \"ift\"\nlambda_schedule = \"linear\"\nmax_lambda = 0.4\nprediction = \"nucleus\"\ntop_p = 0.8",
        "kind = \"ift\"\nlambda_disturb = \"normal\"\ndisturb_std = 0.2",
        "kind = \"dpo\"\nloss_type = \"hinge\"\nreference = \"ref/model\"",
        "kind = \"orpo\"\nbeta = 0.5",
        "kind = \"simpo\"\nsft_weight = 0.3",
        "kind = \"tdpo\"\nvariant = \"tdpo1\"",
        "kind = \"kto\"\nreference_free = true",
    ] {
        let o = parse(text).unwrap();
        assert_eq!(Objective::from_table(o.to_table()).unwrap(), o, "{text}");
        let keys: Vec<String> = o.to_table().keys().filter(|k| *k != "kind").cloned().collect();
        assert!(keys.iter().all(|k| o.kind().keys().contains(&k.as_str())), "{keys:?}");
    }
}
