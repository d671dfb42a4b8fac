//! `trainer`: the native INDM trainer (burn). Run with no arguments to train
//! INDM on the checkerboard with the default budget.

mod bench_sample;
mod checkpoint;
mod cli;
mod commands;
mod config;
mod eval;
mod grid;
mod image_run;
mod plots;
mod run;
mod translate;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(e) = commands::dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
