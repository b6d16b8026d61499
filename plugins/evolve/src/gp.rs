//! The search: linear genetic programming over genomes of [`Gene`]s.
//!
//! Before a genome is evaluated its non-effective code is removed
//! ([`crate::gene::effective`]) and it is lowered to FLUX; programs the validator
//! rejects score nothing. Selection is lexicase (optionally down-sampled) over groups of
//! programs that pass the same cases; variation is two-point crossover then UMAD
//! (uniform mutation by addition and deletion, Helmuth et al. 2018); size pressure
//! breaks ties. Every random choice comes from one seeded generator on one thread, and
//! evaluation results are collected in order, so a seed gives the same best program
//! byte for byte however many cores (or GPUs, or nodes) evaluate.

use std::collections::HashMap;
use std::sync::Arc;

use crate::exec::{self, Scratch};
use crate::gene::{effective, repair, Gene, Prim, MAX_GENES};
#[cfg(test)]
use crate::gene::{encode, lower};
use flux_core::{Config, Status};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

/// A test case: the initial stack (bottom first) and the answer, which must be the
/// whole final stack (as a tool's `; case:` line says).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    pub input: Vec<i32>,
    pub output: i32,
}

/// A run's error on one case: 0 when the final stack is exactly the answer; else how
/// far the top is from it plus a penalty per extra word; the most when the run trapped
/// or left nothing. Lexicase selects on these (as PushGP does), so a program that is
/// close is preferred to one that is far, not only one that is right.
pub fn error(stack: Option<&[i32]>, expected: i32) -> u64 {
    const EXTRA: u64 = 1_000;
    const NOTHING: u64 = 1 << 40;
    match stack {
        Some([.., top]) => {
            let extra = stack.map_or(0, |s| s.len() as u64 - 1);
            (*top as i64 - expected as i64).unsigned_abs() + EXTRA * extra
        }
        _ => NOTHING,
    }
}

/// How one program did on each case.
#[derive(Debug, Clone)]
pub struct Score {
    /// The error on each case (0 = passed).
    pub errors: Vec<u64>,
    pub steps: u64,
}

impl Score {
    /// Nothing passed (a program the validator rejected).
    pub fn nothing(cases: usize) -> Score {
        Score {
            errors: vec![error(None, 0); cases],
            steps: 0,
        }
    }

    pub fn passed(&self) -> usize {
        self.errors.iter().filter(|e| **e == 0).count()
    }

    pub fn all_passed(&self) -> bool {
        self.passed() == self.errors.len()
    }

    pub fn fitness(&self) -> f64 {
        if self.errors.is_empty() {
            0.0
        } else {
            self.passed() as f64 / self.errors.len() as f64
        }
    }
}

/// Run one program on every case (flux-core, the reference runtime).
pub fn score(code: &[u8], cases: &[Case], max_steps: u64) -> Score {
    let mut errors = Vec::with_capacity(cases.len());
    let mut steps = 0;
    for c in cases {
        let config = Config {
            initial_stack: c.input.iter().map(|w| *w as u32).collect(),
            max_steps,
            ..Config::default()
        };
        let r = flux_core::run(code, &config);
        steps += r.steps;
        let ok = matches!(r.status, Status::Halted | Status::End);
        errors.push(error(ok.then_some(&r.stack[..]), c.output));
    }
    Score { errors, steps }
}

/// Score one lowered program on every case with the evaluation interpreter.
pub fn score_fast(prims: &[Prim], cases: &[Case], max_steps: u64, s: &mut Scratch) -> Score {
    let mut errors = Vec::with_capacity(cases.len());
    let mut steps = 0;
    for c in cases {
        let out = exec::run(prims, &c.input, max_steps, s);
        steps += out.steps;
        errors.push(error(out.end.ok().map(|d| s.stack(d)), c.output));
    }
    Score { errors, steps }
}

