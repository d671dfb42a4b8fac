//! Every model file the demo ships loads, matches the architecture the trainer writes
//! today, and still samples its data set. Stale weights are how demos rot: retrain with
//! `bash scripts/demo_models.sh` when this fails after an architecture change.

use std::path::PathBuf;

use indm::data::toy2d::Toy2d;
use indm::rng::Stream;
use web::sim::{self, CpuRun};
use web::state::{DATASETS, FlowChoice, Sampler, State};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

#[test]
fn every_shipped_model_matches_the_current_architecture_and_samples_its_data() {
    let mut checked = 0;
    for d in DATASETS {
        for flow in [FlowChoice::Indm, FlowChoice::Baseline] {
            let rel = sim::model_path(d, flow);
            let file = models_dir().join(rel.trim_start_matches("models/"));
            let bytes = std::fs::read(&file)
                .unwrap_or_else(|e| panic!("{}: {e} (run scripts/demo_models.sh)", file.display()));
            assert!(
                bytes.len() < 1 << 20,
                "{}: {} bytes; the demo ships small models",
                file.display(),
                bytes.len()
            );
            let model = sim::cpu_model(&bytes, &file.display().to_string(), flow)
                .unwrap_or_else(|e| panic!("{e}"));
            if let Some(diff) = model.arch.difference(&sim::expected_architecture(flow)) {
                panic!(
                    "{}: architecture differs from what the trainer writes now: {diff}",
                    file.display()
                );
            }
            // A short deterministic run must land on the data set: mean and spread close
            // to the data's (catches untrained, swapped or corrupted weights).
            let state = State {
                model: d,
                flow,
                sampler: Sampler::OdeHeun,
                steps: 40,
                seed: 1,
                ..State::default()
            };
            let n = 1500;
            let prep = sim::prepare(&model.arch, &state, n).unwrap();
            let mut run = CpuRun::new(&model, &prep);
            run.run_to_end(&model);
            let got = sim::point_stats(run.traj_x.last().unwrap());
            let data = Toy2d::from_name(d).unwrap().sample(20_000, 5, 0, Stream::TestData);
            let want = sim::point_stats(&data);
            assert_eq!(got.non_finite, 0, "{d} {flow:?}: non-finite samples");
            let spread = (want.cov[0] + want.cov[2]).sqrt();
            for k in 0..2 {
                assert!(
                    (got.mean[k] - want.mean[k]).abs() < 0.25 * spread,
                    "{d} {flow:?}: mean {:?}, data {:?}",
                    got.mean,
                    want.mean
                );
            }
            for k in [0, 2] {
                let r = got.cov[k] / want.cov[k];
                assert!(
                    (0.6..1.5).contains(&r),
                    "{d} {flow:?}: covariance {:?}, data {:?}",
                    got.cov,
                    want.cov
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}
