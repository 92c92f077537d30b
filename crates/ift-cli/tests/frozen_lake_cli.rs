//! `ift frozen-lake` end to end, through the real binary.

use std::path::Path;
use std::process::{Command, Output};

use frozen_lake::Setup;

fn ift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ift"))
        .arg("frozen-lake")
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs every reading, tiny, into `dir`; returns the page it wrote.
fn all_setups(dir: &Path) -> String {
    let out = ift(&[
        "--all-setups",
        "--seeds",
        "2",
        "--steps",
        "4",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read_to_string(dir.join("frozen-lake-setups.md")).unwrap()
}

#[test]
fn help_lists_every_reading() {
    let out = ift(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for s in Setup::ALL {
        assert!(
            help.contains(&format!("- {}:", s.name())),
            "{} missing:\n{help}",
            s.name()
        );
    }
}

#[test]
fn all_setups_writes_every_reading_and_the_page_deterministically() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let page = all_setups(a.path());
    for s in Setup::ALL {
        assert!(
            page.contains(&format!("(`--setup {}`)", s.name())),
            "section {}",
            s.name()
        );
        let dir = a.path().join(s.name());
        for name in [
            "config.json",
            "results.json",
            "report.md",
            "policies.png",
            "visits.png",
            "mse_curves.png",
        ] {
            let bytes = std::fs::read(dir.join(name))
                .unwrap_or_else(|e| panic!("{}/{name}: {e}", s.name()));
            if name.ends_with(".png") {
                assert_eq!(&bytes[1..4], b"PNG", "{}/{name}", s.name());
            }
        }
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["setup"]["name"], s.name());
    }
    assert_eq!(
        page.matches("**Does the paper's ordering").count(),
        Setup::ALL.len()
    );
    assert!(page.contains("### Summary"));
    // The same command again gives the same page and the same numbers.
    assert_eq!(all_setups(b.path()), page);
    let results = |d: &Path| std::fs::read(d.join("slippery/results.json")).unwrap();
    assert_eq!(results(a.path()), results(b.path()));
}

#[test]
fn one_setup_writes_into_out_itself() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--setup",
        "sequential",
        "--seeds",
        "1",
        "--steps",
        "3",
        "--out",
    ];
    let out = ift(&[&args[..], &[dir.path().to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        report.contains("| SFT→DPO |") && report.contains("| SFT→ORPO |"),
        "{report}"
    );
}

/// Issue 27: every number is checked as the command line is parsed: exit 2,
/// the flag named, nothing run.
#[test]
fn out_of_range_numbers_are_usage_errors_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    for (args, want) in [
        (
            ["--ift-lambda", "nan"],
            "'--ift-lambda <IFT_LAMBDA>': NaN must be a finite number in [0, 1]",
        ),
        (
            ["--ift-lambda", "-0.1"],
            "'--ift-lambda <IFT_LAMBDA>': -0.1 must be a finite number in [0, 1]",
        ),
        (
            ["--ift-gamma", "inf"],
            "'--ift-gamma <IFT_GAMMA>': inf must be a finite number in [0, 1]",
        ),
        (
            ["--ift-gamma", "1.5"],
            "'--ift-gamma <IFT_GAMMA>': 1.5 must be a finite number in [0, 1]",
        ),
        (["--steps", "0"], "'--steps <STEPS>': 0 must be at least 1"),
        (["--seeds", "0"], "'--seeds <SEEDS>'"),
    ] {
        let out = ift(&[&args[..], &["--out", out_dir.to_str().unwrap()]].concat());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!out_dir.exists(), "{args:?} ran");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    for (args, want) in [
        // Gymnasium's 4×4 has two shortest routes and no strictly worse loop-free one.
        (
            vec!["--map", "4x4", "--steps", "1", "--seeds", "1"],
            "no sub-optimal route",
        ),
        (vec!["--setup", "uphill"], "possible values"),
        (vec!["--seeds", "0"], "seeds"),
        (
            vec!["--steps", "0"],
            "'--steps <STEPS>': 0 must be at least 1",
        ),
        (
            vec!["--ift-lambda", "2"],
            "'--ift-lambda <IFT_LAMBDA>': 2 must be a finite number in [0, 1]",
        ),
        (vec!["--map", "/nonexistent/map.txt"], "reading map file"),
        (
            vec!["--setup", "baseline", "--all-setups"],
            "cannot be used with",
        ),
    ] {
        let out = ift(&[&args[..], &["--out", out_dir]].concat());
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
