//! Genes and how they become FLUX.
//!
//! A genome is a list of genes. Most genes are one FLUX instruction; three are
//! *structured* (an `if`, a counted loop and a `while` over the next k genes), in the
//! spirit of PushGP's `exec_if`, `exec_do*times` and `exec_while`: loops written out
//! instruction by instruction are nearly impossible to breed, while a gene that owns its
//! loop's bookkeeping is one mutation away. Every gene lowers to plain stack-profile
//! FLUX ([`lower`]): the bytes a run evaluates ([`encode`]), the saved source
//! ([`source`]) and the fast interpreter ([`crate::exec`]) all read the same lowering.

use rand_xoshiro::rand_core::RngCore;
use rand_xoshiro::Xoshiro256PlusPlus;

/// One gene.
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
    Le,
    Ge,
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
    /// The larger of the top two (PushGP's `integer_max`), as a FLUX idiom.
    Max,
    /// The smaller of the top two (`integer_min`).
    Min,
    /// Pop a value; when it is 0, skip the next `k` genes.
    If(u8),
    /// Pop n; run the next `k` genes n times, pushing the counter i = n, n−1, …, 1
    /// before each pass (nothing when n ≤ 0). The counter lives in a memory cell of its
    /// own (one per nesting level), out of the body's reach.
    Times(u8),
    /// Run the next `k` genes while the top of the stack is not 0 (tested, not popped).
    While(u8),
}

/// The constants a `push` gene draws from, besides a run's own (a preset's, like
/// PSB's per-problem constants).
pub const CONSTANTS: [i32; 7] = [0, 1, 2, 3, 10, -1, 100];
/// Memory cells `load`/`store` genes use: addresses 0, 4, 8.
const CELLS: u8 = 3;
/// Where loop counters live: `Times` at nesting depth d uses COUNTERS + 4·d.
const COUNTERS: i32 = 12;
const MAX_JUMP: u8 = 8;
const MAX_BLOCK: u8 = 8;
/// Genomes never grow past this.
pub const MAX_GENES: usize = 48;

impl Gene {
    pub fn random(rng: &mut Xoshiro256PlusPlus, constants: &[i32]) -> Gene {
        let pick = |rng: &mut Xoshiro256PlusPlus, n: u64| (rng.next_u64() % n) as usize;
        match pick(rng, 31) {
            0 | 1 => {
                let i = pick(rng, (CONSTANTS.len() + constants.len()) as u64);
                Gene::Push(*CONSTANTS.get(i).unwrap_or_else(|| {
                    // In range: i < CONSTANTS.len() + constants.len().
                    &constants[i - CONSTANTS.len()]
                }))
            }
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
            23 => Gene::Jnz(1 + pick(rng, MAX_JUMP as u64) as u8),
            24 => Gene::If(1 + pick(rng, MAX_BLOCK as u64) as u8),
            25 => Gene::Times(1 + pick(rng, MAX_BLOCK as u64) as u8),
            26 => Gene::Le,
            27 => Gene::Ge,
            28 => Gene::Max,
            29 => Gene::Min,
            _ => Gene::While(1 + pick(rng, MAX_BLOCK as u64) as u8),
        }
    }

    /// The same gene with its parameter nudged: a block or jump one gene longer or
    /// shorter, another constant or cell; a gene without one is drawn afresh.
    pub fn tweak(self, rng: &mut Xoshiro256PlusPlus, constants: &[i32]) -> Gene {
        let up = rng.next_u64().is_multiple_of(2);
        let step = |n: u8, max: u8| {
            if up {
                (n % max) + 1
            } else {
                (n + max - 2) % max + 1
            }
        };
        match self {
            Gene::If(k) => Gene::If(step(k, MAX_BLOCK)),
            Gene::Times(k) => Gene::Times(step(k, MAX_BLOCK)),
            Gene::While(k) => Gene::While(step(k, MAX_BLOCK)),
            Gene::Jz(n) => Gene::Jz(step(n, MAX_JUMP)),
            Gene::Jnz(n) => Gene::Jnz(step(n, MAX_JUMP)),
            Gene::Load(c) => Gene::Load((c + 1) % CELLS),
            Gene::Store(c) => Gene::Store((c + 1) % CELLS),
            Gene::Push(_) => loop {
                if let g @ Gene::Push(_) = Gene::random(rng, constants) {
                    break g;
                }
            },
            _ => Gene::random(rng, constants),
        }
    }

