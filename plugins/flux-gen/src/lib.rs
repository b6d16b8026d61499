//! Generators of FLUX stack-profile programs that reach deep states, and a counter of
//! what their runs reached, so a generator that degrades fails the tests that use it.
//!
//! Uniformly random bytes stop at the first instruction almost every time (about 45 %
//! of such programs did, and an in-range branch appeared in ~4 of 100 000). Programs
//! here are built from a grammar instead: a push prelude, then blocks — straight-line
//! arithmetic, counted loops, if/else with in-range forward branches, CALL/RET pairs,
//! self-recursion, FORK/JOIN of a child, memory traffic, escapes, channel traffic,
//! push floods — with a little raw noise so decode traps stay reachable.
//!
//! This crate knows opcodes as numbers (FLUX.md §5, §11) and does not depend on
//! flux-core, so flux-core's own tests can use it without a dependency cycle.
//!
//! ```
//! use proptest::strategy::{Strategy, ValueTree};
//! let mut runner = proptest::test_runner::TestRunner::deterministic();
//! let code = flux_gen::stack_program().new_tree(&mut runner).unwrap().current();
//! assert!(!code.is_empty());
//! ```

use std::collections::BTreeMap;

use proptest::prelude::*;

pub mod op {
    //! Stack-profile opcodes used by the grammar.
    pub const HALT: u8 = 0x00;
    pub const NOP: u8 = 0x01;
    pub const ADD: u8 = 0x10;
    pub const SUB: u8 = 0x11;
    pub const DIV: u8 = 0x13;
    pub const DEC: u8 = 0x17;
    pub const LOAD: u8 = 0x40;
    pub const STORE: u8 = 0x41;
    pub const JMP: u8 = 0x50;
    pub const JZ: u8 = 0x51;
    pub const JNZ: u8 = 0x52;
    pub const CALL: u8 = 0x53;
    pub const RET: u8 = 0x54;
    pub const PUSH: u8 = 0x55;
    pub const POP: u8 = 0x56;
    pub const DUP: u8 = 0x60;
    pub const ESCAPE: u8 = 0xFF;
    /// Every one-byte stack-profile instruction that is not control flow.
    pub const STRAIGHT: [u8; 38] = [
        0x01, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x43, 0x44, 0x56, 0x60, 0x61, 0x62, 0x63, 0x70, 0x71,
        0x72, 0x73, 0x80, 0x81, 0x82, 0x02, 0x56, 0x60,
    ];
}

/// A program under construction: blocks are appended with their absolute positions
/// known, so FORK targets and branch offsets are always in range.
#[derive(Default)]
struct Builder {
    code: Vec<u8>,
}

impl Builder {
    fn push(&mut self, v: i32) {
        self.code.push(op::PUSH);
        self.code.extend_from_slice(&v.to_le_bytes());
    }
    /// A relative branch (offset from the end of the 3-byte instruction).
    fn branch(&mut self, opcode: u8, offset: i16) {
        self.code.push(opcode);
        self.code.extend_from_slice(&offset.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.code.extend_from_slice(b);
    }
    fn here(&self) -> usize {
        self.code.len()
    }
}

/// One block of the grammar, before it is laid out.
#[derive(Debug, Clone)]
pub enum Block {
    /// One-byte arithmetic, logic, comparison, stack, float, confidence ops.
    Straight(Vec<u8>),
    Push(i32),
    /// `PUSH n; L: body; DEC; DUP; JNZ L; POP` (n ≥ 1: runs the body n times).
    Loop(u8, Vec<u8>),
    /// `cond; JZ else; then; JMP end; else: other; end:`
    IfElse(Vec<u8>, Vec<u8>, Vec<u8>),
    /// `CALL sub; JMP end; sub: body; RET; end:`
    Call(Vec<u8>),
    /// `L: CALL L` — recursion until the call stack overflows.
    Recurse,
    /// `FORK child; JOIN; JMP end; child: PUSH v; HALT; end:`
    ForkJoin(i32),
    /// `PUSH v; STORE a; LOAD a` (addresses near and beyond the memory's end).
    Memory(i32, u16),
    /// A known escape (selector 1–3) with its payload.
    Escape(u8, u8, [u8; 6]),
    /// `SIGNAL/BROADCAST/LISTEN ch`.
    Channel(u8, u8),
    /// `PUSH 1; L: DUP; DUP; JNZ L` — pushes until the data stack overflows.
    Flood,
    /// `JMP -3`: a loop that only the step limit ends.
    Forever,
    /// A branch whose target lies outside the program.
    WildBranch(u8, i16),
    /// `RET` with no CALL.
    StrayRet,
    /// Raw bytes: invalid opcodes, truncated instructions, unknown escapes.
    Noise(Vec<u8>),
}

const PAYLOAD: [(u8, u8, usize); 18] = [
    (1, 0, 0),
    (1, 1, 6),
    (1, 2, 1),
    (1, 3, 4),
    (1, 4, 0),
    (1, 5, 4),
    (2, 0, 3),
    (2, 1, 5),
    (2, 2, 5),
    (2, 3, 0),
    (2, 4, 4),
    (2, 5, 0),
    (3, 0, 1),
    (3, 1, 0),
    (3, 2, 2),
    (3, 3, 0),
    (3, 4, 0),
    (3, 5, 3),
];

fn straight() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(op::STRAIGHT.to_vec()), 1..5)
}

