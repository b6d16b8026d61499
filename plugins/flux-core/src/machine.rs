//! Machine state and the stack-profile interpreter (FLUX.md §2–§10).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::opcode::Op;
use crate::trap::Trap;

pub const STACK_CAPACITY: usize = 4096;
pub const RETURN_STACK_CAPACITY: usize = 1024;
pub const MEMORY_BYTES: usize = 65536;
pub const DEFAULT_MAX_STEPS: u64 = 1_000_000;
const CHANNELS: usize = 256;
const CANONICAL_NAN: u32 = 0x7FC0_0000;

/// The four condition flags, packed as the spec numbers them (Z=1, S=2, C=4, O=8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Flags(pub u8);

impl Flags {
    pub const Z: u8 = 0x01;
    pub const S: u8 = 0x02;
    pub const C: u8 = 0x04;
    pub const O: u8 = 0x08;

    fn from_bits(z: bool, s: bool, c: bool, o: bool) -> Flags {
        Flags(z as u8 | (s as u8) << 1 | (c as u8) << 2 | (o as u8) << 3)
    }

    fn add(a: u32, b: u32) -> Flags {
        let (r, carry) = a.overflowing_add(b);
        let overflow = (a as i32).overflowing_add(b as i32).1;
        Flags::from_bits(r == 0, r >> 31 == 1, carry, overflow)
    }

    fn sub(a: u32, b: u32) -> Flags {
        let r = a.wrapping_sub(b);
        let overflow = (a as i32).overflowing_sub(b as i32).1;
        Flags::from_bits(r == 0, r >> 31 == 1, a < b, overflow)
    }

    fn logic(r: u32) -> Flags {
        Flags::from_bits(r == 0, r >> 31 == 1, false, false)
    }

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

/// Run options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Words pushed before the run, bottom first.
    pub initial_stack: Vec<u32>,
    /// At most this many instructions start; one more traps with `STEP_LIMIT`.
    pub max_steps: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial_stack: Vec::new(),
            max_steps: DEFAULT_MAX_STEPS,
        }
    }
}

/// The observable result of a run (FLUX.md §10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// Bottom → top, as signed words; empty after a trap.
    pub stack: Vec<i32>,
    pub flags: Flags,
    pub status: Status,
    /// The trap, when `status` is `trap`.
    pub error: Option<Trap>,
    /// Instructions started, the faulting one included.
    pub steps: u64,
}

/// A FLUX machine over one program. Reusable: [`Machine::reset`] clears the state.
pub struct Machine<'c> {
    code: &'c [u8],
    pc: usize,
    stack: Vec<u32>,
    returns: Vec<usize>,
    flags: Flags,
    memory: Box<[u8]>,
    confidence: u32,
    channels: Vec<VecDeque<u32>>,
    steps: u64,
}

impl std::fmt::Debug for Machine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("pc", &self.pc)
            .field("stack", &self.stack)
            .field("flags", &self.flags)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// Run `code` in the stack profile from a fresh machine.
pub fn run(code: &[u8], config: &Config) -> RunResult {
    let mut machine = Machine::new(code);
    machine.run(config)
}

/// What one instruction did to control flow.
enum Next {
    Continue,
    Stop(Status),
}

impl<'c> Machine<'c> {
    pub fn new(code: &'c [u8]) -> Self {
        Machine {
            code,
            pc: 0,
            stack: Vec::with_capacity(64),
            returns: Vec::new(),
            flags: Flags::default(),
            memory: vec![0; MEMORY_BYTES].into_boxed_slice(),
            confidence: 1000,
            channels: vec![VecDeque::new(); CHANNELS],
            steps: 0,
        }
    }

    pub fn reset(&mut self) {
        self.pc = 0;
        self.stack.clear();
        self.returns.clear();
        self.flags = Flags::default();
        self.memory.fill(0);
        self.confidence = 1000;
        self.channels.iter_mut().for_each(VecDeque::clear);
        self.steps = 0;
    }

    /// Run to completion from the current state.
    pub fn run(&mut self, config: &Config) -> RunResult {
        let outcome = self
            .start(config)
            .and_then(|()| self.execute(config.max_steps));
        let (status, error) = match outcome {
            Ok(status) => (status, None),
            Err(trap) => {
                // §10: the data stack is not observable after a trap.
                self.stack.clear();
                (Status::Trap, Some(trap))
            }
        };
        RunResult {
            stack: self.stack.iter().map(|&w| w as i32).collect(),
            flags: self.flags,
            status,
            error,
            steps: self.steps,
        }
    }