    /// The gene index a jump at `at` goes to, or where a structured gene's block ends,
    /// in a genome of `len` genes (`len` is the final HALT); `None` for straight-line
    /// genes. One rule for the lowering and the non-effective-code analysis.
    pub fn target(self, at: usize, len: usize) -> Option<usize> {
        match self {
            Gene::Jz(n) => Some((at + 1 + n as usize).min(len)),
            Gene::Jnz(n) => Some(at.saturating_sub(n as usize)),
            Gene::If(k) | Gene::Times(k) | Gene::While(k) => Some((at + 1 + k as usize).min(len)),
            _ => None,
        }
    }

    /// A gene that moves control (a jump or a block).
    pub fn controls(self) -> bool {
        matches!(
            self,
            Gene::Jz(_) | Gene::Jnz(_) | Gene::If(_) | Gene::Times(_) | Gene::While(_)
        )
    }
}

/// FLUX opcodes the lowering emits (FLUX.md §5).
pub mod op {
    pub const HALT: u8 = 0x00;
    pub const ADD: u8 = 0x10;
    pub const SUB: u8 = 0x11;
    pub const MUL: u8 = 0x12;
    pub const DIV: u8 = 0x13;
    pub const MOD: u8 = 0x14;
    pub const NEG: u8 = 0x15;
    pub const INC: u8 = 0x16;
    pub const DEC: u8 = 0x17;
    pub const EQ: u8 = 0x20;
    pub const LT: u8 = 0x22;
    pub const LE: u8 = 0x23;
    pub const GT: u8 = 0x24;
    pub const GE: u8 = 0x25;
    pub const AND: u8 = 0x30;
    pub const OR: u8 = 0x31;
    pub const LOAD: u8 = 0x40;
    pub const STORE: u8 = 0x41;
    pub const JMP: u8 = 0x50;
    pub const JZ: u8 = 0x51;
    pub const JNZ: u8 = 0x52;
    pub const PUSH: u8 = 0x55;
    pub const POP: u8 = 0x56;
    pub const DUP: u8 = 0x60;
    pub const SWAP: u8 = 0x61;
    pub const OVER: u8 = 0x62;
    pub const ROT: u8 = 0x63;
}

/// One FLUX instruction of a lowered genome. `arg` is the pushed value, the memory
/// address, or a jump's target as an index into the lowered list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prim {
    pub op: u8,
    pub arg: i32,
    /// The gene it came from.
    pub gene: u16,
    /// A comment for the saved source ("" for none).
    pub note: &'static str,
}

impl Prim {
    fn new(op: u8, arg: i32) -> Prim {
        Prim::noted(op, arg, "")
    }

    fn noted(op: u8, arg: i32, note: &'static str) -> Prim {
        Prim {
            op,
            arg,
            gene: 0,
            note,
        }
    }

    fn size(&self) -> usize {
        match self.op {
            op::PUSH => 5,
            op::LOAD | op::STORE | op::JMP | op::JZ | op::JNZ => 3,
            _ => 1,
        }
    }
}

/// A block a structured gene opened and has not closed yet.
struct Open {
    at: usize,
    end: usize,
    kind: Gene,
    /// The loop's first instruction (`Times`, `While`).
    top: usize,
    /// The exit jump to patch when the block closes.
    exit: usize,
    cell: i32,
}

