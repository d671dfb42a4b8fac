//! In the browser (wasm32) this binary is the demo page. Natively it runs a share
//! link's state on the CPU in `f64` and prints the `window.indmStats` record the page
//! would expose, which the browser test compares with the page's numbers:
//!
//! ```sh
//! cargo run -p web -- 'v=1&model=checkerboard&flow=indm&sampler=em&steps=50&seed=7&n=10000'
//! ```

#[cfg(target_arch = "wasm32")]
fn main() {
    web::app::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    if let Err(e) = native::run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::PathBuf;
    use std::time::Instant;

    use web::sim::{self, CpuRun, RunReport};
    use web::state;
    use web::translate;

    const USAGE: &str = "usage: indm-demo [--models DIR] QUERY\n\
        Runs the demo's state QUERY (a share link's query, e.g. \
        'v=1&model=moons&sampler=em&steps=50&seed=3&n=2000') on the CPU in f64 and \
        prints the statistics the page exposes as one JSON line.\n\
        A translation query (view=image) runs the translation and its translation back \
        with the f64 reference and prints the page's translation statistics.\n\
        --models DIR   the model files (default: web/models; the gallery is DIR/../gallery)";

    pub fn run() -> Result<(), String> {
        let mut models = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models"));
        let mut query = None;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--models" => models = args.next().ok_or(USAGE)?.into(),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    return Ok(());
                }
                q if query.is_none() => query = Some(q.to_string()),
                _ => return Err(USAGE.into()),
            }
        }
        let query = query.ok_or(USAGE)?;
        // A whole share link or just its query.
        let q = query.split_once('?').map_or(query.as_str(), |(_, q)| q);
        let (st, notices) = state::parse(q);
        for n in &notices {
            eprintln!("notice: {n}");
        }
        if st.view == state::View::Image {
            return translation(&models, &st);
        }
        let rel = sim::model_path(st.model, st.flow);
        let file = models.join(rel.trim_start_matches("models/"));
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let model = sim::cpu_model(&bytes, &file.display().to_string(), st.flow)
            .map_err(|e| e.to_string())?;
        let n = st.particles.unwrap_or(sim::GPU_DEFAULT_PARTICLES);
        let prep = sim::prepare(&model.arch, &st, n).map_err(|e| e.to_string())?;
        for n in &prep.notices {
            eprintln!("notice: {n}");
        }
        let start = Instant::now();
        let mut run = CpuRun::new(&model, &prep);
        run.run_to_end(&model);
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let plan_steps = prep.plan.steps.len();
        let report = RunReport {
            query: state::to_query(&st),
            backend: "cpu-native".into(),
            adapter: "native f64 reference".into(),
            particles: n,
            steps: prep.steps,
            plan_steps,
            sampler: st.sampler.name().into(),
            seed: st.seed,
            model: st.model.into(),
            flow: st.flow.name().into(),
            direction: st.direction.name().into(),
            recorded: run.traj_x.len(),
            start: sim::point_stats(run.traj_z.first().map(Vec::as_slice).unwrap_or(&[])),
            data: sim::point_stats(run.traj_x.last().map(Vec::as_slice).unwrap_or(&[])),
            latent: sim::point_stats(run.traj_z.last().map(Vec::as_slice).unwrap_or(&[])),
            ms_per_step: 1e3 * secs / plan_steps as f64,
            particle_steps_per_sec: n as f64 * plan_steps as f64 / secs,
        };
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
        Ok(())
    }

    /// The translation of a `view=image` state, natively in `f64` (the page's CPU path).
    fn translation(models: &std::path::Path, st: &state::State) -> Result<(), String> {
        let (src, tgt) = translate::classes(st.translate.direction);
        let load = |class: &str| -> Result<_, String> {
            let file = models.join(format!("{class}-indm.safetensors"));
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            translate::load_model(&bytes, &file.display().to_string()).map_err(|e| e.to_string())
        };
        let m = translate::CpuModels::new(load(src)?, load(tgt)?).map_err(|e| e.to_string())?;
        let id = translate::gallery_id(st);
        let gallery = models.join("../gallery").join(format!("{id}.png"));
        let bytes = std::fs::read(&gallery).map_err(|e| format!("{}: {e}", gallery.display()))?;
        let x = translate::image_file_to_model(&bytes, &gallery.display().to_string())
            .map_err(|e| e.to_string())?;
        // The GPU's default step count: the browser test compares a WebGPU page with this.
        let steps = translate::steps_for(st, false);
        let (sa, ta) = m.archs();
        let stages = translate::job(st, steps, sa, ta).map_err(|e| e.to_string())?;
        let nfe = translate::job_nfe(&stages);
        let start = Instant::now();
        let mut job = translate::CpuJob::new(stages, x.clone());
        job.run_to_end(&m).map_err(|e| e.to_string())?;
        let ms = 1e3 * start.elapsed().as_secs_f64();
        let report = translate::report(st, &id, "cpu-native", steps, nfe, &x, &job.captured, ms);
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
        Ok(())
    }
}