fn imm() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => -4i32..64,
        1 => any::<i32>(),
        1 => prop::sample::select(vec![0, 1, -1, i32::MIN, i32::MAX, 0x3F80_0000, 0x7F80_0000, 1000]),
    ]
}

/// Escape payloads: arbitrary, all zero (fuel 0, empty sandboxes) or small numbers.
fn payload() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![
        2 => any::<[u8; 6]>(),
        1 => Just([0u8; 6]),
        2 => any::<[u8; 6]>().prop_map(|b| b.map(|x| x % 4)),
    ]
}

pub fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        5 => straight().prop_map(Block::Straight),
        4 => imm().prop_map(Block::Push),
        3 => (1u8..7, straight()).prop_map(|(n, b)| Block::Loop(n, b)),
        2 => (straight(), straight(), straight()).prop_map(|(c, t, e)| Block::IfElse(c, t, e)),
        2 => straight().prop_map(Block::Call),
        2 => (imm(), prop_oneof![0u16..260, any::<u16>()]).prop_map(|(v, a)| Block::Memory(v, a)),
        1 => imm().prop_map(Block::ForkJoin),
        2 => (0usize..PAYLOAD.len(), payload()).prop_map(|(i, p)| Block::Escape(PAYLOAD[i].0, PAYLOAD[i].1, p)),
        1 => (prop::sample::select(vec![0x90u8, 0x91, 0x92]), 0u8..4).prop_map(|(o, c)| Block::Channel(o, c)),
        1 => Just(Block::Recurse),
        1 => Just(Block::Flood),
        1 => Just(Block::Forever),
        1 => (prop::sample::select(vec![op::JMP, op::JZ, op::JNZ]), prop_oneof![i16::MIN..-200, 200i16..i16::MAX]).prop_map(|(o, d)| Block::WildBranch(o, d)),
        1 => Just(Block::StrayRet),
        1 => prop::collection::vec(any::<u8>(), 1..4).prop_map(Block::Noise),
    ]
}

/// Lay blocks out as bytes.
pub fn assemble(prelude: &[i32], blocks: &[Block], end: u8) -> Vec<u8> {
    let mut b = Builder::default();
    for v in prelude {
        b.push(*v);
    }
    for block in blocks {
        match block {
            Block::Straight(ops) => b.bytes(ops),
            Block::Push(v) => b.push(*v),
            Block::Loop(n, body) => {
                b.push(i32::from(*n));
                let top = b.here();
                b.bytes(body);
                b.bytes(&[op::DEC, op::DUP]);
                let back = top as i64 - (b.here() as i64 + 3);
                b.branch(op::JNZ, back as i16);
                b.bytes(&[op::POP]);
            }
            Block::IfElse(cond, then, other) => {
                b.bytes(cond);
                b.branch(op::JZ, (then.len() + 3) as i16);
                b.bytes(then);
                b.branch(op::JMP, other.len() as i16);
                b.bytes(other);
            }
            Block::Call(body) => {
                b.branch(op::CALL, 3);
                b.branch(op::JMP, (body.len() + 1) as i16);
                b.bytes(body);
                b.bytes(&[op::RET]);
            }
            Block::Recurse => b.branch(op::CALL, -3),
            Block::ForkJoin(v) => {
                let child = b.here() + 4 + 3 + 3;
                b.bytes(&[op::ESCAPE, 0x03, 0x02]);
                b.bytes(&(child as u16).to_le_bytes());
                b.bytes(&[op::ESCAPE, 0x03, 0x03]);
                b.branch(op::JMP, 6);
                b.push(*v);
                b.bytes(&[op::HALT]);
            }
            Block::Memory(v, a) => {
                b.push(*v);
                b.bytes(&[op::STORE]);
                b.bytes(&a.to_le_bytes());
                b.bytes(&[op::LOAD]);
                b.bytes(&a.to_le_bytes());
            }
            Block::Escape(sel, sub, payload) => {
                let len = PAYLOAD
                    .iter()
                    .find(|(s, u, _)| s == sel && u == sub)
                    .map_or(0, |p| p.2);
                b.bytes(&[op::ESCAPE, *sel, *sub]);
                b.bytes(&payload[..len]);
            }
            Block::Channel(o, c) => b.bytes(&[*o, *c]),
            Block::Flood => {
                b.push(1);
                b.bytes(&[op::DUP, op::DUP]);
                b.branch(op::JNZ, -5);
            }
            Block::Forever => b.branch(op::JMP, -3),
            Block::WildBranch(o, d) => b.branch(*o, *d),
            Block::StrayRet => b.bytes(&[op::RET]),
            Block::Noise(bytes) => b.bytes(bytes),
        }
    }
    match end {
        0 => b.bytes(&[op::HALT]),
        1 => {}
        // A truncated last instruction.
        n => {
            let cut = b.code.len().saturating_sub(usize::from(n - 1));
            b.code.truncate(cut.max(1));
        }
    }
    b.code
}