/// The genome as FLUX instructions ending in HALT. Blocks nest: a block never reaches
/// past the one it is in, and blocks ending at the same gene close innermost first. A
/// jump gene lands on its target gene's own first instruction (after any loop closing
/// there).
pub fn lower(genes: &[Gene]) -> Vec<Prim> {
    let len = genes.len();
    let mut prims: Vec<Prim> = Vec::with_capacity(len * 2 + 1);
    // start[i]: where gene i's own instructions begin.
    let mut start = Vec::with_capacity(len + 1);
    let mut open: Vec<Open> = Vec::new();
    let mut jumps: Vec<(usize, usize)> = Vec::new();
    for i in 0..=len {
        while let Some(o) = open.pop_if(|o| o.end <= i) {
            let closing = prims.len();
            match o.kind {
                Gene::Times(_) => {
                    prims.push(Prim::noted(op::LOAD, o.cell, "next pass: i - 1"));
                    prims.push(Prim::new(op::DEC, 0));
                    prims.push(Prim::new(op::STORE, o.cell));
                    prims.push(Prim::new(op::JMP, o.top as i32));
                }
                Gene::While(_) => prims.push(Prim::noted(op::JMP, o.top as i32, "test again")),
                _ => {}
            }
            for p in &mut prims[closing..] {
                p.gene = o.at as u16;
            }
            let here = prims.len() as i32;
            prims[o.exit].arg = here;
        }
        start.push(prims.len());
        let Some(&gene) = genes.get(i) else {
            prims.push(Prim::new(op::HALT, 0));
            break;
        };
        let first = prims.len();
        let simple = |o: u8| Prim::new(o, 0);
        match gene {
            Gene::Push(v) => prims.push(Prim::new(op::PUSH, v)),
            Gene::Dup => prims.push(simple(op::DUP)),
            Gene::Swap => prims.push(simple(op::SWAP)),
            Gene::Over => prims.push(simple(op::OVER)),
            Gene::Rot => prims.push(simple(op::ROT)),
            Gene::Pop => prims.push(simple(op::POP)),
            Gene::Add => prims.push(simple(op::ADD)),
            Gene::Sub => prims.push(simple(op::SUB)),
            Gene::Mul => prims.push(simple(op::MUL)),
            Gene::Div => prims.push(simple(op::DIV)),
            Gene::Mod => prims.push(simple(op::MOD)),
            Gene::Neg => prims.push(simple(op::NEG)),
            Gene::Inc => prims.push(simple(op::INC)),
            Gene::Dec => prims.push(simple(op::DEC)),
            Gene::Lt => prims.push(simple(op::LT)),
            Gene::Gt => prims.push(simple(op::GT)),
            Gene::Le => prims.push(simple(op::LE)),
            Gene::Ge => prims.push(simple(op::GE)),
            Gene::Eq => prims.push(simple(op::EQ)),
            Gene::And => prims.push(simple(op::AND)),
            Gene::Or => prims.push(simple(op::OR)),
            Gene::Load(c) => prims.push(Prim::new(op::LOAD, 4 * c as i32)),
            Gene::Store(c) => prims.push(Prim::new(op::STORE, 4 * c as i32)),
            Gene::Halt => prims.push(simple(op::HALT)),
            Gene::Max | Gene::Min => {
                // over over lt|gt; (Z from the answer) jz keep; swap; keep: pop
                let (cmp, note) = if gene == Gene::Max {
                    (op::LT, "max of the top two")
                } else {
                    (op::GT, "min of the top two")
                };
                prims.push(Prim::noted(op::OVER, 0, note));
                prims.push(simple(op::OVER));
                prims.push(simple(cmp));
                prims.push(Prim::new(op::PUSH, 0));
                prims.push(simple(op::ADD));
                let keep = prims.len() as i32 + 2;
                prims.push(Prim::new(op::JZ, keep));
                prims.push(simple(op::SWAP));
                prims.push(simple(op::POP));
            }
            Gene::Jz(_) | Gene::Jnz(_) => {
                let o = if matches!(gene, Gene::Jz(_)) {
                    op::JZ
                } else {
                    op::JNZ
                };
                jumps.push((prims.len(), gene.target(i, len).unwrap_or(i)));
                prims.push(simple(o));
            }
            Gene::If(_) | Gene::Times(_) | Gene::While(_) => {
                let outer = open.last().map_or(len, |o| o.end);
                let end = gene.target(i, len).unwrap_or(len).min(outer);
                let depth = open
                    .iter()
                    .filter(|o| matches!(o.kind, Gene::Times(_)))
                    .count() as i32;
                let cell = COUNTERS + 4 * depth;
                let mut top = prims.len();
                // `push 0; add` sets Z from the value itself (a comparison sets it from
                // its operands), so `jz` then tests the value.
                match gene {
                    Gene::If(_) => {
                        prims.push(Prim::noted(op::PUSH, 0, "if the top is 0, skip the block"));
                    }
                    Gene::Times(_) => {
                        prims.push(Prim::noted(
                            op::STORE,
                            cell,
                            "repeat the block n times, i = n … 1 on the stack each pass",
                        ));
                        top = prims.len();
                        prims.push(Prim::new(op::PUSH, 0));
                        prims.push(Prim::new(op::LOAD, cell));
                        prims.push(Prim::new(op::LT, 0));
                        prims.push(Prim::new(op::PUSH, 0));
                    }
                    _ => {
                        prims.push(Prim::noted(op::DUP, 0, "while the top is not 0"));
                        prims.push(Prim::new(op::PUSH, 0));
                    }
                }
                prims.push(Prim::new(op::ADD, 0));
                let exit = prims.len();
                prims.push(Prim::new(op::JZ, 0));
                if matches!(gene, Gene::Times(_)) {
                    prims.push(Prim::new(op::LOAD, cell));
                }
                open.push(Open {
                    at: i,
                    end,
                    kind: gene,
                    top,
                    exit,
                    cell,
                });
            }
        }
        for p in &mut prims[first..] {
            p.gene = i as u16;
        }
    }
    for (at, target) in jumps {
        prims[at].arg = start[target] as i32;
    }
    prims
}

