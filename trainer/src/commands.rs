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
    }
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

fn sample_cmd(a: SampleArgs) -> Result<()> {
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
    let (x, s) = sample_model(&model, n, &cfg)?;
    let out = a.out.unwrap_or(default_out);
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

fn bench_cmd(a: BenchArgs) -> Result<()> {
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
    })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
