//! The subcommands: resolve settings, run, report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indm::data::Toy2d;
use indm::likelihood::{Estimate, Trace};
use indm::rng::Stream;
use indm::sample::{SamplerConfig, SamplerKind, sample_model};
use indm::train::StepKind;
use indm::{CpuModel, FlowArch, SdeKind};
use serde::Serialize;

use crate::cli::{BenchArgs, BenchSampleArgs, Cli, Command, NllArgs, SampleArgs, TrainArgs};
use crate::config::RunConfig;
use crate::image_run::ImageRunConfig;
use crate::run::{self, Summary, TrainOptions, files};
use crate::{eval, plots};

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        None => train_cmd(TrainArgs::default()),
        Some(Command::Train(a)) => train_cmd(a),
        Some(Command::Sample(a)) => sample_cmd(a),
        Some(Command::Nll(a)) => nll_cmd(a),
        Some(Command::Compare(a)) => compare_cmd(a),
        Some(Command::Bench(a)) => bench_cmd(a),
        Some(Command::BenchSample(a)) => bench_sample_cmd(a),
        Some(Command::Translate(a)) => crate::translate::translate_cmd(a),
    }
}

/// Whether `train` flags or the resumed folder ask for an image run.
fn is_image_run(a: &TrainArgs) -> bool {
    match &a.resume {
        Some(dir) => crate::image_run::is_image_config(&dir.join(files::CONFIG)),
        None => {
            a.data.is_some()
                || a.class.is_some()
                || a.warm_start.is_some()
                || a.config
                    .as_ref()
                    .is_some_and(|p| crate::image_run::is_image_config(p))
        }
    }
}

