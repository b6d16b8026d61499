//! The evolve benchmark: for each preset, SEEDS runs of GENERATIONS × POPULATION on
//! every core; how many runs solved it (held-out cases included, judged by flux-core),
//! the median generation of the solved ones, and GP operations per second (FLUX
//! instructions executed ÷ wall time, variation and selection included). Baseline in
//! the same run: the same searches evaluated by `flux_core::run` (a fresh machine per
//! case, as before the evaluation interpreter), on a few presets, and the ratio.
//!
//!   cargo run --release -p datum-plugin-evolve --example bench -- [SEEDS] [GENERATIONS] [POPULATION] [PRESET…]
//!
//! (scripts/bench-evolve runs the protocol: 20 seeds, 100 generations, 1,000.)
//! EVOLVE_SHOW=1 prints each run's best program; EVOLVE_BASELINE=0 skips the baseline
//! (for profiling the search alone).

use std::time::Instant;

use datum_plugin_evolve::gp::{self, Case, Evaluator, Params, Program, Score};
use datum_plugin_evolve::presets::PRESETS;

/// flux-core per case: the reference runtime, as the baseline.
struct Reference;

impl Evaluator for Reference {
    fn evaluate(
        &mut self,
        programs: &[&Program],
        cases: &[Case],
        max_steps: u64,
    ) -> Result<Vec<Score>, String> {
        use rayon::prelude::*;
        Ok(programs
            .par_iter()
            .map(|p| gp::score(&p.code, cases, max_steps))
            .collect())
    }
}

/// An evaluator, timed: the share of the wall time spent running programs (GP ops/s of
/// the evaluator alone, as GPU GP papers count them).
struct TimedWith<E> {
    seconds: f64,
    inner: E,
}

impl<E: Evaluator> Evaluator for TimedWith<E> {
    fn evaluate(
        &mut self,
        programs: &[&Program],
        cases: &[Case],
        max_steps: u64,
    ) -> Result<Vec<Score>, String> {
        let started = Instant::now();
        let scores = self.inner.evaluate(programs, cases, max_steps);
        self.seconds += started.elapsed().as_secs_f64();
        scores
    }
}

struct Tally {
    solved: usize,
    generations: Vec<usize>,
    instructions: u64,
    seconds: f64,
}

fn runs(
    preset: &datum_plugin_evolve::presets::Preset,
    seeds: u64,
    generations: usize,
    population: usize,
    evaluator: &mut dyn Evaluator,
) -> Tally {
    let (train, test) = (preset.train(), preset.test());
    let mut t = Tally {
        solved: 0,
        generations: Vec::new(),
        instructions: 0,
        seconds: 0.0,
    };
    for seed in 1..=seeds {
        let params = Params {
            population,
            generations,
            seed,
            max_steps: preset.max_steps,
            downsample: 1.0,
            constants: preset.constants.to_vec(),
        };
        let started = Instant::now();
        let run = match gp::evolve(&train, &params, evaluator, &mut |_, _| true) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{} seed {seed}: {e}", preset.name);
                continue;
            }
        };
        t.seconds += started.elapsed().as_secs_f64();
        if std::env::var_os("EVOLVE_SHOW").is_some() {
            println!(
                "{} seed {seed}: fitness {:.2} after {} generations\n{}",
                preset.name,
                run.best.score.fitness(),
                run.log.len(),
                run.best.source()
            );
        }
        t.instructions += run.instructions;
        let held_out = gp::score(&run.best.program.code, &test, preset.max_steps);
        if run.best.score.fitness() >= 1.0 && held_out.all_passed() {
            t.solved += 1;
            t.generations.push(run.log.len());
        }
    }
    t
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (seeds, generations, population) = (num(0, 5), num(1, 30) as usize, num(2, 500) as usize);
    let only: Vec<&str> = args.iter().skip(3).map(String::as_str).collect();
    println!(
        "{seeds} seeds × {generations} generations × {population} programs, {} threads",
        rayon::current_num_threads()
    );
    println!(
        "{:<16} {:>7} {:>11} {:>14} {:>18}",
        "preset", "solved", "median gen", "GP ops/s", "evaluation alone"
    );
    let (mut half, mut total, mut ops, mut secs, mut eval_secs) = (0, 0, 0u64, 0.0, 0.0);
    for p in PRESETS
        .iter()
        .filter(|p| only.is_empty() || only.contains(&p.name))
    {
        let mut timed = TimedWith {
            seconds: 0.0,
            inner: gp::Cpu,
        };
        let t = runs(p, seeds, generations, population, &mut timed);
        let mut g = t.generations.clone();
        g.sort_unstable();
        let median = g
            .get(g.len().saturating_sub(1) / 2)
            .map_or("-".to_owned(), |m| m.to_string());
        println!(
            "{:<16} {:>4}/{:<2} {:>11} {:>14.0} {:>18.0}",
            p.name,
            t.solved,
            seeds,
            median,
            t.instructions as f64 / t.seconds.max(1e-9),
            t.instructions as f64 / timed.seconds.max(1e-9)
        );
        eval_secs += timed.seconds;
        total += 1;
        if 2 * t.solved as u64 >= seeds {
            half += 1;
        }
        ops += t.instructions;
        secs += t.seconds;
    }
    println!("presets solved in at least half of their runs: {half} of {total}");
    let fast = ops as f64 / secs.max(1e-9);
    println!(
        "GP ops/s, all runs: {fast:.0} (evaluation alone: {:.0})",
        ops as f64 / eval_secs.max(1e-9)
    );
    if std::env::var("EVOLVE_BASELINE").is_ok_and(|v| v == "0") {
        return; // (for profiling the search alone)
    }
    // Baseline, same run: the same searches with flux-core evaluating (a fresh machine
    // per case), one seed of the first three presets asked for, so it stays short; the
    // evaluation time alone is compared, since the search around it is the same.
    let chosen: Vec<_> = PRESETS
        .iter()
        .filter(|p| only.is_empty() || only.contains(&p.name))
        .take(3)
        .collect();
    let (mut b_ops, mut f_ops) = (0u64, 0u64);
    let mut reference = TimedWith {
        seconds: 0.0,
        inner: Reference,
    };
    let mut fast = TimedWith {
        seconds: 0.0,
        inner: gp::Cpu,
    };
    for p in chosen {
        b_ops += runs(p, 1, generations.min(20), population, &mut reference).instructions;
        f_ops += runs(p, 1, generations.min(20), population, &mut fast).instructions;
    }
    let (b, f) = (
        b_ops as f64 / reference.seconds.max(1e-9),
        f_ops as f64 / fast.seconds.max(1e-9),
    );
    println!(
        "baseline, evaluation alone: flux_core::run per case {b:.0} GP ops/s; evaluation interpreter {f:.0} GP ops/s; ratio {:.1}×",
        f / b.max(1e-9)
    );
}
