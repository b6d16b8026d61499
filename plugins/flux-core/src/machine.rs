//! Machine state and the interpreter loop (FLUX.md §2–§12).
//!
//! One `Machine` runs one program in one profile. State a FORK child shares with its
//! parent (memory, channels, capabilities, sandbox, fuel, step count) lives directly in
//! the machine; what each context owns (pc, stacks, flags, registers, clock, deadline)
//! lives in [`Ctx`], which JOIN swaps out while the child runs.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::profile::Profile;
use crate::trap::Trap;

pub const STACK_CAPACITY: usize = 4096;
pub const RETURN_STACK_CAPACITY: usize = 1024;
pub const MEMORY_BYTES: usize = 65536;
pub const DEFAULT_MAX_STEPS: u64 = 1_000_000;
pub const MAX_JOIN_DEPTH: u32 = 64;
pub const REGISTERS: usize = 16;
pub(crate) const CANONICAL_NAN: u32 = 0x7FC0_0000;
const CHANNELS: usize = 256;
/// FUEL_SET's "unlimited" value, also what FUEL_CHECK reports when fuel is off.
pub const UNLIMITED_FUEL: u32 = u32::MAX;

/// The four condition flags, packed as the spec numbers them (Z=1, S=2, C=4, O=8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Flags(pub u8);

impl Flags {
    pub const Z: u8 = 0x01;
    pub const S: u8 = 0x02;
    pub const C: u8 = 0x04;
    pub const O: u8 = 0x08;

    #[inline]
    pub(crate) fn from_bits(z: bool, s: bool, c: bool, o: bool) -> Flags {
        Flags(z as u8 | (s as u8) << 1 | (c as u8) << 2 | (o as u8) << 3)
    }

    #[inline]
    pub(crate) fn add(a: u32, b: u32) -> Flags {
        let (r, carry) = a.overflowing_add(b);
        let overflow = (a as i32).overflowing_add(b as i32).1;
        Flags::from_bits(r == 0, r >> 31 == 1, carry, overflow)
    }

    #[inline]
    pub(crate) fn sub(a: u32, b: u32) -> Flags {
        let r = a.wrapping_sub(b);
        let overflow = (a as i32).overflowing_sub(b as i32).1;
        Flags::from_bits(r == 0, r >> 31 == 1, a < b, overflow)
    }

    #[inline]
    pub(crate) fn logic(r: u32) -> Flags {
        Flags::from_bits(r == 0, r >> 31 == 1, false, false)
    }

    #[inline]
    pub fn zero(self) -> bool {
        self.0 & Flags::Z != 0
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// HALT executed.
    Halted,
    /// BREAK executed (not an error).
    Break,
    /// Ran off the end of the code.
    End,
    /// SUSPEND executed.
    Suspended,
    /// Stopped by a trap; see `error`.
    Trap,
}

/// A saved execution state (SUSPEND writes one; RESUME restores the newest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuation {
    #[serde(default)]
    pub channel: u8,
    #[serde(default)]
    pub pc: u32,
    /// Bottom → top.
    #[serde(default)]
    pub stack: Vec<i64>,
    #[serde(default)]
    pub flags: u8,
    #[serde(default)]
    pub clock: u64,
    /// `None` = unlimited.
    #[serde(default)]
    pub fuel: Option<u32>,
    #[serde(default)]
    pub registers: Vec<i64>,
}

/// Run options and host environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub profile: Profile,
    /// Words pushed before the run, bottom first.
    pub initial_stack: Vec<u32>,
    /// At most this many instructions start; one more traps with `STEP_LIMIT`.
    pub max_steps: u64,
    /// Fuel budget (§11.3); `None` = unlimited.
    pub fuel: Option<u32>,
    /// The virtual clock at the first instruction (§11.2).
    pub clock_start: u64,
    /// What IDENTITY_GET reports.
    pub identity: u32,
    /// Capability ids CAP_INVOKE may use.
    pub capabilities: Vec<u16>,
    /// Resources YIELD_IF_CONTENTION sees as contended.
    pub contended: Vec<u8>,
    /// A continuation placed in the store before the run (not jumped to).
    pub resume_from: Option<Continuation>,
    /// Record up to this many executed instructions (0 = no trace).
    pub trace_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: Profile::Stack,
            initial_stack: Vec::new(),
            max_steps: DEFAULT_MAX_STEPS,
            fuel: None,
            clock_start: 0,
            identity: 1,
            capabilities: Vec::new(),
            contended: Vec::new(),
            resume_from: None,
            trace_limit: 0,
        }
    }
}