    fn start(&mut self, config: &Config) -> Result<(), Trap> {
        for &w in &config.initial_stack {
            self.push(w)?;
        }
        Ok(())
    }

    fn execute(&mut self, max_steps: u64) -> Result<Status, Trap> {
        loop {
            if self.pc >= self.code.len() {
                return Ok(Status::End);
            }
            if self.steps >= max_steps {
                return Err(Trap::StepLimit);
            }
            self.steps += 1;
            if let Next::Stop(status) = self.step()? {
                return Ok(status);
            }
        }
    }

    #[inline]
    fn push(&mut self, w: u32) -> Result<(), Trap> {
        if self.stack.len() >= STACK_CAPACITY {
            return Err(Trap::StackOverflow);
        }
        self.stack.push(w);
        Ok(())
    }

    #[inline]
    fn pop(&mut self) -> Result<u32, Trap> {
        self.stack.pop().ok_or(Trap::StackUnderflow)
    }

    /// Pop `a b` (b on top), checking the depth first so nothing is consumed on underflow.
    #[inline]
    fn pop2(&mut self) -> Result<(u32, u32), Trap> {
        if self.stack.len() < 2 {
            return Err(Trap::StackUnderflow);
        }
        let b = self.pop()?;
        let a = self.pop()?;
        Ok((a, b))
    }

    fn need(&self, n: usize) -> Result<(), Trap> {
        if self.stack.len() < n {
            Err(Trap::StackUnderflow)
        } else {
            Ok(())
        }
    }

