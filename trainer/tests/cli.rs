//! End-to-end tests of the `trainer` binary: files of a run, resume, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("indm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    trainer().args(args).output().expect("trainer runs")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Small, fast settings for a complete run.
fn quick(dir: &Path, steps: &str) -> Vec<String> {
    [
        "train",
        "--quiet",
        "--steps",
        steps,
        "--batch",
        "64",
        "--nll-points",
        "16",
        "--checkpoint-every",
        "10",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([dir.display().to_string()])
    .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

#[test]
fn a_short_run_writes_every_file_and_a_complete_summary() {
    let d = tmp("files");
    let dir = d.join("run");
    let o = run(&args(&quick(&dir, "20")));
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "model.safetensors",
        "checkpoint.safetensors",
        "config.toml",
        "metrics.csv",
        "samples.png",
        "trajectories.png",
        "curves.png",
        "summary.json",
    ] {
        assert!(dir.join(f).exists(), "missing {f}");
    }
    let s = read_json(&dir.join("summary.json"));
    for key in [
        "dataset",
        "flow",
        "sde",
        "steps",
        "seed",
        "train_seconds",
        "steps_per_second",
        "test_nll_nats",
        "test_nelbo_nats",
        "true_entropy_nats",
    ] {
        assert!(!s[key].is_null(), "summary lacks {key}");
    }
    assert_eq!(s["steps"], 20);
    assert!((s["true_entropy_nats"].as_f64().unwrap() - 32f64.ln()).abs() < 1e-12);
    // metrics.csv: header + one row per 20 steps.
    let m = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(m.starts_with("step,nelbo,flow,dsm,prior"));
    // sample from the run.
    let png = d.join("s.png");
    let o = run(&[
        "sample",
        "--run",
        dir.to_str().unwrap(),
        "--sampler",
        "ode-heun",
        "--steps",
        "10",
        "--count",
        "200",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(png.with_extension("csv")).unwrap();
    assert_eq!(csv.lines().count(), 201);
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn resuming_continues_to_the_same_weights_as_an_uninterrupted_run() {
    let d = tmp("resume");
    let straight = d.join("straight");
    let o = run(&args(&quick(&straight, "30")));
    assert!(o.status.success(), "{}", stderr(&o));
    let split = d.join("split");
    let mut first = quick(&split, "30");
    first.extend(["--stop-after".to_string(), "13".to_string()]);
    let o = run(&args(&first));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !split.join("model.safetensors").exists(),
        "stopped session must not finish the run"
    );
    let o = run(&["train", "--quiet", "--resume", split.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Every tensor (weights, EMA, both AdamW states) is identical; only the recorded
    // wall time in the metadata may differ.
    let a = indm::weights::TensorFile::read(&straight.join("checkpoint.safetensors")).unwrap();
    let b = indm::weights::TensorFile::read(&split.join("checkpoint.safetensors")).unwrap();
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        assert!(x == y, "tensor {} differs after resume", x.name);
    }
    let wa = std::fs::read(straight.join("model.safetensors")).unwrap();
    let wb = std::fs::read(split.join("model.safetensors")).unwrap();
    assert!(wa == wb, "final weights files differ");
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn resuming_with_another_architecture_is_refused_with_the_difference() {
    let d = tmp("archdiff");
    let dir = d.join("run");
    let mut a = quick(&dir, "40");
    a.extend(["--stop-after".to_string(), "5".to_string()]);
    assert!(run(&args(&a)).status.success());
    let o = run(&[
        "train",
        "--quiet",
        "--resume",
        dir.to_str().unwrap(),
        "--flow",
        "identity",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("differs") && e.contains("flow"), "{e}");
    // Fewer total steps than the checkpoint has: refused, the run is left alone.
    let o = run(&[
        "train",
        "--quiet",
        "--resume",
        dir.to_str().unwrap(),
        "--steps",
        "3",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("step 5 already") && e.contains("3 asked"), "{e}");
    // A sample output that is not a PNG is refused before sampling; a missing folder is made.
    let weights =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/models/moons-baseline.safetensors");
    let o = run(&[
        "sample",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        "x.txt",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("x.txt: expected a file name ending in .png"),
        "{}",
        stderr(&o)
    );
    // An image model through --weights (2D only) is named as such.
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/models/cat-indm.safetensors");
    let o = run(&["sample", "--weights", image.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is an image model"), "{}", stderr(&o));
    let png = d.join("new/folder/s.png");
    let o = run(&[
        "sample",
        "--weights",
        weights.to_str().unwrap(),
        "--count",
        "200",
        "--steps",
        "5",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(png.exists());
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let d = tmp("nan");
    let dir = d.join("run");
    let o = trainer()
        .args(args(&quick(&dir, "40")))
        .env("INDM_INJECT_NAN_AT_STEP", "17")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("non-finite") && e.contains("step 17"), "{e}");
    // The checkpoint holds the good state at step 17 and resuming finishes the run.
    let o = run(&["train", "--quiet", "--resume", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resuming") && stderr(&o).contains("step 17"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn bad_input_gets_clear_errors() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["train", "--dataset", "spiral"],
            &["unknown data set 'spiral'", "checkerboard", "8gaussians"],
        ),
        (
            &["train", "--sde", "vpp"],
            &["unknown SDE 'vpp'", "vp, sub-vp, ve"],
        ),
        (
            &["train", "--flow", "glow"],
            &["unknown flow 'glow'", "coupling, identity"],
        ),
        (&["train", "--steps", "0"], &["invalid steps: 0"]),
        (&["train", "--batch", "-5"], &["invalid batch: -5"]),
        (
            &["train", "--step-type", "both"],
            &["unknown step type", "joint, alternating"],
        ),
        (
            &["train", "--resume", "/nonexistent/run"],
            &["not a run folder"],
        ),
        (&["sample", "--run", "/nonexistent/run"], &["config"]),
        (
            &["train", "--config", "/nonexistent.toml"],
            &["cannot read config file"],
        ),
    ];
    for (argv, needles) in cases {
        let o = run(argv);
        assert!(!o.status.success(), "{argv:?} should fail");
        let e = stderr(&o);
        for n in *needles {
            assert!(e.contains(n), "{argv:?}: expected '{n}' in: {e}");
        }
    }
    // Sampler names are checked against a real run.
    let d = tmp("badsampler");
    let dir = d.join("run");
    assert!(run(&args(&quick(&dir, "10"))).status.success());
    let o = run(&[
        "sample",
        "--run",
        dir.to_str().unwrap(),
        "--sampler",
        "ddim",
    ]);
    assert!(
        stderr(&o).contains("unknown sampler 'ddim'") && stderr(&o).contains("ode-rk45"),
        "{}",
        stderr(&o)
    );
    let o = run(&["sample", "--run", dir.to_str().unwrap(), "--steps", "0"]);
    assert!(stderr(&o).contains("invalid steps"), "{}", stderr(&o));
    // A corrupt weights file is refused with the reason.
    let w = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    std::fs::write(&w, bytes).unwrap();
    let o = run(&["sample", "--run", dir.to_str().unwrap()]);
    assert!(stderr(&o).contains("checksum"), "{}", stderr(&o));
    // A config file with an unknown key names it.
    let cfg = d.join("bad.toml");
    std::fs::write(&cfg, "dataset = \"moons\"\nsteps = 10\nwat = 1\n").unwrap();
    let o = run(&["train", "--config", cfg.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("not a valid run configuration"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn nll_and_compare_report_likelihoods_and_gaps() {
    let d = tmp("compare");
    let dir = d.join("cmp");
    let o = run(&[
        "compare",
        "--quiet",
        "--steps",
        "12",
        "--batch",
        "64",
        "--nll-points",
        "8",
        "--dataset",
        "moons",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rep = read_json(&dir.join("compare.json"));
    assert_eq!(rep["indm"]["flow"], "coupling");
    assert_eq!(rep["baseline"]["flow"], "identity");
    assert_eq!(rep["indm"]["seed"], rep["baseline"]["seed"]);
    for side in ["indm", "baseline"] {
        let s = &rep[side];
        let gap = s["test_nelbo_nats"].as_f64().unwrap() - s["test_nll_nats"].as_f64().unwrap();
        assert!((gap - s["gap_nats"].as_f64().unwrap()).abs() < 1e-9);
    }
    assert!(dir.join("compare.png").exists() && dir.join("compare.md").exists());
    let md = std::fs::read_to_string(dir.join("compare.md")).unwrap();
    assert!(
        md.contains("| INDM | coupling |") && md.contains("| baseline | identity |"),
        "{md}"
    );
    // `nll` on one of the runs writes nll.json with both likelihoods.
    let run_dir = dir.join("indm");
    let o = run(&[
        "nll",
        "--run",
        run_dir.to_str().unwrap(),
        "--points",
        "8",
        "--trace",
        "hutchinson",
        "--tol",
        "1e-4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let n = read_json(&run_dir.join("nll.json"));
    assert!(n["nll"]["mean"].as_f64().unwrap().is_finite());
    assert!(n["nelbo"]["std_error"].as_f64().unwrap() < 0.05);
    let o = run(&[
        "nll",
        "--run",
        run_dir.to_str().unwrap(),
        "--trace",
        "approx",
    ]);
    assert!(
        stderr(&o).contains("unknown trace 'approx'"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn help_has_examples() {
    let o = run(&["--help"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("Examples:") && s.contains("compare"), "{s}");
}
