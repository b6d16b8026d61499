//! Linear genetic programming over FLUX stack-profile programs.
//!
//! A genome is a list of genes, one FLUX instruction each, drawn from a subset that can
//! express the presets: small constants, stack shuffles, arithmetic, comparisons, three
//! memory cells, and short forward/backward conditional jumps (loops). Before a genome
//! is evaluated its non-effective code is removed (`effective`): pairs that cancel, code
//! no jump can reach after a HALT, trailing jumps. Selection is lexicase (optionally
//! down-sampled); variation is two-point crossover plus point, insertion and deletion
//! mutation; size pressure breaks ties. Every random choice comes from one seeded
//! generator on one thread, and evaluation results are collected in order, so a seed
//! gives the same best program byte for byte however many cores evaluate.

use flux_core::{Config, Status};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

/// One instruction of a genome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gene {
    Push(i32),
    Dup,
    Swap,
    Over,
    Rot,
    Pop,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Neg,
    Inc,
    Dec,
    Lt,
    Gt,
    Eq,
    And,
    Or,
    Load(u8),
    Store(u8),
    /// Jump `n` genes forward (skip) when Z = 1.
    Jz(u8),
    /// Jump `n` genes back (loop) when Z = 0.
    Jnz(u8),
    Halt,
}

const CONSTANTS: [i32; 7] = [0, 1, 2, 3, 10, -1, 100];
const CELLS: u8 = 3;
const MAX_JUMP: u8 = 8;
/// Genomes never grow past this.
pub const MAX_GENES: usize = 48;

impl Gene {
    fn random(rng: &mut Xoshiro256PlusPlus) -> Gene {
        let pick = |rng: &mut Xoshiro256PlusPlus, n: u64| (rng.next_u64() % n) as usize;
        match pick(rng, 24) {
            0 | 1 => Gene::Push(CONSTANTS[pick(rng, CONSTANTS.len() as u64)]),
            2 => Gene::Dup,
            3 => Gene::Swap,
            4 => Gene::Over,
            5 => Gene::Rot,
            6 => Gene::Pop,
            7 => Gene::Add,
            8 => Gene::Sub,
            9 => Gene::Mul,
            10 => Gene::Div,
            11 => Gene::Mod,
            12 => Gene::Neg,
            13 => Gene::Inc,
            14 => Gene::Dec,
            15 => Gene::Lt,
            16 => Gene::Gt,
            17 => Gene::Eq,
            18 => Gene::And,
            19 => Gene::Or,
            20 => Gene::Load(pick(rng, CELLS as u64) as u8),
            21 => Gene::Store(pick(rng, CELLS as u64) as u8),
            22 => Gene::Jz(1 + pick(rng, MAX_JUMP as u64) as u8),
            _ => Gene::Jnz(1 + pick(rng, MAX_JUMP as u64) as u8),
        }
    }

    /// The gene index a jump at `at` goes to, in a genome of `len` genes (`len` is the
    /// final HALT); `None` for every other gene. One rule for the assembly, the bytes and
    /// the non-effective-code analysis.
    pub fn target(self, at: usize, len: usize) -> Option<usize> {
        match self {
            Gene::Jz(n) => Some((at + 1 + n as usize).min(len)),
            Gene::Jnz(n) => Some(at.saturating_sub(n as usize)),
            _ => None,
        }
    }