    fn operand(&self, len: usize) -> Result<&'c [u8], Trap> {
        self.code
            .get(self.pc + 1..self.pc + len)
            .ok_or(Trap::TruncatedInstruction)
    }

    fn jump(&mut self, next_pc: usize, disp: i16) -> Result<(), Trap> {
        let target = next_pc as i64 + disp as i64;
        if target < 0 || target > self.code.len() as i64 {
            return Err(Trap::BadJump);
        }
        self.pc = target as usize;
        Ok(())
    }

    fn load_word(&self, addr: usize) -> u32 {
        let b = |i: usize| self.memory[(addr + i) % MEMORY_BYTES];
        u32::from_le_bytes([b(0), b(1), b(2), b(3)])
    }

    fn store_word(&mut self, addr: usize, w: u32) {
        for (i, byte) in w.to_le_bytes().into_iter().enumerate() {
            self.memory[(addr + i) % MEMORY_BYTES] = byte;
        }
    }

    fn word_index(i: u32) -> Result<usize, Trap> {
        let i = i as i32;
        if (0..=16383).contains(&i) {
            Ok(i as usize * 4)
        } else {
            Err(Trap::MemOutOfRange)
        }
    }

    fn binary(&mut self, f: impl FnOnce(u32, u32) -> (u32, Option<Flags>)) -> Result<(), Trap> {
        let (a, b) = self.pop2()?;
        let (r, flags) = f(a, b);
        if let Some(flags) = flags {
            self.flags = flags;
        }
        self.push(r)
    }

    fn float(&mut self, f: impl FnOnce(f32, f32) -> f32) -> Result<(), Trap> {
        self.binary(|a, b| {
            let r = f(f32::from_bits(a), f32::from_bits(b));
            (
                if r.is_nan() {
                    CANONICAL_NAN
                } else {
                    r.to_bits()
                },
                None,
            )
        })
    }

    fn compare(&mut self, f: impl FnOnce(i32, i32) -> bool) -> Result<(), Trap> {
        self.binary(|a, b| (f(a as i32, b as i32) as u32, Some(Flags::sub(a, b))))
    }

    fn unary(&mut self, f: impl FnOnce(u32) -> (u32, Flags)) -> Result<(), Trap> {
        let a = self.pop()?;
        let (r, flags) = f(a);
        self.flags = flags;
        self.push(r)
    }

    fn step(&mut self) -> Result<Next, Trap> {
        let byte = self.code[self.pc];
        let op = Op::from_byte(byte).ok_or(Trap::InvalidOpcode)?;
        let len = op.encoded_len();
        let operand = self.operand(len)?;
        let next_pc = self.pc + len;
        self.pc = next_pc;
        match op {
            Op::Halt => return Ok(Next::Stop(Status::Halted)),
            Op::Nop => {}
            Op::Break => return Ok(Next::Stop(Status::Break)),
            Op::Add => self.binary(|a, b| (a.wrapping_add(b), Some(Flags::add(a, b))))?,
            Op::Sub => self.binary(|a, b| (a.wrapping_sub(b), Some(Flags::sub(a, b))))?,
            Op::Mul => self.binary(|a, b| {
                let exact = (a as i32 as i64) * (b as i32 as i64);
                let r = exact as u32;
                let lost = exact != r as i32 as i64;
                (r, Some(Flags::from_bits(r == 0, r >> 31 == 1, lost, lost)))
            })?,
            Op::Div | Op::Mod => {
                let (a, b) = self.pop2()?;
                let (a, b) = (a as i32, b as i32);
                if b == 0 {
                    return Err(Trap::DivZero);
                }
                let (r, overflow) = if op == Op::Div {
                    a.overflowing_div(b)
                } else {
                    (a.wrapping_rem(b), false)
                };
                let r = r as u32;
                self.flags = Flags::from_bits(r == 0, r >> 31 == 1, false, overflow);
                self.push(r)?;
            }
            Op::Neg => self.unary(|a| (0u32.wrapping_sub(a), Flags::sub(0, a)))?,
            Op::Inc => self.unary(|a| (a.wrapping_add(1), Flags::add(a, 1)))?,
            Op::Dec => self.unary(|a| (a.wrapping_sub(1), Flags::sub(a, 1)))?,
            Op::Eq => self.compare(|a, b| a == b)?,
            Op::Ne => self.compare(|a, b| a != b)?,
            Op::Lt => self.compare(|a, b| a < b)?,
            Op::Le => self.compare(|a, b| a <= b)?,
            Op::Gt => self.compare(|a, b| a > b)?,
            Op::Ge => self.compare(|a, b| a >= b)?,
            Op::And => self.binary(|a, b| (a & b, Some(Flags::logic(a & b))))?,
            Op::Or => self.binary(|a, b| (a | b, Some(Flags::logic(a | b))))?,
            Op::Xor => self.binary(|a, b| (a ^ b, Some(Flags::logic(a ^ b))))?,
            Op::Not => self.unary(|a| (!a, Flags::logic(!a)))?,
            Op::Shl => self.binary(|a, n| {
                let r = a << (n & 31);
                (r, Some(Flags::logic(r)))
            })?,
            Op::Shr => self.binary(|a, n| {
                let r = ((a as i32) >> (n & 31)) as u32;
                (r, Some(Flags::logic(r)))
            })?,
            Op::Load => {
                let addr = u16::from_le_bytes([operand[0], operand[1]]) as usize;
                let w = self.load_word(addr);
                self.push(w)?;
            }
            Op::Store => {
                let addr = u16::from_le_bytes([operand[0], operand[1]]) as usize;
                let w = self.pop()?;
                self.store_word(addr, w);
            }
            Op::Peek => {
                let i = self.pop()?;
                let addr = Self::word_index(i)?;
                let w = self.load_word(addr);
                self.push(w)?;
            }
            Op::Poke => {
                let (w, i) = self.pop2()?;
                let addr = Self::word_index(i)?;
                self.store_word(addr, w);
            }
            Op::Jmp => self.jump(next_pc, i16::from_le_bytes([operand[0], operand[1]]))?,
            Op::Jz | Op::Jnz => {
                self.pop()?;
                if self.flags.zero() == (op == Op::Jz) {
                    self.jump(next_pc, i16::from_le_bytes([operand[0], operand[1]]))?;
                }
            }
            Op::Call => {
                self.jump(next_pc, i16::from_le_bytes([operand[0], operand[1]]))?;
                if self.returns.len() >= RETURN_STACK_CAPACITY {
                    return Err(Trap::CallStackOverflow);
                }
                self.returns.push(next_pc);
            }
            Op::Ret => self.pc = self.returns.pop().ok_or(Trap::CallStackUnderflow)?,
            Op::Push => {
                let w = u32::from_le_bytes([operand[0], operand[1], operand[2], operand[3]]);
                self.push(w)?;
            }
            Op::Pop => {
                self.pop()?;
            }
            Op::Dup => {
                let a = *self.stack.last().ok_or(Trap::StackUnderflow)?;
                self.push(a)?;
            }
            Op::Swap => {
                self.need(2)?;
                let n = self.stack.len();
                self.stack.swap(n - 1, n - 2);
            }
            Op::Over => {
                self.need(2)?;
                let a = self.stack[self.stack.len() - 2];
                self.push(a)?;
            }
            Op::Rot => {
                self.need(3)?;
                let n = self.stack.len();
                self.stack[n - 3..].rotate_left(1);
            }
            Op::Fadd => self.float(|a, b| a + b)?,
            Op::Fsub => self.float(|a, b| a - b)?,
            Op::Fmul => self.float(|a, b| a * b)?,
            Op::Fdiv => self.float(|a, b| a / b)?,
            Op::ConfGet => self.push(self.confidence)?,
            Op::ConfSet => {
                let v = self.pop()? as i32;
                self.confidence = v.clamp(0, 1000) as u32;
            }
            Op::ConfMul => {
                let v = self.pop()? as i32 as i64;
                let c = (self.confidence as i64 * v / 1000).clamp(0, 1000);
                self.confidence = c as u32;
            }
            Op::Signal | Op::Broadcast => {
                let v = self.pop()?;
                // Standalone VM: the only attached agent is itself (§9 loopback).
                self.channels[operand[0] as usize].push_back(v);
            }
            Op::Listen => {
                let v = self.channels[operand[0] as usize].pop_front().unwrap_or(0);
                self.push(v)?;
            }
            // The v3 escape prefix (§11) is the full VM's work; until then every
            // escape reports EXT_UNKNOWN rather than guessing.
            Op::Escape => return Err(Trap::ExtUnknown),
        }
        Ok(Next::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    fn run_hex(text: &str) -> RunResult {
        run(&hex::decode(text).unwrap(), &Config::default())
    }

    #[test]
    fn push_push_add_halt_leaves_twelve() {
        let r = run_hex("550500000055070000001000");
        assert_eq!((r.stack, r.status, r.steps), (vec![12], Status::Halted, 4));
    }

    #[test]
    fn falling_off_the_end_is_a_normal_ending() {
        let r = run_hex("5501000000");
        assert_eq!((r.stack, r.status), (vec![1], Status::End));
    }

    #[test]
    fn a_trap_hides_the_stack_and_counts_the_faulting_step() {
        let r = run_hex("55010000005500000000 13");
        assert_eq!(r.error, Some(Trap::DivZero));
        assert!(r.stack.is_empty());
        assert_eq!(r.steps, 3);
    }

    #[test]
    fn an_infinite_loop_hits_the_step_limit() {
        let config = Config {
            max_steps: 1000,
            ..Config::default()
        };
        let r = run(&hex::decode("50fdff").unwrap(), &config);
        assert_eq!((r.error, r.steps), (Some(Trap::StepLimit), 1000));
    }

    #[test]
    fn signed_division_truncates_and_int_min_over_minus_one_sets_overflow() {
        let r = run_hex("55f9ffffff 5502000000 13");
        assert_eq!(r.stack, vec![-3]);
        let r = run_hex("5500000080 55ffffffff 13");
        assert_eq!(r.stack, vec![i32::MIN]);
        assert_eq!(r.flags.0 & Flags::O, Flags::O);
    }

    #[test]
    fn truncated_push_traps_before_running() {
        assert_eq!(run_hex("550500").error, Some(Trap::TruncatedInstruction));
    }

    #[test]
    fn call_and_ret_use_the_return_stack() {
        // call +1 ; halt ; push 9 ; ret
        let r = run_hex("530100 00 5509000000 54");
        assert_eq!((r.stack, r.status), (vec![9], Status::Halted));
    }

    #[test]
    fn jumps_outside_the_program_trap() {
        assert_eq!(run_hex("501000").error, Some(Trap::BadJump));
    }

    #[test]
    fn store_is_visible_to_peek_of_a_quarter_the_address() {
        let r = run_hex("552a000000 411000 5504000000 43 00");
        assert_eq!(r.stack, vec![42]);
    }

    #[test]
    fn floats_canonicalise_nan() {
        // 0.0 / 0.0
        let r = run_hex("5500000000 5500000000 73 00");
        assert_eq!(r.stack, vec![0x7FC0_0000]);
    }

    #[test]
    fn signal_loops_back_to_listen() {
        let r = run_hex("5507000000 9003 9203 9203 00");
        assert_eq!(r.stack, vec![7, 0]);
    }
}