/// The lowered genome as FLUX bytes (jump targets become relative displacements).
pub fn encode(prims: &[Prim]) -> Vec<u8> {
    let mut offsets = byte_offsets(prims);
    let at = prims
        .last()
        .map_or(0, |p| offsets[offsets.len() - 1] + p.size());
    offsets.push(at);
    let mut code = Vec::with_capacity(at);
    for (i, p) in prims.iter().enumerate() {
        code.push(p.op);
        match p.op {
            op::PUSH => code.extend_from_slice(&p.arg.to_le_bytes()),
            op::LOAD | op::STORE => code.extend_from_slice(&(p.arg as u16).to_le_bytes()),
            op::JMP | op::JZ | op::JNZ => {
                let target = offsets.get(p.arg as usize).copied().unwrap_or(at);
                let rel = (target as i64 - (offsets[i] + 3) as i64) as i16;
                code.extend_from_slice(&rel.to_le_bytes());
            }
            _ => {}
        }
    }
    code
}

/// The lowered genome as FLUX source (datum syntax, §13.2): one instruction per line,
/// jump targets labelled `L<n>`, the blocks' comments kept.
pub fn source(prims: &[Prim]) -> String {
    let jumped: std::collections::BTreeSet<i32> = prims
        .iter()
        .filter(|p| matches!(p.op, op::JMP | op::JZ | op::JNZ))
        .map(|p| p.arg)
        .collect();
    let mut s = String::new();
    for (i, p) in prims.iter().enumerate() {
        if jumped.contains(&(i as i32)) {
            s.push_str(&format!("L{i}:\n"));
        }
        let text = match p.op {
            op::PUSH => format!("push {}", p.arg),
            op::LOAD => format!("load {}", p.arg),
            op::STORE => format!("store {}", p.arg),
            op::JMP => format!("jmp L{}", p.arg),
            op::JZ => format!("jz L{}", p.arg),
            op::JNZ => format!("jnz L{}", p.arg),
            o => NAMES
                .iter()
                .find(|(code, _)| *code == o)
                .map_or("nop", |(_, n)| n)
                .to_owned(),
        };
        if p.note.is_empty() {
            s.push_str(&format!("    {text}\n"));
        } else {
            s.push_str(&format!("    {text:<12} ; {}\n", p.note));
        }
    }
    s
}

const NAMES: [(u8, &str); 22] = [
    (op::HALT, "halt"),
    (op::ADD, "add"),
    (op::SUB, "sub"),
    (op::MUL, "mul"),
    (op::DIV, "div"),
    (op::MOD, "mod"),
    (op::NEG, "neg"),
    (op::INC, "inc"),
    (op::DEC, "dec"),
    (op::EQ, "eq"),
    (op::LT, "lt"),
    (op::GT, "gt"),
    (op::LE, "le"),
    (op::GE, "ge"),
    (op::AND, "and"),
    (op::OR, "or"),
    (op::POP, "pop"),
    (op::DUP, "dup"),
    (op::SWAP, "swap"),
    (op::OVER, "over"),
    (op::ROT, "rot"),
    (op::JMP, "jmp"),
];