    /// Its assembly (datum syntax, §13.2); jumps name labels `gN`.
    fn asm(self, at: usize, len: usize) -> String {
        match self {
            Gene::Push(v) => format!("push {v}"),
            Gene::Dup => "dup".into(),
            Gene::Swap => "swap".into(),
            Gene::Over => "over".into(),
            Gene::Rot => "rot".into(),
            Gene::Pop => "pop".into(),
            Gene::Add => "add".into(),
            Gene::Sub => "sub".into(),
            Gene::Mul => "mul".into(),
            Gene::Div => "div".into(),
            Gene::Mod => "mod".into(),
            Gene::Neg => "neg".into(),
            Gene::Inc => "inc".into(),
            Gene::Dec => "dec".into(),
            Gene::Lt => "lt".into(),
            Gene::Gt => "gt".into(),
            Gene::Eq => "eq".into(),
            Gene::And => "and".into(),
            Gene::Or => "or".into(),
            Gene::Load(c) => format!("load {}", 4 * c as u32),
            Gene::Store(c) => format!("store {}", 4 * c as u32),
            Gene::Jz(_) => format!("jz g{}", self.target(at, len).unwrap_or(len)),
            Gene::Jnz(_) => format!("jnz g{}", self.target(at, len).unwrap_or(at)),
            Gene::Halt => "halt".into(),
        }
    }
}

/// The genome as a FLUX source: one labelled line per gene, a final `halt`.
pub fn source(genes: &[Gene]) -> String {
    let mut s = String::new();
    for (i, g) in genes.iter().enumerate() {
        s.push_str(&format!("g{i}: {}\n", g.asm(i, genes.len())));
    }
    s.push_str(&format!("g{}: halt\n", genes.len()));
    s
}

/// The genome as FLUX bytes (encoded directly, with the same jump targets `source`
/// names, so the evaluated bytes are exactly what `--save` writes).
pub fn encode(genes: &[Gene]) -> Vec<u8> {
    let size = |g: &Gene| match g {
        Gene::Push(_) => 5,
        Gene::Load(_) | Gene::Store(_) | Gene::Jz(_) | Gene::Jnz(_) => 3,
        _ => 1,
    };
    let mut offsets = Vec::with_capacity(genes.len() + 1);
    let mut at = 0usize;
    for g in genes {
        offsets.push(at);
        at += size(g);
    }
    offsets.push(at);
    let mut code = Vec::with_capacity(at + 1);
    for (i, g) in genes.iter().enumerate() {
        let next = offsets[i] + size(g);
        let rel = |target: usize| -> [u8; 2] {
            ((offsets[target] as i64 - next as i64) as i16).to_le_bytes()
        };
        match *g {
            Gene::Push(v) => {
                code.push(0x55);
                code.extend_from_slice(&v.to_le_bytes());
            }
            Gene::Dup => code.push(0x60),
            Gene::Swap => code.push(0x61),
            Gene::Over => code.push(0x62),
            Gene::Rot => code.push(0x63),
            Gene::Pop => code.push(0x56),
            Gene::Add => code.push(0x10),
            Gene::Sub => code.push(0x11),
            Gene::Mul => code.push(0x12),
            Gene::Div => code.push(0x13),
            Gene::Mod => code.push(0x14),
            Gene::Neg => code.push(0x15),
            Gene::Inc => code.push(0x16),
            Gene::Dec => code.push(0x17),
            Gene::Lt => code.push(0x22),
            Gene::Gt => code.push(0x24),
            Gene::Eq => code.push(0x20),
            Gene::And => code.push(0x30),
            Gene::Or => code.push(0x31),
            Gene::Load(c) => {
                code.push(0x40);
                code.extend_from_slice(&(4 * c as u16).to_le_bytes());
            }
            Gene::Store(c) => {
                code.push(0x41);
                code.extend_from_slice(&(4 * c as u16).to_le_bytes());
            }
            Gene::Jz(_) | Gene::Jnz(_) => {
                code.push(if matches!(g, Gene::Jz(_)) { 0x51 } else { 0x52 });
                code.extend_from_slice(&rel(g.target(i, genes.len()).unwrap_or(i)));
            }
            Gene::Halt => code.push(0x00),
        }
    }
    code.push(0x00);
    code
}