/// Image runs: defaults (or the resumed run's / the config file's settings) <- flags.
pub fn resolve_image(a: &TrainArgs) -> Result<ImageRunConfig> {
    if a.dataset.is_some() {
        bail!("--dataset names a 2D data set; an image run takes --data <folder> and --class");
    }
    let mut cfg = if let Some(dir) = &a.resume {
        ImageRunConfig::from_toml_file(&dir.join(files::CONFIG))?
    } else if let Some(p) = &a.config {
        ImageRunConfig::from_toml_file(p)?
    } else {
        ImageRunConfig::default_run(
            a.data
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::image_run::DEFAULT_DATA)),
            None,
        )
    };
    if let Some(d) = &a.data {
        cfg.data.root = d.clone();
    }
    if let Some(c) = &a.class {
        cfg.data.class = Some(c.clone());
    }
    if let Some(w) = &a.warm_start {
        if a.resume.is_some() {
            bail!("--warm-start applies to a new run; a resumed run continues from its checkpoint");
        }
        cfg.warm_start = Some(w.clone());
    }
    let img = cfg
        .arch
        .image
        .as_mut()
        .expect("image run configs have an image arch");
    if let Some(s) = &a.sde {
        let kind = SdeKind::from_name(s)?;
        if kind != cfg.arch.sde.kind {
            cfg.arch.sde = indm::Architecture::image(1, 2, 2, kind, img.flow, img.unet.clone()).sde;
        }
    }
    if let Some(f) = &a.flow {
        img.flow = indm::ImageFlowArch::from_name(f)?;
    }
    if let Some(s) = a.steps {
        cfg.steps = positive("steps", s)?;
    }
    if let Some(b) = a.batch {
        cfg.hyper.batch = positive("batch", b)? as usize;
    }
    if let Some(lr) = a.lr_score {
        cfg.hyper.score_opt.lr = lr;
    }
    if let Some(lr) = a.lr_flow {
        cfg.hyper.flow_opt.lr = lr;
    }
    if let Some(s) = &a.step_type {
        cfg.hyper.step_kind = StepKind::from_name(s)?;
    }
    if let Some(s) = a.seed {
        cfg.hyper.seed = s;
    }
    if let Some(e) = a.eps {
        cfg.arch.eps = e;
    }
    if let Some(s) = a.sigma_max {
        if cfg.arch.sde.kind != SdeKind::Ve {
            bail!(
                "--sigma-max applies to the VE SDE only (this run uses {})",
                cfg.arch.sde.kind
            );
        }
        cfg.arch.sde.sigma_max = s;
    }
    if a.no_importance {
        cfg.hyper.importance = false;
    }
    if let Some(c) = a.checkpoint_every {
        cfg.checkpoint_every = positive("checkpoint-every", c)?;
    }
    if let Some(b) = a.backend {
        cfg.backend = b;
    }
    if let Some(n) = a.nll_points {
        cfg.eval.nll_images = n.max(0) as usize;
    }
    if let Some(n) = a.nelbo_images {
        cfg.eval.nelbo_images = positive("nelbo-images", n)? as usize;
    }
    if let Some(n) = a.sample_count {
        cfg.eval.sample_count = positive("sample-count", n)? as usize;
    }
    if let Some(n) = a.sample_steps {
        cfg.eval.sampler.steps = positive("sample-steps", n)? as usize;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn image_train_cmd(a: TrainArgs) -> Result<()> {
    let cfg = resolve_image(&a)?;
    if a.print_config {
        print!("{}", cfg.to_toml()?);
        return Ok(());
    }
    let (dir, resume) = match (&a.resume, &a.out) {
        (Some(d), _) => (d.clone(), true),
        (None, Some(d)) => {
            if d.join(files::CHECKPOINT).exists() {
                bail!(
                    "{} already holds a run; use --resume {} to continue it or choose another --out",
                    d.display(),
                    d.display()
                );
            }
            (d.clone(), false)
        }
        (None, None) => {
            let base = PathBuf::from("runs").join(format!(
                "{}-{}-{}-s{}",
                cfg.data.class.as_deref().unwrap_or("images"),
                cfg.arch.flow_name(),
                cfg.arch.sde.kind.name(),
                cfg.hyper.seed
            ));
            (run::fresh_dir(&base), false)
        }
    };
    let opts = TrainOptions {
        dir: dir.clone(),
        resume,
        quiet: a.quiet,
        stop_after: a.stop_after,
        skip_eval: a.skip_eval,
    };
    match crate::image_run::train(&cfg, &opts)? {
        Some(s) => crate::image_run::print_summary(&s, &dir),
        None if a.skip_eval && a.stop_after.is_none() => {
            println!("trained; weights in {}", dir.join(files::WEIGHTS).display())
        }
        None => println!(
            "stopped early at the requested step; resume with `trainer train --resume {}`",
            dir.display()
        ),
    }
    Ok(())
}

fn positive(what: &str, v: i64) -> Result<u64> {
    if v <= 0 {
        bail!("invalid {what}: {v} (must be a positive integer)");
    }
    Ok(v as u64)
}

/// Defaults <- config file (or the resumed run's config) <- flags.
pub fn resolve(a: &TrainArgs) -> Result<RunConfig> {
    let mut cfg = if let Some(dir) = &a.resume {
        let p = dir.join(files::CONFIG);
        if !p.exists() {
            bail!(
                "cannot resume: {} is not a run folder ({} is missing)",
                dir.display(),
                p.display()
            );
        }
        RunConfig::from_toml_file(&p)?
    } else if let Some(p) = &a.config {
        RunConfig::from_toml_file(p)?
    } else {
        RunConfig::default_run()
    };
    if let Some(d) = &a.dataset {
        cfg.dataset = Toy2d::from_name(d)?;
    }
    if let Some(s) = &a.sde {
        let kind = SdeKind::from_name(s)?;
        if kind != cfg.arch.sde.kind {
            cfg.arch.sde = indm::Architecture::default_2d(kind, cfg.arch.flow).sde;
        }
    }
    if let Some(f) = &a.flow {
        cfg.arch.flow = FlowArch::from_name(f)?;
    }
    if let Some(s) = a.steps {
        cfg.steps = positive("steps", s)?;
    }
    if let Some(b) = a.batch {
        cfg.hyper.batch = positive("batch", b)? as usize;
    }
    if let Some(lr) = a.lr_score {
        cfg.hyper.score_opt.lr = lr;
    }
    if let Some(lr) = a.lr_flow {
        cfg.hyper.flow_opt.lr = lr;
    }
    if let Some(s) = &a.step_type {
        cfg.hyper.step_kind = StepKind::from_name(s)?;
    }
    if let Some(s) = a.seed {
        cfg.hyper.seed = s;
    }
    if let Some(e) = a.eps {
        cfg.arch.eps = e;
    }
    if let Some(s) = a.sigma_max {
        if cfg.arch.sde.kind != SdeKind::Ve {
            bail!(
                "--sigma-max applies to the VE SDE only (this run uses {})",
                cfg.arch.sde.kind
            );
        }
        cfg.arch.sde.sigma_max = s;
    }
    if a.no_importance {
        cfg.hyper.importance = false;
    }
    if let Some(c) = a.checkpoint_every {
        cfg.checkpoint_every = positive("checkpoint-every", c)?;
    }
    if let Some(b) = a.backend {
        cfg.backend = b;
    }
    if let Some(n) = a.nll_points {
        cfg.eval.nll_points = positive("nll-points", n)? as usize;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn train_cmd(a: TrainArgs) -> Result<()> {
    if is_image_run(&a) {
        return image_train_cmd(a);
    }
    let cfg = resolve(&a)?;
    if a.print_config {
        print!("{}", cfg.to_toml()?);
        return Ok(());
    }
    let (dir, resume) = match (&a.resume, &a.out) {
        (Some(d), _) => (d.clone(), true),
        (None, Some(d)) => {
            if d.join(files::CHECKPOINT).exists() {
                bail!(
                    "{} already holds a run; use --resume {} to continue it or choose another --out",
                    d.display(),
                    d.display()
                );
            }
            (d.clone(), false)
        }
        (None, None) => (run::fresh_dir(&run::default_dir(&cfg)), false),
    };
    let opts = TrainOptions {
        dir: dir.clone(),
        resume,
        quiet: a.quiet,
        stop_after: a.stop_after,
        skip_eval: a.skip_eval,
    };
    match run::train(&cfg, &opts)? {
        Some(s) => run::print_summary(&s, &dir),
        None if a.skip_eval && a.stop_after.is_none() => {
            println!("trained; weights in {}", dir.join(files::WEIGHTS).display())
        }
        None => println!(
            "stopped early at the requested step; resume with `trainer train --resume {}`",
            dir.display()
        ),
    }
    Ok(())
}

/// Loads a run folder's EMA model and configuration.
fn load_run(dir: &Path) -> Result<(RunConfig, CpuModel)> {
    let cfg = RunConfig::from_toml_file(&dir.join(files::CONFIG))?;
    let (arch, params, _) =
        indm::weights::load_model(&dir.join(files::WEIGHTS)).with_context(|| {
            format!(
                "{} has no finished model (train it to the end first)",
                dir.display()
            )
        })?;
    Ok((cfg, CpuModel::new(&arch, &params)?))
}

/// `sample` of an image run: a grid of samples.
fn image_sample_cmd(a: &SampleArgs, dir: &Path) -> Result<()> {
    let (_, model) = crate::translate::load_image_run(dir, crate::config::Backend::Flex)?;
    let cfg = SamplerConfig {
        kind: SamplerKind::from_name(&a.sampler)?,
        steps: positive("steps", a.steps)? as usize,
        temperature: a.temperature,
        snr: a.snr,
        seed: a.seed,
        ..Default::default()
    };
    cfg.validate()?;
    let n = positive("count", a.count)? as usize;
    if n > 4096 {
        bail!("invalid count: {n} (at most 4096 images)");
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| dir.join(format!("sample-{}-{}.png", a.sampler, a.steps)));
    plots::prepare_png(&out)?;
    let scaling = indm::data::dequant::Scaling::for_sde(model.arch.sde.kind);
    crate::image_run::sample_grid(&model, n, &cfg, scaling, &out)?;
    println!(
        "wrote {} ({n} samples, {} x {} steps)",
        out.display(),
        cfg.kind.name(),
        cfg.steps
    );
    Ok(())
}

/// `nll` of an image run: test bits/dim from the NELBO and the PF-ODE.
fn image_nll_cmd(a: &NllArgs) -> Result<()> {
    let (cfg, model) = crate::translate::load_image_run(&a.run, crate::config::Backend::Flex)?;
    if a.trace != "hutchinson" && a.trace != "exact" {
        bail!(
            "unknown trace '{}'; valid choices are: exact, hutchinson",
            a.trace
        );
    }
    if a.trace == "exact" {
        eprintln!(
            "note: image models use the Hutchinson trace (an exact trace needs D = C H W passes)"
        );
    }
    if !(a.tol > 0.0 && a.tol < 1.0) {
        bail!("invalid tolerance {} (must be in (0, 1))", a.tol);
    }
    let mut eval = cfg.eval.clone();
    eval.nll_images = positive("points", a.points)? as usize;
    eval.nll_tol = a.tol;
    if let Some(n) = a.nelbo_images {
        eval.nelbo_images = positive("nelbo-images", n)? as usize;
    }
    if let Some(n) = a.nelbo_draws {
        eval.nelbo_draws = positive("nelbo-draws", n)? as usize;
    }
    let test = crate::image_run::load_split(&cfg, "test")?;
    let lk = crate::image_run::likelihoods(&model, &test, cfg.scaling(), cfg.hyper.seed, &eval)?;
    let json = serde_json::json!({
        "nelbo_images": eval.nelbo_images.min(test.len()),
        "nelbo_draws_per_image": eval.nelbo_draws,
        "nelbo_bpd": lk.nelbo,
        "nelbo_terms_bpd": lk.terms,
        "nll_bpd": lk.nll.as_ref().map(|n| n.0),
        "nll_nfe": lk.nll.as_ref().map(|n| n.1),
        "trace": "hutchinson",
        "tol": a.tol,
    });
    let text = serde_json::to_string_pretty(&json)?;
    indm::weights::write_atomic(&a.run.join("nll.json"), text.as_bytes())?;
    println!("{text}");
    Ok(())
}

fn sample_cmd(a: SampleArgs) -> Result<()> {
    if let Some(dir) = &a.run
        && crate::image_run::is_image_config(&dir.join(files::CONFIG))
    {
        return image_sample_cmd(&a, dir);
    }
    let (dataset, model, default_out) = match (&a.run, &a.weights) {
        (Some(dir), _) => {
            let (cfg, model) = load_run(dir)?;
            (
                Some(cfg.dataset),
                model,
                dir.join(format!("sample-{}-{}.png", a.sampler, a.steps)),
            )
        }
        (None, Some(w)) => {
            let (arch, params, meta) = indm::weights::load_model(w)?;
            if arch.image.is_some() {
                bail!(
                    "{} is an image model; --weights samples 2D models only: give its run \
                     folder with --run (or translate with it: trainer translate --help)",
                    w.display()
                );
            }
            let ds = meta
                .get("indm.dataset")
                .and_then(|d| Toy2d::from_name(d).ok());
            (
                ds,
                CpuModel::new(&arch, &params)?,
                PathBuf::from(format!("sample-{}-{}.png", a.sampler, a.steps)),
            )
        }
        (None, None) => bail!("give --run <folder> or --weights <file>"),
    };
    let cfg = SamplerConfig {
        kind: SamplerKind::from_name(&a.sampler)?,
        steps: positive("steps", a.steps)? as usize,
        temperature: a.temperature,
        snr: a.snr,
        seed: a.seed,
        ..Default::default()
    };
    cfg.validate()?;
    let n = positive("count", a.count)? as usize;
    if n > 10_000_000 {
        bail!("invalid count: {n} (at most 10000000)");
    }
    let out = a.out.unwrap_or(default_out);
    plots::prepare_png(&out)?;
    let (x, s) = sample_model(&model, n, &cfg)?;
    let data = dataset
        .map(|d| eval::reference_data(d, n.min(20_000), a.seed))
        .unwrap_or_default();
    let title = format!(
        "{} samples, {} x {} steps (NFE {}), seed {}",
        n,
        cfg.kind.name(),
        cfg.steps,
        s.nfe,
        cfg.seed
    );
    plots::samples(&out, &title, &data, &x)?;
    let csv = out.with_extension("csv");
    let mut text = String::from("x,y\n");
    for p in x.chunks_exact(2) {
        text.push_str(&format!("{},{}\n", p[0], p[1]));
    }
    indm::weights::write_atomic(&csv, text.as_bytes())?;
    println!(
        "wrote {} and {} (NFE {} per sample)",
        out.display(),
        csv.display(),
        s.nfe
    );
    Ok(())
}

#[derive(Serialize)]
struct NllReport {
    nll: Estimate,
    nll_nfe: usize,
    nelbo: Estimate,
    gap: f64,
    trace: Trace,
    tol: f64,
    true_entropy_nats: Option<f64>,
}

fn nll_cmd(a: NllArgs) -> Result<()> {
    if crate::image_run::is_image_config(&a.run.join(files::CONFIG)) {
        return image_nll_cmd(&a);
    }
    let (cfg, model) = load_run(&a.run)?;
    let trace = match a.trace.as_str() {
        "exact" => Trace::Exact,
        "hutchinson" => Trace::Hutchinson,
        other => bail!("unknown trace '{other}'; valid choices are: exact, hutchinson"),
    };
    let valid = a.tol > 0.0 && a.tol < 1.0 && a.nelbo_se > 0.0;
    if !valid {
        bail!(
            "invalid tolerance {} or NELBO target {} (both must be positive, tol < 1)",
            a.tol,
            a.nelbo_se
        );
    }
    let n = positive("points", a.points)? as usize;
    let (nll, nll_nfe) = eval::nll(&model, cfg.dataset, cfg.hyper.seed, n, trace, a.tol, a.tol);
    let nelbo = eval::nelbo(&model, cfg.dataset, cfg.hyper.seed, a.nelbo_se, 4_000_000);
    let rep = NllReport {
        gap: nelbo.mean - nll.mean,
        nll,
        nll_nfe,
        nelbo,
        trace,
        tol: a.tol,
        true_entropy_nats: cfg.dataset.true_entropy().map(|e| e.nats),
    };
    let json = serde_json::to_string_pretty(&rep)?;
    indm::weights::write_atomic(&a.run.join("nll.json"), json.as_bytes())?;
    println!("{json}");
    Ok(())
}

#[derive(Serialize)]
struct CompareReport {
    indm: Summary,
    baseline: Summary,
}

fn compare_cmd(a: TrainArgs) -> Result<()> {
    if a.resume.is_some() {
        bail!("compare trains two fresh runs; --resume is not supported here");
    }
    let mut base_cfg = resolve(&a)?;
    if base_cfg.arch.flow == FlowArch::Identity {
        base_cfg.arch.flow = FlowArch::from_name("coupling")?;
    }
    let dir = a.out.clone().unwrap_or_else(|| {
        run::fresh_dir(&PathBuf::from("runs").join(format!(
            "compare-{}-{}-s{}",
            base_cfg.dataset.name(),
            base_cfg.arch.sde.kind.name(),
            base_cfg.hyper.seed
        )))
    });
    let mut baseline_cfg = base_cfg.clone();
    baseline_cfg.arch.flow = FlowArch::Identity;
    let mut results = Vec::new();
    for (name, cfg) in [("indm", &base_cfg), ("baseline", &baseline_cfg)] {
        let sub = dir.join(name);
        eprintln!("== {name} -> {}", sub.display());
        let opts = TrainOptions {
            dir: sub.clone(),
            resume: false,
            quiet: a.quiet,
            stop_after: None,
            skip_eval: false,
        };
        let s = run::train(cfg, &opts)?.expect("full run");
        run::print_summary(&s, &sub);
        results.push(s);
    }
    let baseline = results.pop().expect("two runs");
    let indm = results.pop().expect("two runs");
    let (_, m_indm) = load_run(&dir.join("indm"))?;
    let (_, m_base) = load_run(&dir.join("baseline"))?;
    let mut scfg = base_cfg.eval.sampler.clone();
    scfg.seed = base_cfg.hyper.seed;
    let n = base_cfg.eval.sample_count;
    let (xi, _) = sample_model(&m_indm, n, &scfg)?;
    let (xb, _) = sample_model(&m_base, n, &scfg)?;
    let data = eval::reference_data(base_cfg.dataset, n, base_cfg.hyper.seed);
    plots::compare(
        &dir.join("compare.png"),
        &format!(
            "{} | {} steps | same seed, same noise",
            base_cfg.dataset.name(),
            base_cfg.steps
        ),
        &data,
        &xi,
        &xb,
    )?;
    let md = compare_markdown(&indm, &baseline);
    indm::weights::write_atomic(&dir.join("compare.md"), md.as_bytes())?;
    let rep = CompareReport { indm, baseline };
    indm::weights::write_atomic(
        &dir.join("compare.json"),
        serde_json::to_string_pretty(&rep)?.as_bytes(),
    )?;
    println!("{md}");
    println!(
        "wrote {}/compare.md, compare.json, compare.png",
        dir.display()
    );
    Ok(())
}

fn compare_markdown(i: &Summary, b: &Summary) -> String {
    let h = i
        .true_entropy_nats
        .map(|h| format!("{h:.4}"))
        .unwrap_or_else(|| "unknown".into());
    let row = |name: &str, s: &Summary| {
        format!(
            "| {name} | {} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.1} | {:.1} |\n",
            s.flow,
            s.test_nll_nats,
            s.test_nll_se,
            s.test_nelbo_nats,
            s.test_nelbo_se,
            s.gap_nats,
            s.gap_se,
            s.train_seconds,
            s.steps_per_second
        )
    };
    format!(
        "# INDM vs linear baseline: {} ({}, {} steps, batch {}, seed {})\n\n\
         True entropy of the data: {h} nats (the best achievable NLL).\n\n\
         | model | flow | test NLL (nats) | test NELBO (nats) | gap NELBO-NLL | train s | steps/s |\n\
         |---|---|---|---|---|---|---|\n{}{}",
        i.dataset,
        i.sde,
        i.steps,
        i.batch,
        i.seed,
        row("INDM", i),
        row("baseline", b)
    )
}

/// `bench --data`: steps/s of the default image model (Glow-lite + U-Net) on real images.
fn image_bench_cmd(a: &BenchArgs, root: &Path) -> Result<()> {
    let mut cfg = ImageRunConfig::default_run(root.to_path_buf(), Some("cat".into()));
    if a.flow != "coupling" {
        cfg.arch.image.as_mut().expect("image arch").flow =
            indm::ImageFlowArch::from_name(&a.flow)?;
    }
    cfg.hyper.batch = positive("batch", a.batch)? as usize;
    cfg.backend = a.backend;
    cfg.validate()?;
    let set = crate::image_run::load_split(&cfg, "train")?;
    let steps = positive("steps", a.steps)?;
    let warmup = a.warmup.max(0) as u64;
    let device = a.backend.device()?;
    let mut state = indm::train::TrainState::new(&cfg.arch, &cfg.hyper)?;
    let (mut timed, mut last) = (0.0, f64::NAN);
    for step in 0..warmup + steps {
        let b = set.batch(&indm::data::images::BatchSpec {
            seed: cfg.hyper.seed,
            step,
            size: cfg.hyper.batch,
            scaling: cfg.scaling(),
            flip: true,
        })?;
        let x: Vec<f64> = b.data.iter().map(|&v| v as f64).collect();
        let t0 = std::time::Instant::now();
        last = indm::train::train_step(&mut state, &cfg.hyper, &x, &device)?.nelbo;
        if step >= warmup {
            timed += t0.elapsed().as_secs_f64();
        }
    }
    let (pf, ps) = cfg.arch.param_counts();
    let img = cfg.arch.image.as_ref().expect("image arch");
    println!(
        "{}",
        serde_json::json!({
            "framework": format!("burn-{}", a.backend.name()),
            "model": format!("{} 3x32x32, U-Net {:?}", cfg.arch.flow_name(), img.unet),
            "threads": std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into()),
            "batch": cfg.hyper.batch,
            "params_flow": pf,
            "params_score": ps,
            "unet_flop": indm::image::layout::unet_flops(img),
            "steps": steps,
            "seconds": timed,
            "steps_per_second": steps as f64 / timed,
            "final_nelbo_nats": last,
        })
    );
    Ok(())
}

fn bench_cmd(a: BenchArgs) -> Result<()> {
    if let Some(root) = &a.data {
        return image_bench_cmd(&a, root);
    }
    let mut cfg = RunConfig::default_run();
    cfg.arch.flow = FlowArch::from_name(&a.flow)?;
    cfg.hyper.batch = positive("batch", a.batch)? as usize;
    let steps = positive("steps", a.steps)?;
    let warmup = a.warmup.max(0) as u64;
    let device = a.backend.device()?;
    let mut state = indm::train::TrainState::new(&cfg.arch, &cfg.hyper)?;
    let mut timed = 0.0;
    let mut last = f64::NAN;
    for step in 0..warmup + steps {
        let x = cfg
            .dataset
            .sample(cfg.hyper.batch, cfg.hyper.seed, step, Stream::Data);
        let t0 = std::time::Instant::now();
        last = indm::train::train_step(&mut state, &cfg.hyper, &x, &device)?.nelbo;
        if step >= warmup {
            timed += t0.elapsed().as_secs_f64();
        }
    }
    let (pf, ps) = cfg.arch.param_counts();
    println!(
        "{}",
        serde_json::json!({
            "framework": format!("burn-{}", a.backend.name()),
            "threads": std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into()),
            "batch": cfg.hyper.batch,
            "params": pf + ps,
            "steps": steps,
            "seconds": timed,
            "steps_per_second": steps as f64 / timed,
            "final_loss": last,
        })
    );
    Ok(())
}

fn bench_sample_cmd(a: BenchSampleArgs) -> Result<()> {
    let particles = positive("particles", a.particles)?;
    let particles = u32::try_from(particles).context("particles must be below 2^32")?;
    let steps = positive("steps", a.steps)? as usize;
    let rounds = positive("rounds", a.rounds)? as usize;
    let (arch, params) = match &a.model {
        Some(path) => {
            let (arch, params, _) = indm::weights::load_model(path)?;
            (arch, params)
        }
        None => {
            let arch = RunConfig::default_run().arch;
            let params = indm::ParamSet::init(&arch, 0);
            (arch, params)
        }
    };
    let device = a.backend.inference_device()?;
    let report = crate::bench_sample::run(&crate::bench_sample::Setup {
        arch: &arch,
        params: &params,
        particles,
        steps,
        rounds,
        device: &device,
        backend: a.backend.name(),
        kernel: indm::gpu::KernelOptions {
            particles_per_invocation: a.particles_per_invocation,
            weights: a.weights.placement(),
        },
    })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