/// Parameters of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub population: usize,
    pub generations: usize,
    pub seed: u64,
    pub max_steps: u64,
    /// Share of training cases each generation selects on (1.0 = all).
    pub downsample: f64,
    /// Constants `push` genes may use besides [`crate::gene::CONSTANTS`].
    pub constants: Vec<i32>,
}

/// What runs for a genome: its effective genes (less any that can never get their
/// operands), their FLUX instructions and bytes, and whether the validator accepts it.
#[derive(Debug)]
pub struct Program {
    pub genes: Vec<Gene>,
    pub prims: Vec<Prim>,
    pub code: Vec<u8>,
    pub valid: bool,
}

impl Program {
    /// What runs for a genome already stripped of non-effective code.
    fn of(effective: &[Gene], depth: usize) -> Program {
        let (genes, prims, code, valid) = repair(effective.to_vec(), depth);
        Program {
            genes,
            prims,
            code,
            valid,
        }
    }
}

/// Evaluates a whole generation: the CPU here (all cores in the native build), or a
/// device or the fleet through a plugin call. Must return scores in the order given.
pub trait Evaluator {
    fn evaluate(
        &mut self,
        programs: &[&Program],
        cases: &[Case],
        max_steps: u64,
    ) -> Result<Vec<Score>, String>;
}

/// The evaluation interpreter on every core (native build) or one (WASM build).
pub struct Cpu;

impl Evaluator for Cpu {
    fn evaluate(
        &mut self,
        programs: &[&Program],
        cases: &[Case],
        max_steps: u64,
    ) -> Result<Vec<Score>, String> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            Ok(programs
                .par_iter()
                .map_init(Scratch::default, |s, p| {
                    score_fast(&p.prims, cases, max_steps, s)
                })
                .collect())
        }
        #[cfg(target_arch = "wasm32")]
        {
            let mut s = Scratch::default();
            Ok(programs
                .iter()
                .map(|p| score_fast(&p.prims, cases, max_steps, &mut s))
                .collect())
        }
    }
}

/// One individual of a generation.
#[derive(Debug, Clone)]
pub struct Individual {
    /// Its genome, as bred: non-effective code stays in it (neutral material for
    /// variation) and is only left out of what runs.
    pub genome: Vec<Gene>,
    /// What runs: what size pressure counts, what is saved (shared by every
    /// individual with the same effective code).
    pub program: Arc<Program>,
    pub score: Arc<Score>,
}

impl Individual {
    /// Better first: fitness, then fewer genes, then fewer steps.
    fn key(&self) -> (std::cmp::Reverse<u64>, usize, u64) {
        (
            std::cmp::Reverse((self.score.fitness() * 1e9) as u64),
            self.program.genes.len(),
            self.score.steps,
        )
    }

    /// Its FLUX source.
    pub fn source(&self) -> String {
        crate::gene::source(&self.program.prims)
    }
}

/// One line of the log.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationReport {
    pub generation: usize,
    pub fitness: f64,
    pub size: usize,
    pub evals: u64,
    pub instructions: u64,
}

pub struct Run {
    pub best: Individual,
    pub log: Vec<GenerationReport>,
    pub instructions: u64,
    pub evals: u64,
}

/// Initial genomes have 1 to this many genes.
const INITIAL_GENES: u64 = 20;

fn random_genome(rng: &mut Xoshiro256PlusPlus, constants: &[i32]) -> Vec<Gene> {
    let len = 1 + (rng.next_u64() % INITIAL_GENES) as usize;
    (0..len).map(|_| Gene::random(rng, constants)).collect()
}

fn below(rng: &mut Xoshiro256PlusPlus, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

fn chance(rng: &mut Xoshiro256PlusPlus, p: f64) -> bool {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) < p
}

/// Programs grouped by their errors: lexicase filters groups (far fewer than
/// programs), and the survivor is drawn from the surviving groups' members, which is
/// what filtering every program would give.
struct Groups<'p> {
    errors: Vec<&'p [u64]>,
    members: Vec<Vec<usize>>,
    /// For each case, the groups with the least error on it: every selection's first
    /// filter, computed once.
    best_on: Vec<Vec<usize>>,
}