/// Remove non-effective code: everything after the first HALT that no jump can reach,
/// pairs that cancel (`push c; pop`, `dup; pop`, `swap; swap`, `neg; neg`, `inc; dec`,
/// `dec; inc`) where the stack is deep enough that neither could trap. (A jump is
/// never removed: even one to the end pops the stack.) `depth` is the smallest initial stack the program will be run with.
/// Repeated to a fixed point; the result gives the same stack and trap as the input on
/// every input (the tests check it on thousands of random genomes).
pub fn effective(genes: &[Gene], depth: usize) -> Vec<Gene> {
    let mut g = genes.to_vec();
    loop {
        let before = g.len();
        let jumps = g.iter().any(|x| matches!(x, Gene::Jz(_) | Gene::Jnz(_)));
        let targets: Vec<usize> = g
            .iter()
            .enumerate()
            .filter_map(|(i, x)| x.target(i, g.len()))
            .collect();
        if let Some(h) = g.iter().position(|x| *x == Gene::Halt) {
            if !targets.iter().any(|t| *t > h)
                || !g[..h]
                    .iter()
                    .any(|x| matches!(x, Gene::Jz(_) | Gene::Jnz(_)))
            {
                g.truncate(h);
            }
        }
        // Cancelling pairs, only in straight-line code (removing genes would move every
        // jump target) and only where the stack is known to be deep enough.
        if !jumps {
            let mut d = depth;
            let mut i = 0;
            while i + 1 < g.len() {
                let need = match (g[i], g[i + 1]) {
                    (Gene::Push(_), Gene::Pop) => Some(0),
                    (Gene::Dup, Gene::Pop)
                    | (Gene::Neg, Gene::Neg)
                    | (Gene::Inc, Gene::Dec)
                    | (Gene::Dec, Gene::Inc) => Some(1),
                    (Gene::Swap, Gene::Swap) => Some(2),
                    _ => None,
                };
                if need.is_some_and(|n| d >= n) {
                    g.drain(i..i + 2);
                    continue;
                }
                let (needs, after) = effect(g[i], d);
                if d < needs {
                    break; // it traps here: nothing after it runs
                }
                d = after;
                i += 1;
            }
        }
        if g.len() == before {
            return g;
        }
    }
}

/// What a gene needs on the stack, and the depth after it.
fn effect(g: Gene, d: usize) -> (usize, usize) {
    match g {
        Gene::Push(_) | Gene::Load(_) => (0, d + 1),
        Gene::Dup => (1, d + 1),
        Gene::Over => (2, d + 1),
        Gene::Swap => (2, d),
        Gene::Rot => (3, d),
        Gene::Neg | Gene::Inc | Gene::Dec => (1, d),
        Gene::Pop | Gene::Store(_) | Gene::Jz(_) | Gene::Jnz(_) => (1, d.saturating_sub(1)),
        Gene::Add
        | Gene::Sub
        | Gene::Mul
        | Gene::Div
        | Gene::Mod
        | Gene::Lt
        | Gene::Gt
        | Gene::Eq
        | Gene::And
        | Gene::Or => (2, d.saturating_sub(1)),
        Gene::Halt => (0, d),
    }
}

/// A test case: the initial stack (bottom first) and the answer, which must be the
/// whole final stack (as a tool's `; case:` line says).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    pub input: Vec<i32>,
    pub output: i32,
}

/// How one program did on each case.
#[derive(Debug, Clone)]
pub struct Score {
    pub passed: Vec<bool>,
    pub steps: u64,
}

impl Score {
    pub fn fitness(&self) -> f64 {
        if self.passed.is_empty() {
            0.0
        } else {
            self.passed.iter().filter(|p| **p).count() as f64 / self.passed.len() as f64
        }
    }
}

