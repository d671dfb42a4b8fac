//! End-to-end tests of image runs on a small fixture folder: train the linear baseline,
//! warm-start INDM from it with a stop and resume, translate between the two, and the
//! errors of bad image input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{Rgb, RgbImage};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("trainer runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("indm-img-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `root/{train,test}/{cat,dog}`: 6 images of 32x32 per folder (smooth colour ramps), plus in
/// train/cat one 40x30 image (converted) and one file that is not an image (skipped).
fn fixture(root: &Path) {
    for split in ["train", "test"] {
        for (k, class) in ["cat", "dog"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..6u32 {
                let img = RgbImage::from_fn(32, 32, |x, y| {
                    Rgb([
                        (x * 8) as u8,
                        (y * 8) as u8,
                        (40 * i + 100 * k as u32) as u8,
                    ])
                });
                img.save(dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }
    RgbImage::from_pixel(40, 30, Rgb([200, 10, 10]))
        .save(root.join("train/cat/wide.png"))
        .unwrap();
    std::fs::write(root.join("train/cat/notes.png"), b"not a png").unwrap();
}

/// Tiny, fast settings of an image run.
fn quick<'a>(data: &'a str, class: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--quiet",
        "--data",
        data,
        "--class",
        class,
        "--steps",
        "2",
        "--batch",
        "4",
        "--nelbo-images",
        "4",
        "--nll-points",
        "2",
        "--sample-count",
        "4",
        "--sample-steps",
        "3",
        "--out",
        out,
    ]
}

#[test]
fn baseline_then_warm_started_indm_then_translation() {
    let d = tmp("e2e");
    let data = d.join("data");
    fixture(&data);
    let data_s = data.to_str().unwrap();
    // The linear baseline (identity flow) on cats.
    let base = d.join("cat-id");
    let mut a = quick(data_s, "cat", base.to_str().unwrap());
    a.extend(["--flow", "identity"]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("7 images of class 'cat'")
            && e.contains("1 converted")
            && e.contains("1 files skipped"),
        "{e}"
    );
    let s = read_json(&base.join("summary.json"));
    assert_eq!(s["flow"], "identity");
    assert_eq!(s["params_flow"], 0);
    let nelbo = s["test_nelbo_bpd"].as_f64().unwrap();
    let nll = s["test_nll_bpd"].as_f64().unwrap();
    assert!(nelbo.is_finite() && nll.is_finite(), "{s}");
    assert!(s["unet_flop"].as_u64().unwrap() <= 2_000_000_000);
    for f in [
        "model.safetensors",
        "checkpoint.safetensors",
        "samples.png",
        "curves.png",
    ] {
        assert!(base.join(f).exists(), "{f} missing");
    }
    // INDM on dogs, score net warm-started from the baseline; stopped after one step, resumed.
    let indm = d.join("dog-glow");
    let mut a = quick(data_s, "dog", indm.to_str().unwrap());
    a.extend(["--warm-start", base.to_str().unwrap(), "--stop-after", "1"]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warm start: score net from"),
        "{}",
        stderr(&o)
    );
    assert!(!indm.join("summary.json").exists());
    let o = run(&["train", "--quiet", "--resume", indm.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
    let s = read_json(&indm.join("summary.json"));
    assert_eq!(s["flow"], "glow");
    assert_eq!(s["steps"], 2);
    assert!(s["params_flow"].as_u64().unwrap() > 0);
    assert!(s["warm_start"].as_str().unwrap().contains("cat-id"));
    // The resumed run ends with exactly the weights of an uninterrupted one.
    let straight = d.join("dog-glow-straight");
    let mut a = quick(data_s, "dog", straight.to_str().unwrap());
    a.extend(["--warm-start", base.to_str().unwrap(), "--skip-eval"]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        weights(&straight) == weights(&indm),
        "stop + resume changed the weights"
    );
    // A warm start from a run with a flow is refused.
    let mut a = quick(data_s, "dog", "/nonexistent-out");
    a.extend(["--warm-start", indm.to_str().unwrap()]);
    let o = run(&a);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("identity flow"), "{}", stderr(&o));
    // Translation dog -> cat: SDEdit at three strengths, DDIB there and back.
    let tr = d.join("dog2cat");
    let o = run(&[
        "translate",
        "--source",
        indm.to_str().unwrap(),
        "--target",
        base.to_str().unwrap(),
        "--count",
        "2",
        "--steps",
        "4",
        "--out",
        tr.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = read_json(&tr.join("translate.json"));
    assert_eq!(t["images"], 2);
    assert_eq!(t["sdedit"].as_array().unwrap().len(), 3);
    assert!(t["ddib"]["cycle_mean_abs"].as_f64().unwrap().is_finite());
    assert!(tr.join("sdedit.png").exists() && tr.join("ddib.png").exists());
    // One input file.
    let o = run(&[
        "translate",
        "--source",
        indm.to_str().unwrap(),
        "--target",
        base.to_str().unwrap(),
        "--input",
        data.join("test/dog/0.png").to_str().unwrap(),
        "--method",
        "sdedit",
        "--t0",
        "0.5",
        "--steps",
        "4",
        "--out",
        tr.join("one").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_json(&tr.join("one/translate.json"))["images"], 1);
    // Bad translation inputs name the path.
    std::fs::create_dir_all(d.join("empty")).unwrap();
    std::fs::write(d.join("empty/readme.txt"), b"hello").unwrap();
    let empty = d.join("empty");
    for (input, needle) in [
        ("/nonexistent/in.png", "no such file or folder"),
        (
            empty.to_str().unwrap(),
            "no decodable image (1 file(s), 1 skipped)",
        ),
    ] {
        let o = run(&[
            "translate",
            "--source",
            indm.to_str().unwrap(),
            "--target",
            base.to_str().unwrap(),
            "--input",
            input,
        ]);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.contains(input) && e.contains(needle), "{e}");
    }
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn bad_image_input_gets_errors_naming_the_problem() {
    let d = tmp("bad");
    let data = d.join("data");
    fixture(&data);
    std::fs::create_dir_all(data.join("train/bird")).unwrap();
    let data_s = data.to_str().unwrap();
    let out = d.join("out");
    let out_s = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            quick("/nonexistent/images", "cat", out_s),
            vec!["/nonexistent/images", "no such folder"],
        ),
        (
            quick(data_s, "horse", out_s),
            vec!["unknown class 'horse'", "bird, cat, dog"],
        ),
        (
            {
                let mut a = quick(data_s, "cat", out_s);
                a.extend(["--flow", "coupling2d"]);
                a
            },
            vec!["unknown image flow", "glow, identity"],
        ),
        (
            {
                let mut a = quick(data_s, "cat", out_s);
                a.extend(["--warm-start", "/nonexistent/run"]);
                a
            },
            vec!["/nonexistent/run"],
        ),
    ];
    for (argv, needles) in &cases {
        let o = run(argv);
        assert!(!o.status.success(), "{argv:?} should fail");
        let e = stderr(&o);
        for n in needles {
            assert!(e.contains(n), "{argv:?}: expected '{n}' in: {e}");
        }
    }
    // A class folder without decodable images is skipped-and-counted, then refused by name.
    std::fs::write(data.join("train/bird/x.png"), b"garbage").unwrap();
    let o = run(&quick(data_s, "bird", out_s));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("no images of class 'bird'") && e.contains("1 file(s) skipped"),
        "{e}"
    );
    // A config file that does not exist.
    let mut a = quick(data_s, "cat", out_s);
    a.extend(["--config", "/nonexistent.toml"]);
    let o = run(&a);
    assert!(
        stderr(&o).contains("cannot read config file"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(d).ok();
}