impl<'p> Groups<'p> {
    fn of(pop: &'p [Individual], cases: usize) -> Groups<'p> {
        let mut index: HashMap<&[u64], usize> = HashMap::new();
        let mut g = Groups {
            errors: Vec::new(),
            members: Vec::new(),
            best_on: Vec::new(),
        };
        for (i, ind) in pop.iter().enumerate() {
            let k = *index.entry(&ind.score.errors).or_insert_with(|| {
                g.errors.push(&ind.score.errors);
                g.members.push(Vec::new());
                g.errors.len() - 1
            });
            g.members[k].push(i);
        }
        g.best_on = (0..cases)
            .map(|c| {
                let least = g.errors.iter().map(|e| e[c]).min().unwrap_or(0);
                (0..g.errors.len())
                    .filter(|k| g.errors[*k][c] == least)
                    .collect()
            })
            .collect();
        g
    }

    /// Lexicase: cases in random order, keep the groups with the least error on each,
    /// until one group is left; then one of its programs.
    fn select(&self, cases: &[usize], rng: &mut Xoshiro256PlusPlus) -> usize {
        let mut order = cases.to_vec();
        for i in (1..order.len()).rev() {
            let j = below(rng, i + 1);
            order.swap(i, j);
        }
        let Some(first) = order.first() else {
            return below(rng, self.members.iter().map(Vec::len).sum());
        };
        let mut pool = self.best_on[*first].clone();
        for &c in &order[1..] {
            if pool.len() == 1 {
                break;
            }
            let least = pool.iter().map(|g| self.errors[*g][c]).min().unwrap_or(0);
            pool.retain(|g| self.errors[*g][c] == least);
        }
        let total: usize = pool.iter().map(|g| self.members[*g].len()).sum();
        let mut k = below(rng, total);
        for g in pool {
            let m = &self.members[g];
            if k < m.len() {
                return m[k];
            }
            k -= m.len();
        }
        0
    }
}

/// Two-point crossover (half the time), then UMAD: a random gene added before each gene
/// with probability 0.09, then each gene deleted with probability 0.09 / 1.09, so size
/// stays the same on average; and each gene's parameter nudged with probability 0.05.
fn vary(a: &[Gene], b: &[Gene], constants: &[i32], rng: &mut Xoshiro256PlusPlus) -> Vec<Gene> {
    let parent = if rng.next_u64().is_multiple_of(2) && !b.is_empty() {
        let (i, j) = (below(rng, a.len() + 1), below(rng, a.len() + 1));
        let (i, j) = (i.min(j), i.max(j));
        let (k, l) = (below(rng, b.len() + 1), below(rng, b.len() + 1));
        let (k, l) = (k.min(l), k.max(l));
        let mut c = a[..i].to_vec();
        c.extend_from_slice(&b[k..l]);
        c.extend_from_slice(&a[j..]);
        c
    } else {
        a.to_vec()
    };
    const ADD: f64 = 0.09;
    const TWEAK: f64 = 0.05;
    let mut grown = Vec::with_capacity(parent.len() * 2 + 1);
    for g in parent {
        if chance(rng, ADD) {
            grown.push(Gene::random(rng, constants));
        }
        // A small step too: a block one gene longer or shorter, another constant.
        grown.push(if chance(rng, TWEAK) {
            g.tweak(rng, constants)
        } else {
            g
        });
    }
    if chance(rng, ADD) {
        grown.push(Gene::random(rng, constants));
    }
    let mut child: Vec<Gene> = grown
        .into_iter()
        .filter(|_| !chance(rng, ADD / (1.0 + ADD)))
        .collect();
    child.truncate(MAX_GENES);
    if child.is_empty() {
        child.push(Gene::random(rng, constants));
    }
    child
}

/// `f` over `items` on every core (native build) or in turn (WASM build); the results
/// in order either way.
fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync + Send) -> Vec<U> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        items.par_iter().map(f).collect()
    }
    #[cfg(target_arch = "wasm32")]
    {
        items.iter().map(f).collect()
    }
}