/// Run one program on every case (flux-core, the reference runtime).
pub fn score(code: &[u8], cases: &[Case], max_steps: u64) -> Score {
    let mut passed = Vec::with_capacity(cases.len());
    let mut steps = 0;
    for c in cases {
        let config = Config {
            initial_stack: c.input.iter().map(|w| *w as u32).collect(),
            max_steps,
            ..Config::default()
        };
        let r = flux_core::run(code, &config);
        steps += r.steps;
        passed.push(matches!(r.status, Status::Halted | Status::End) && r.stack == [c.output]);
    }
    Score { passed, steps }
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
}

/// Evaluates a whole generation: the CPU here (all cores in the native build), or a
/// device through a plugin call. Must return scores in the order given.
pub trait Evaluator {
    fn evaluate(
        &mut self,
        programs: &[Vec<u8>],
        cases: &[Case],
        max_steps: u64,
    ) -> Result<Vec<Score>, String>;
}

/// flux-core on every core (native build) or one (WASM build).
pub struct Cpu;

impl Evaluator for Cpu {
    fn evaluate(
        &mut self,
        programs: &[Vec<u8>],
        cases: &[Case],
        max_steps: u64,
    ) -> Result<Vec<Score>, String> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            Ok(programs
                .par_iter()
                .map(|p| score(p, cases, max_steps))
                .collect())
        }
        #[cfg(target_arch = "wasm32")]
        {
            Ok(programs
                .iter()
                .map(|p| score(p, cases, max_steps))
                .collect())
        }
    }
}

/// One individual of a generation.
#[derive(Debug, Clone)]
pub struct Individual {
    pub genes: Vec<Gene>,
    pub code: Vec<u8>,
    pub score: Score,
}

impl Individual {
    /// Better first: fitness, then fewer genes, then fewer steps.
    fn key(&self) -> (std::cmp::Reverse<u64>, usize, u64) {
        (
            std::cmp::Reverse((self.score.fitness() * 1e9) as u64),
            self.genes.len(),
            self.score.steps,
        )
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

fn random_genome(rng: &mut Xoshiro256PlusPlus) -> Vec<Gene> {
    let len = 1 + (rng.next_u64() % 12) as usize;
    (0..len).map(|_| Gene::random(rng)).collect()
}

fn below(rng: &mut Xoshiro256PlusPlus, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

/// Lexicase: cases in random order, keep whoever passes each, until one is left.
fn lexicase<'a>(
    pop: &'a [Individual],
    cases: &[usize],
    rng: &mut Xoshiro256PlusPlus,
) -> &'a Individual {
    let mut order = cases.to_vec();
    for i in (1..order.len()).rev() {
        let j = below(rng, i + 1);
        order.swap(i, j);
    }
    let mut pool: Vec<usize> = (0..pop.len()).collect();
    for c in order {
        let pass: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|i| pop[*i].score.passed[c])
            .collect();
        if !pass.is_empty() {
            pool = pass;
        }
        if pool.len() == 1 {
            break;
        }
    }
    &pop[pool[below(rng, pool.len())]]
}