impl Config {
    pub fn reg() -> Self {
        Config {
            profile: Profile::Reg,
            ..Config::default()
        }
    }
}

/// One executed instruction, for `--trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    pub step: u64,
    pub pc: usize,
    pub opcode: u8,
    /// Depth of the data stack before the instruction.
    pub depth: usize,
    /// Top of the data stack before the instruction.
    pub top: Option<i32>,
}

/// The observable result of a run (FLUX.md §10, §12.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    pub profile: Profile,
    /// Bottom → top, as signed words; empty after a trap.
    pub stack: Vec<i32>,
    pub flags: Flags,
    pub status: Status,
    /// The trap, when `status` is `trap`.
    pub error: Option<Trap>,
    /// Where the trap happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trap_pc: Option<usize>,
    /// Instructions started, the faulting one included.
    pub steps: u64,
    /// R0…R15 (`reg` profile only; not part of conformance comparison).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registers: Option<Vec<i32>>,
    pub clock: u64,
    /// Remaining fuel; `None` = unlimited.
    pub fuel: Option<u32>,
    pub confidence: u32,
    /// Continuations left in the store.
    pub continuations: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<TraceStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sandbox {
    pub start: u32,
    pub size: u32,
    pub perms: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildState {
    Ready(usize),
    Cancelled,
    Joined,
}

/// The data stack: a fixed block of `STACK_CAPACITY` words and a depth, so pushes and
/// pops are an index update with no reallocation checks. Derefs to the live words.
#[derive(Clone)]
pub(crate) struct WordStack {
    words: Box<[u32; STACK_CAPACITY]>,
    len: usize,
}

impl std::fmt::Debug for WordStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl WordStack {
    fn new() -> Self {
        WordStack {
            words: Box::new([0; STACK_CAPACITY]),
            len: 0,
        }
    }

    /// Push, or `false` when full.
    #[inline(always)]
    pub fn push(&mut self, w: u32) -> bool {
        match self.words.get_mut(self.len) {
            Some(slot) => {
                *slot = w;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    #[inline(always)]
    pub fn pop(&mut self) -> Option<u32> {
        self.len = self.len.checked_sub(1)?;
        Some(self.words[self.len])
    }

    #[inline(always)]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The words and the depth, for the fast path's hot loop (it keeps the depth in a
    /// local and writes it back when it hands over).
    #[inline(always)]
    pub(crate) fn parts_mut(&mut self) -> (&mut [u32; STACK_CAPACITY], &mut usize) {
        (&mut self.words, &mut self.len)
    }

    /// Replace the contents (RESUME); words past the capacity are dropped.
    pub fn set(&mut self, words: impl IntoIterator<Item = u32>) {
        self.len = 0;
        for w in words {
            if !self.push(w) {
                break;
            }
        }
    }
}

impl std::ops::Deref for WordStack {
    type Target = [u32];
    #[inline(always)]
    fn deref(&self) -> &[u32] {
        &self.words[..self.len]
    }
}

impl std::ops::DerefMut for WordStack {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u32] {
        &mut self.words[..self.len]
    }
}

/// Per-context state (each FORK child has its own).
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub pc: usize,
    pub stack: WordStack,
    pub returns: Vec<usize>,
    pub flags: Flags,
    pub regs: [u32; REGISTERS],
    /// The virtual clock is `steps + bias` between instructions (see [`Machine::now`]);
    /// keeping an offset instead of a counter saves an add on every instruction.
    pub bias: i64,
    /// Armed deadline guard: (t_dead, checkpoint pc).
    pub deadline: Option<(u64, usize)>,
}

impl Ctx {
    fn new(pc: usize, bias: i64) -> Ctx {
        Ctx {
            pc,
            stack: WordStack::new(),
            returns: Vec::new(),
            flags: Flags::default(),
            regs: [0; REGISTERS],
            bias,
            deadline: None,
        }
    }
}

/// What one instruction asks of the loop.
pub(crate) enum Next {
    Continue,
    /// Continue without charging fuel (FUEL_SET).
    Uncharged,
    Stop(Status),
}

/// A FLUX machine over one program.
pub struct Machine<'c> {
    pub(crate) code: &'c [u8],
    pub(crate) profile: Profile,
    pub(crate) ctx: Ctx,
    pub(crate) memory: Box<[u8]>,
    pub(crate) confidence: u32,
    pub(crate) channels: Vec<VecDeque<u32>>,
    pub(crate) steps: u64,
    pub(crate) max_steps: u64,
    pub(crate) fuel: Option<u32>,
    pub(crate) identity: u32,
    pub(crate) capabilities: Vec<u16>,
    pub(crate) contended: Vec<u8>,
    pub(crate) sandbox: Option<Sandbox>,
    pub(crate) sandbox_saved: Vec<Option<Sandbox>>,
    pub(crate) tags: Vec<(u16, u16, u8)>,
    pub(crate) persisted: Vec<(u16, Vec<u8>)>,
    pub(crate) continuations: Vec<Continuation>,
    pub(crate) children: Vec<ChildState>,
    trace_limit: usize,
    trace: Vec<TraceStep>,
    fault_pc: usize,
    /// Set while anything needs per-instruction attention (a deadline, fuel, a
    /// sandbox, a trace);
    /// the common case skips all of it with one test.
    pub(crate) watch: bool,
    overfull: bool,
    /// The fast path's decoded program, one entry per byte offset, filled as the run
    /// reaches each offset (see `fast.rs`).
    pub(crate) decoded: Vec<crate::fast::Op>,
}

impl std::fmt::Debug for Machine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("profile", &self.profile)
            .field("pc", &self.ctx.pc)
            .field("stack", &self.ctx.stack)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// Run `code` from a fresh machine.
pub fn run(code: &[u8], config: &Config) -> RunResult {
    Machine::new(code, config).run()
}

impl<'c> Machine<'c> {
    pub fn new(code: &'c [u8], config: &Config) -> Self {
        Machine {
            code,
            profile: config.profile,
            ctx: Ctx::new(0, config.clock_start as i64),
            memory: vec![0; MEMORY_BYTES].into_boxed_slice(),
            confidence: 1000,
            channels: vec![VecDeque::new(); CHANNELS],
            steps: 0,
            max_steps: config.max_steps,
            fuel: config.fuel.filter(|f| *f != UNLIMITED_FUEL),
            identity: config.identity,
            capabilities: config.capabilities.clone(),
            contended: config.contended.clone(),
            sandbox: None,
            sandbox_saved: Vec::new(),
            tags: Vec::new(),
            persisted: Vec::new(),
            continuations: config.resume_from.iter().cloned().collect(),
            children: Vec::new(),
            trace_limit: config.trace_limit,
            trace: Vec::new(),
            fault_pc: 0,
            watch: false,
            overfull: false,
            decoded: Vec::new(),
        }
        .with_initial_stack(&config.initial_stack)
    }

    fn with_initial_stack(mut self, words: &[u32]) -> Self {
        self.ctx.stack.set(words.iter().copied());
        // More than the stack holds is reported as an overflow before the first step.
        self.overfull = words.len() > STACK_CAPACITY;
        self
    }

    /// The words the host may read back (e.g. a snapshot PERSIST took).
    pub fn persisted(&self) -> &[(u16, Vec<u8>)] {
        &self.persisted
    }

    /// Run to completion.
    pub fn run(mut self) -> RunResult {
        let outcome = if self.overfull {
            Err(Trap::StackOverflow)
        } else {
            match self.profile {
                Profile::Stack => self.execute::<false>(0),
                Profile::Reg => self.execute::<true>(0),
            }
        };
        let (status, error, trap_pc) = match outcome {
            Ok(status) => (status, None, None),
            Err(trap) => {
                // §10: the data stack is not observable after a trap.
                self.ctx.stack.clear();
                let at = if matches!(trap, Trap::StepLimit | Trap::DeadlineExceeded) {
                    self.ctx.pc
                } else {
                    self.fault_pc
                };
                (Status::Trap, Some(trap), Some(at))
            }
        };
        RunResult {
            profile: self.profile,
            stack: self.ctx.stack.iter().map(|&w| w as i32).collect(),
            flags: self.ctx.flags,
            status,
            error,
            trap_pc,
            steps: self.steps,
            registers: (self.profile == Profile::Reg)
                .then(|| self.ctx.regs.iter().map(|&r| r as i32).collect()),
            clock: (self.steps as i64 + self.ctx.bias).max(0) as u64,
            fuel: self.fuel,
            confidence: self.confidence,
            continuations: self.continuations.len(),
            trace: self.trace,
        }
    }

    /// The interpreter loop for the current context. `REG` selects the profile at
    /// compile time so the hot loop has no per-instruction profile test.
    pub(crate) fn execute<const REG: bool>(&mut self, depth: u32) -> Result<Status, Trap> {
        self.refresh_watch();
        loop {
            if !REG && !self.watch {
                if let Some(outcome) = self.fast_stack() {
                    return outcome;
                }
            }
            let pc = self.ctx.pc;
            if pc >= self.code.len() {
                return Ok(Status::End);
            }
            if self.steps >= self.max_steps {
                return Err(Trap::StepLimit);
            }
            if self.watch {
                self.before_watched(pc)?;
            }
            self.steps += 1;
            let step = if REG {
                self.step_reg(depth)
            } else {
                self.step_stack(depth)
            };
            let next = match step {
                Ok(next) => next,
                Err(trap) => {
                    self.fault_pc = pc;
                    return Err(trap);
                }
            };
            if self.watch && !matches!(next, Next::Uncharged) {
                if let Some(fuel) = self.fuel.as_mut() {
                    *fuel -= 1;
                    if *fuel == 0 {
                        self.fault_pc = pc;
                        return Err(Trap::FuelExhausted);
                    }
                }
            }
            if let Next::Stop(status) = next {
                return Ok(status);
            }
        }
    }

    /// Recompute [`Machine::watch`]; called whenever an escape may have changed the
    /// deadline or fuel.
    #[inline]
    pub(crate) fn refresh_watch(&mut self) {
        self.watch = self.ctx.deadline.is_some()
            || self.fuel.is_some()
            || self.sandbox.is_some()
            || self.trace_limit > self.trace.len();
    }

    /// The deadline check and trace, before an instruction starts.
    #[cold]
    fn before_watched(&mut self, pc: usize) -> Result<(), Trap> {
        if let Some((t_dead, checkpoint)) = self.ctx.deadline {
            if pc == checkpoint {
                self.ctx.deadline = None;
            } else if self.steps as i64 + self.ctx.bias > t_dead as i64 {
                self.steps += 1;
                return Err(Trap::DeadlineExceeded);
            }
        }
        if self.trace_limit > self.trace.len() {
            self.trace.push(TraceStep {
                step: self.steps + 1,
                pc,
                opcode: self.code[pc],
                depth: self.ctx.stack.len(),
                top: self.ctx.stack.last().map(|&w| w as i32),
            });
        }
        self.refresh_watch();
        Ok(())
    }

    /// The clock value the current instruction observes (valid while it executes).
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        (self.steps as i64 - 1 + self.ctx.bias).max(0) as u64
    }

    /// Advance the clock by `ticks` beyond the instruction's own tick.
    #[inline]
    pub(crate) fn advance_clock(&mut self, ticks: u64) {
        self.ctx.bias += ticks as i64;
    }

    /// Set the clock the current instruction sees to `clock`.
    #[inline]
    pub(crate) fn set_clock(&mut self, clock: u64) {
        self.ctx.bias = clock as i64 - (self.steps as i64 - 1);
    }

    // ---- shared helpers --------------------------------------------------------

    #[inline(always)]
    pub(crate) fn push(&mut self, w: u32) -> Result<(), Trap> {
        if self.ctx.stack.push(w) {
            Ok(())
        } else {
            Err(Trap::StackOverflow)
        }
    }

    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Result<u32, Trap> {
        self.ctx.stack.pop().ok_or(Trap::StackUnderflow)
    }

    /// Pop `a b` (b on top), checking the depth first so nothing is consumed on underflow.
    #[inline(always)]
    pub(crate) fn pop2(&mut self) -> Result<(u32, u32), Trap> {
        let n = self.ctx.stack.len();
        if n < 2 {
            return Err(Trap::StackUnderflow);
        }
        let (a, b) = (self.ctx.stack[n - 2], self.ctx.stack[n - 1]);
        self.ctx.stack.truncate(n - 2);
        Ok((a, b))
    }

    #[inline(always)]
    pub(crate) fn need(&self, n: usize) -> Result<(), Trap> {
        if self.ctx.stack.len() < n {
            Err(Trap::StackUnderflow)
        } else {
            Ok(())
        }
    }

    /// The `len` bytes of the instruction at pc, or TRUNCATED_INSTRUCTION.
    #[inline(always)]
    pub(crate) fn fetch(&self, len: usize) -> Result<&'c [u8], Trap> {
        let pc = self.ctx.pc;
        self.code
            .get(pc..pc + len)
            .ok_or(Trap::TruncatedInstruction)
    }

    /// pc := next_pc + disp, within 0 ..= len(code).
    #[inline(always)]
    pub(crate) fn jump_rel(&mut self, next_pc: usize, disp: i32) -> Result<(), Trap> {
        let target = next_pc as i64 + disp as i64;
        self.jump_abs(target)
    }

    #[inline(always)]
    pub(crate) fn jump_abs(&mut self, target: i64) -> Result<(), Trap> {
        if target < 0 || target > self.code.len() as i64 {
            return Err(Trap::BadJump);
        }
        self.ctx.pc = target as usize;
        Ok(())
    }

    /// Check a word access at effective byte address `addr` (range, then sandbox).
    #[inline(always)]
    pub(crate) fn mem_check(&self, addr: i64, write: bool) -> Result<usize, Trap> {
        if !(0..MEMORY_BYTES as i64).contains(&addr) {
            return Err(Trap::MemOutOfRange);
        }
        let addr = addr as usize;
        if let Some(sb) = self.sandbox {
            let need = if write { 2 } else { 1 };
            let inside = (0..4).all(|i| {
                let b = ((addr + i) % MEMORY_BYTES) as u32;
                b >= sb.start && b < sb.start + sb.size
            });
            if sb.perms & need == 0 || !inside {
                return Err(Trap::SandboxViolation);
            }
        }
        Ok(addr)
    }

    #[inline(always)]
    pub(crate) fn load_word(&self, addr: usize) -> u32 {
        if addr <= MEMORY_BYTES - 4 {
            u32::from_le_bytes([
                self.memory[addr],
                self.memory[addr + 1],
                self.memory[addr + 2],
                self.memory[addr + 3],
            ])
        } else {
            let b = |i: usize| self.memory[(addr + i) % MEMORY_BYTES];
            u32::from_le_bytes([b(0), b(1), b(2), b(3)])
        }
    }

    #[inline(always)]
    pub(crate) fn store_word(&mut self, addr: usize, w: u32) {
        for (i, byte) in w.to_le_bytes().into_iter().enumerate() {
            self.memory[(addr + i) % MEMORY_BYTES] = byte;
        }
    }

    /// Binary32 arithmetic on word bit patterns; every NaN becomes the canonical one.
    #[inline(always)]
    pub(crate) fn float_op(a: u32, b: u32, f: impl FnOnce(f32, f32) -> f32) -> u32 {
        let r = f(f32::from_bits(a), f32::from_bits(b));
        if r.is_nan() {
            CANONICAL_NAN
        } else {
            r.to_bits()
        }
    }

    /// Run FORK child `id` to completion (JOIN). Returns its top of stack or 0.
    pub(crate) fn join(&mut self, id: u32, depth: u32) -> Result<u32, Trap> {
        let index = (id as usize).wrapping_sub(1);
        let entry = match self.children.get(index) {
            Some(ChildState::Ready(entry)) => *entry,
            _ => return Err(Trap::JoinFailed),
        };
        if depth >= MAX_JOIN_DEPTH {
            return Err(Trap::JoinFailed);
        }
        self.children[index] = ChildState::Joined;
        // The child starts at the parent's clock; its steps do not advance the parent's.
        let steps_before = self.steps;
        let child = Ctx::new(entry, self.now() as i64 - self.steps as i64);
        let parent = std::mem::replace(&mut self.ctx, child);
        let outcome = if entry > self.code.len() {
            Err(Trap::BadJump)
        } else if self.profile == Profile::Reg {
            self.execute::<true>(depth + 1)
        } else {
            self.execute::<false>(depth + 1)
        };
        let child = std::mem::replace(&mut self.ctx, parent);
        self.ctx.bias -= (self.steps - steps_before) as i64;
        self.refresh_watch();
        match outcome {
            Ok(_) => Ok(child.stack.last().copied().unwrap_or(0)),
            Err(Trap::FuelExhausted) => Err(Trap::FuelExhausted),
            Err(_) => Err(Trap::JoinFailed),
        }
    }
}