/// Programs already prepared and scored, by effective genes: this generation's and the
/// last one's (elites, clones and re-found programs are not prepared or run again).
type Seen = HashMap<Vec<Gene>, (Arc<Program>, Arc<Score>)>;

/// Evolve against `train`. `on_generation` sees each generation's report (printing,
/// progress) and may stop the run early by returning false.
pub fn evolve(
    train: &[Case],
    params: &Params,
    evaluator: &mut dyn Evaluator,
    on_generation: &mut dyn FnMut(&GenerationReport, &Individual) -> bool,
) -> Result<Run, String> {
    let constants = &params.constants;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
    let mut genomes: Vec<Vec<Gene>> = (0..params.population.max(2))
        .map(|_| random_genome(&mut rng, constants))
        .collect();
    let mut log = Vec::new();
    let (mut instructions, mut evals) = (0u64, 0u64);
    let mut best: Option<Individual> = None;
    let depth = train.iter().map(|c| c.input.len()).min().unwrap_or(0);
    let mut last: Seen = HashMap::new();
    for generation in 0..params.generations.max(1) {
        let effective_genomes = par_map(&genomes, |g| effective(g, depth));
        // The effective programs not seen last generation, each once.
        let mut seen: Seen = HashMap::new();
        let mut fresh: Vec<&Vec<Gene>> = Vec::new();
        {
            let mut asked = std::collections::HashSet::new();
            for e in &effective_genomes {
                if let Some(hit) = last.get(e) {
                    seen.insert(e.clone(), hit.clone());
                } else if asked.insert(e) {
                    fresh.push(e);
                }
            }
        }
        // What runs: the effective genes, less any that can never get their operands.
        // A program that still fails validation (an instruction that always traps when
        // reached) scores nothing and is not run, so whatever is saved validates.
        let prepared: Vec<Arc<Program>> = par_map(&fresh, |e| Arc::new(Program::of(e, depth)));
        let runnable: Vec<&Program> = prepared.iter().filter(|p| p.valid).map(|p| &**p).collect();
        let scores = evaluator.evaluate(&runnable, train, params.max_steps)?;
        if scores.len() != runnable.len() {
            return Err(format!(
                "the evaluator returned {} scores for {} programs",
                scores.len(),
                runnable.len()
            ));
        }
        instructions += scores.iter().map(|s| s.steps).sum::<u64>();
        let mut scores = scores.into_iter();
        for (e, program) in fresh.into_iter().zip(prepared.iter()) {
            let score = if program.valid {
                scores.next().ok_or("an evaluated program went missing")?
            } else {
                Score::nothing(train.len())
            };
            seen.insert(e.clone(), (program.clone(), Arc::new(score)));
        }
        let mut pop: Vec<Individual> = Vec::with_capacity(genomes.len());
        for (genome, e) in genomes.iter().zip(&effective_genomes) {
            let (program, score) = seen.get(e).ok_or("a program went missing")?;
            pop.push(Individual {
                genome: genome.clone(),
                program: program.clone(),
                score: score.clone(),
            });
        }
        last = seen;
        evals += (pop.len() * train.len()) as u64;
        let champion = pop
            .iter()
            .min_by_key(|i| i.key())
            .cloned()
            .ok_or("empty population")?;
        if best.as_ref().is_none_or(|b| champion.key() < b.key()) {
            best = Some(champion);
        }
        let b = best.as_ref().ok_or("no best")?;
        let report = GenerationReport {
            generation: generation + 1,
            fitness: b.score.fitness(),
            size: b.program.genes.len(),
            evals,
            instructions,
        };
        log.push(report.clone());
        if !on_generation(&report, b) || b.score.fitness() >= 1.0 {
            break;
        }
        // Down-sampled lexicase: this generation's selection sees a subset of cases.
        let mut selected: Vec<usize> = (0..train.len()).collect();
        if params.downsample < 1.0 {
            let keep =
                ((train.len() as f64 * params.downsample).ceil() as usize).clamp(1, train.len());
            for i in (1..selected.len()).rev() {
                let j = below(&mut rng, i + 1);
                selected.swap(i, j);
            }
            selected.truncate(keep);
        }
        let groups = Groups::of(&pop, train.len());
        // Each child draws from its own generator, seeded in turn from the run's, so
        // children are bred on every core and still the same for a seed.
        let seeds: Vec<u64> = (1..genomes.len()).map(|_| rng.next_u64()).collect();
        let children = par_map(&seeds, |seed| {
            let mut r = Xoshiro256PlusPlus::seed_from_u64(*seed);
            let a = &pop[groups.select(&selected, &mut r)].genome;
            let c = &pop[groups.select(&selected, &mut r)].genome;
            vary(a, c, constants, &mut r)
        });
        genomes = std::iter::once(b.genome.clone()).chain(children).collect();
    }
    let best = best.ok_or("no generation ran")?;
    Ok(Run {
        best,
        log,
        instructions,
        evals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(f: impl Fn(i32) -> i32, xs: &[i32]) -> Vec<Case> {
        xs.iter()
            .map(|x| Case {
                input: vec![*x],
                output: f(*x),
            })
            .collect()
    }

    #[test]
    fn encoded_bytes_are_what_the_source_assembles_to() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        for _ in 0..500 {
            let prims = lower(&random_genome(&mut rng, &[1000]));
            let text = crate::gene::source(&prims);
            let from_text = flux_core::asm::assemble(&text).unwrap();
            assert_eq!(encode(&prims), from_text, "{text}");
        }
    }

    #[test]
    fn removing_non_effective_code_changes_no_result() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let inputs: Vec<Case> = (-5..=5)
            .map(|x| Case {
                input: vec![x, 3],
                output: 0,
            })
            .collect();
        for _ in 0..2000 {
            let mut g = random_genome(&mut rng, &[]);
            g.extend([Gene::Push(1), Gene::Pop, Gene::Halt, Gene::Add]);
            let e = effective(&g, 2);
            assert!(e.len() <= g.len());
            for c in &inputs {
                let config = Config {
                    initial_stack: c.input.iter().map(|w| *w as u32).collect(),
                    max_steps: 500,
                    ..Config::default()
                };
                let (a, b) = (
                    flux_core::run(&encode(&lower(&g)), &config),
                    flux_core::run(&encode(&lower(&e)), &config),
                );
                // Same observable result (steps may differ: less code ran).
                assert_eq!(
                    (a.stack, a.error),
                    (b.stack, b.error),
                    "{}\n---\n{}",
                    crate::gene::source(&lower(&g)),
                    crate::gene::source(&lower(&e))
                );
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_program() {
        let train = cases(|x| 2 * x, &[-3, -1, 0, 1, 2, 5, 9]);
        let params = Params {
            population: 60,
            generations: 15,
            seed: 42,
            max_steps: 200,
            downsample: 1.0,
            constants: vec![],
        };
        let run = |seed| {
            let p = Params {
                seed,
                ..params.clone()
            };
            evolve(&train, &p, &mut Cpu, &mut |_, _| true)
                .unwrap()
                .best
                .program
                .code
                .clone()
        };
        assert_eq!(run(42), run(42));
        assert_eq!(run(43), run(43));
    }

    #[test]
    fn doubling_is_found() {
        let train = cases(|x| 2 * x, &[-3, -1, 0, 1, 2, 5, 9, 40]);
        let params = Params {
            population: 1000,
            generations: 30,
            seed: 1,
            max_steps: 200,
            downsample: 1.0,
            constants: vec![],
        };
        let run = evolve(&train, &params, &mut Cpu, &mut |_, _| true).unwrap();
        assert_eq!(run.best.score.fitness(), 1.0, "{}", run.best.source());
        let held_out = cases(|x| 2 * x, &[-100, 77, 1000]);
        assert!(score(&run.best.program.code, &held_out, 200).all_passed());
    }
}