fn vary(a: &[Gene], b: &[Gene], rng: &mut Xoshiro256PlusPlus) -> Vec<Gene> {
    // Two-point crossover: a's head, a slice of b, a's tail.
    let mut child = if rng.next_u64().is_multiple_of(2) && !b.is_empty() {
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
    // Mutation: each gene replaced with probability 1/8, plus one insertion or deletion.
    for g in child.iter_mut() {
        if rng.next_u64().is_multiple_of(8) {
            *g = Gene::random(rng);
        }
    }
    match rng.next_u64() % 3 {
        0 if child.len() < MAX_GENES => {
            let at = below(rng, child.len() + 1);
            child.insert(at, Gene::random(rng));
        }
        1 if child.len() > 1 => {
            let at = below(rng, child.len());
            child.remove(at);
        }
        _ => {}
    }
    child.truncate(MAX_GENES);
    if child.is_empty() {
        child.push(Gene::random(rng));
    }
    child
}

/// Evolve against `train`. `on_generation` sees each generation's report (printing,
/// progress) and may stop the run early by returning false.
pub fn evolve(
    train: &[Case],
    params: &Params,
    evaluator: &mut dyn Evaluator,
    on_generation: &mut dyn FnMut(&GenerationReport, &Individual) -> bool,
) -> Result<Run, String> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
    let mut genomes: Vec<Vec<Gene>> = (0..params.population.max(2))
        .map(|_| random_genome(&mut rng))
        .collect();
    let mut log = Vec::new();
    let (mut instructions, mut evals) = (0u64, 0u64);
    let mut best: Option<Individual> = None;
    for generation in 0..params.generations.max(1) {
        let depth = train.iter().map(|c| c.input.len()).min().unwrap_or(0);
        let effective_genomes: Vec<Vec<Gene>> =
            genomes.iter().map(|g| effective(g, depth)).collect();
        let codes: Vec<Vec<u8>> = effective_genomes.iter().map(|g| encode(g)).collect();
        // A program the validator rejects (an instruction that always traps when
        // reached) scores nothing and is not run: what is saved always validates.
        let valid: Vec<bool> = codes
            .iter()
            .map(|c| flux_core::validate::validate(c, flux_core::Profile::Stack, depth).ok())
            .collect();
        let runnable: Vec<Vec<u8>> = codes
            .iter()
            .zip(&valid)
            .filter(|(_, v)| **v)
            .map(|(c, _)| c.clone())
            .collect();
        let mut ran = evaluator
            .evaluate(&runnable, train, params.max_steps)?
            .into_iter();
        if ran.len() != runnable.len() {
            return Err(format!(
                "the evaluator returned {} scores for {} programs",
                ran.len(),
                runnable.len()
            ));
        }
        let scores: Vec<Score> = valid
            .iter()
            .map(|v| match v {
                true => ran.next().unwrap_or(Score {
                    passed: vec![false; train.len()],
                    steps: 0,
                }),
                false => Score {
                    passed: vec![false; train.len()],
                    steps: 0,
                },
            })
            .collect();
        let pop: Vec<Individual> = effective_genomes
            .into_iter()
            .zip(codes)
            .zip(scores)
            .map(|((genes, code), score)| Individual { genes, code, score })
            .collect();
        evals += (pop.len() * train.len()) as u64;
        instructions += pop.iter().map(|i| i.score.steps).sum::<u64>();
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
            size: b.genes.len(),
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
        let mut next = vec![b.genes.clone()];
        while next.len() < genomes.len() {
            let a = lexicase(&pop, &selected, &mut rng).genes.clone();
            let c = lexicase(&pop, &selected, &mut rng).genes.clone();
            next.push(vary(&a, &c, &mut rng));
        }
        genomes = next;
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
            let g = random_genome(&mut rng);
            let from_text = flux_core::asm::assemble(&source(&g)).unwrap();
            assert_eq!(encode(&g), from_text, "{}", source(&g));
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
            let mut g = random_genome(&mut rng);
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
                    flux_core::run(&encode(&g), &config),
                    flux_core::run(&encode(&e), &config),
                );
                // Same observable result (steps may differ: less code ran).
                assert_eq!(
                    (a.stack, a.error),
                    (b.stack, b.error),
                    "{}\n---\n{}",
                    source(&g),
                    source(&e)
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
        };
        let run = |seed| {
            let p = Params {
                seed,
                ..params.clone()
            };
            evolve(&train, &p, &mut Cpu, &mut |_, _| true)
                .unwrap()
                .best
                .code
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
        };
        let run = evolve(&train, &params, &mut Cpu, &mut |_, _| true).unwrap();
        assert_eq!(run.best.score.fitness(), 1.0, "{}", source(&run.best.genes));
        let held_out = cases(|x| 2 * x, &[-100, 77, 1000]);
        assert!(score(&run.best.code, &held_out, 200)
            .passed
            .iter()
            .all(|p| *p));
    }
}