/// Stack-profile programs from the grammar: a prelude of 0–4 pushes, 1–10 blocks, and
/// an ending (HALT, falling off the end, or a truncated last instruction).
pub fn stack_program() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(imm(), 0..5),
        prop::collection::vec(block(), 1..11),
        prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => 2u8..4],
    )
        .prop_map(|(prelude, blocks, end)| assemble(&prelude, &blocks, end))
}

/// What one run reached, as plain data (the caller converts its run result).
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    pub steps: u64,
    /// The trap's name (`None` when the run did not trap).
    pub trap: Option<String>,
    /// `(pc, opcode)` of each executed instruction, in order.
    pub trace: Vec<(usize, u8)>,
}

/// Shares of what many runs reached.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub runs: u64,
    pub over_20_steps: u64,
    pub first_instruction_only: u64,
    pub branch_taken: u64,
    pub backward_branch: u64,
    pub called: u64,
    pub returned: u64,
    pub forked: u64,
    pub escapes: u64,
    pub traps: BTreeMap<String, u64>,
    pub steps_total: u64,
}

impl Reach {
    /// Count one run of `code`.
    pub fn add(&mut self, code: &[u8], facts: &RunFacts) {
        self.runs += 1;
        self.steps_total += facts.steps;
        self.over_20_steps += u64::from(facts.steps > 20);
        self.first_instruction_only += u64::from(facts.steps <= 1);
        let (mut taken, mut backward, mut call, mut ret, mut fork, mut esc) =
            (false, false, false, false, false, false);
        for (i, &(pc, opcode)) in facts.trace.iter().enumerate() {
            let next = facts.trace.get(i + 1).map(|s| s.0);
            match opcode {
                op::JMP | op::JZ | op::JNZ | op::CALL => {
                    if let Some(n) = next {
                        if n != pc + 3 {
                            taken = true;
                            backward |= n <= pc;
                        }
                    }
                    call |= opcode == op::CALL;
                }
                op::RET => ret = true,
                op::ESCAPE => esc = true,
                _ => {}
            }
            // A JOIN (`FF 03 03`) executed: a child was forked and run.
            fork |= opcode == op::ESCAPE && code.get(pc + 1..pc + 3) == Some(&[0x03, 0x03][..]);
        }
        self.branch_taken += u64::from(taken);
        self.backward_branch += u64::from(backward);
        self.called += u64::from(call);
        self.returned += u64::from(ret);
        self.forked += u64::from(fork);
        self.escapes += u64::from(esc);
        if let Some(t) = &facts.trap {
            *self.traps.entry(t.clone()).or_insert(0) += 1;
        }
    }

    /// A share in percent.
    pub fn pct(&self, n: u64) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            100.0 * n as f64 / self.runs as f64
        }
    }

    /// One line for a test's output and the closing note.
    pub fn summary(&self) -> String {
        format!(
            "{} runs: >20 steps {:.1}%, stopped at the first instruction {:.1}%, branch taken {:.1}%, backward branch {:.1}%, CALL {:.1}%, RET {:.1}%, JOIN {:.1}%, escapes {:.1}%, mean steps {:.0}; traps {:?}",
            self.runs,
            self.pct(self.over_20_steps),
            self.pct(self.first_instruction_only),
            self.pct(self.branch_taken),
            self.pct(self.backward_branch),
            self.pct(self.called),
            self.pct(self.returned),
            self.pct(self.forked),
            self.pct(self.escapes),
            self.steps_total as f64 / self.runs.max(1) as f64,
            self.traps
        )
    }
}