/// Leave out genes that can never get their operands: FLUX traps on an instruction
/// whose operands are not on the stack, where PushGP skips it; a gene the validator
/// says *always* underflows (at most N items on every path, more needed) is dropped,
/// until the program validates (or after a few rounds, when it is left as it is and
/// scores nothing). Without this most random programs are dead on their first gene.
/// The result is what runs, what is saved and what validates; the genome itself keeps
/// every gene.
pub fn repair(genes: Vec<Gene>, depth: usize) -> (Vec<Gene>, Vec<Prim>, Vec<u8>, bool) {
    use flux_core::validate::{validate, Severity};
    let mut genes = genes;
    for _ in 0..6 {
        let prims = lower(&genes);
        let code = encode(&prims);
        let report = validate(&code, flux_core::Profile::Stack, depth);
        if report.ok() {
            return (genes, prims, code, true);
        }
        let offsets = byte_offsets(&prims);
        let mut dead: Vec<usize> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error && f.check == "stack-underflow")
            .filter_map(|f| offsets.binary_search(&f.offset).ok())
            .map(|p| prims[p].gene as usize)
            .collect();
        if dead.is_empty() {
            return (genes, prims, code, false);
        }
        dead.sort_unstable();
        dead.dedup();
        let mut i = 0;
        genes.retain(|_| {
            i += 1;
            dead.binary_search(&(i - 1)).is_err()
        });
    }
    let prims = lower(&genes);
    let code = encode(&prims);
    (genes, prims, code, false)
}

fn byte_offsets(prims: &[Prim]) -> Vec<usize> {
    let mut at = 0;
    prims
        .iter()
        .map(|p| {
            let here = at;
            at += p.size();
            here
        })
        .collect()
}

/// Remove non-effective code: everything after the first HALT that no jump or block can
/// reach, and pairs that cancel (`push c; pop`, `dup; pop`, `swap; swap`, `neg; neg`,
/// `inc; dec`, `dec; inc`) where the stack is deep enough that neither could trap.
/// (A jump is never removed: even one to the end pops the stack.) `depth` is the
/// smallest initial stack the program will be run with. Repeated to a fixed point; the
/// result gives the same stack and trap as the input on every input (the tests check
/// it on thousands of random genomes).
pub fn effective(genes: &[Gene], depth: usize) -> Vec<Gene> {
    let mut g = genes.to_vec();
    loop {
        let before = g.len();
        let controls = g.iter().any(|x| x.controls());
        if let Some(h) = g.iter().position(|x| *x == Gene::Halt) {
            let beyond = g
                .iter()
                .enumerate()
                .any(|(i, x)| x.target(i, g.len()).is_some_and(|t| t > h));
            let controlled = g[..h].iter().any(|x| x.controls());
            if !beyond || !controlled {
                g.truncate(h);
            }
        }
        // Cancelling pairs, only in straight-line code (removing genes would move every
        // jump target) and only where the stack is known to be deep enough.
        if !controls {
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

/// What a straight-line gene needs on the stack, and the depth after it.
fn effect(g: Gene, d: usize) -> (usize, usize) {
    match g {
        Gene::Push(_) | Gene::Load(_) => (0, d + 1),
        Gene::Dup => (1, d + 1),
        Gene::Over => (2, d + 1),
        Gene::Swap => (2, d),
        Gene::Rot => (3, d),
        Gene::Neg | Gene::Inc | Gene::Dec => (1, d),
        Gene::Pop | Gene::Store(_) => (1, d.saturating_sub(1)),
        Gene::Add
        | Gene::Sub
        | Gene::Mul
        | Gene::Div
        | Gene::Mod
        | Gene::Lt
        | Gene::Gt
        | Gene::Le
        | Gene::Ge
        | Gene::Eq
        | Gene::And
        | Gene::Or
        | Gene::Max
        | Gene::Min => (2, d.saturating_sub(1)),
        // Never reached: `effective` runs this only on code without control genes.
        Gene::Jz(_) | Gene::Jnz(_) | Gene::If(_) | Gene::Times(_) | Gene::While(_) | Gene::Halt => {
            (0, d)
        }
    }
}
