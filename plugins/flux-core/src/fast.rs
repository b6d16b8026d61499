//! The stack profile's fast path: the common opcodes run from a decoded form of the
//! program, with pc, the step count, the stack depth and the flags in locals. It runs
//! only while nothing needs per-instruction attention (no deadline, fuel or trace) and
//! hands any instruction it does not handle — or that would trap — back to the general
//! interpreter, which executes it from unchanged state. Property tests
//! (`tests/robustness.rs`) check both paths give identical results.
//!
//! The decoded program has one entry per byte offset (a jump may land anywhere) and
//! is filled lazily: an offset is decoded the first time the run reaches it, so a short
//! run pays for the few instructions it executes, not for the whole program. Decoding
//! does everything that depends only on the bytes — operand fetch, length checks,
//! jump-target validation, store-address range, and recognising superinstructions —
//! so the loop is left with what depends on the run: stack depth and steps left.

use crate::machine::{Flags, Machine, Status, MEMORY_BYTES, STACK_CAPACITY};
use crate::trap::Trap;

/// One decoded instruction, or a superinstruction standing for several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Not reached yet.
    Undecoded,
    /// Everything the fast path does not run: the general interpreter does.
    General,
    Halt,
    Nop,
    Add,
    Sub,
    Inc,
    Dec,
    Eq,
    Lt,
    Gt,
    /// LOAD from any address (wrapping at the end of memory as the machine does).
    Load(u16),
    /// STORE to an address whose four bytes fit in memory.
    Store(u16),
    /// Jumps whose target is inside the program (or its end).
    Jmp(u32),
    Jz(u32),
    Jnz(u32),
    Push(u32),
    Pop,
    Dup,
    Swap,
    Over,
    /// DEC DUP JNZ: count down the top of the stack, loop while it is not 0.
    DecDupJnz(u32),
    /// SWAP OVER ADD: ( a b -- b a+b ), one Fibonacci step.
    SwapOverAdd,
    /// LOAD from; DEC; DUP; STORE to; JNZ target: a loop counter kept in memory.
    CountDown {
        from: u16,
        to: u16,
        target: u32,
    },
}

/// The target of the relative jump whose displacement is at `code[at..at + 2]`, from
/// `next`; `None` when it would leave the program.
fn jump_target(code: &[u8], at: usize, next: usize) -> Option<u32> {
    let disp = i16::from_le_bytes([*code.get(at)?, *code.get(at + 1)?]) as i64;
    let target = next as i64 + disp;
    if (0..=code.len() as i64).contains(&target) {
        u32::try_from(target).ok()
    } else {
        None
    }
}

fn u16_at(code: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*code.get(at)?, *code.get(at + 1)?]))
}

/// Decode the instruction (or superinstruction) at `pc`.
fn decode(code: &[u8], pc: usize) -> Op {
    decode_fused(code, pc)
        .or_else(|| decode_single(code, pc))
        .unwrap_or(Op::General)
}

fn decode_fused(code: &[u8], pc: usize) -> Option<Op> {
    let at = |i: usize| code.get(pc + i).copied();
    match (at(0)?, at(1)?, at(2)?) {
        (0x17, 0x60, 0x52) => Some(Op::DecDupJnz(jump_target(code, pc + 3, pc + 5)?)),
        (0x61, 0x62, 0x10) => Some(Op::SwapOverAdd),
        (0x40, _, _) if (at(3)?, at(4)?, at(5)?, at(8)?) == (0x17, 0x60, 0x41, 0x52) => {
            let to = u16_at(code, pc + 6)?;
            if to as usize > MEMORY_BYTES - 4 {
                return None;
            }
            Some(Op::CountDown {
                from: u16_at(code, pc + 1)?,
                to,
                target: jump_target(code, pc + 9, pc + 11)?,
            })
        }
        _ => None,
    }
}

fn decode_single(code: &[u8], pc: usize) -> Option<Op> {
    Some(match *code.get(pc)? {
        0x00 => Op::Halt,
        0x01 => Op::Nop,
        0x10 => Op::Add,
        0x11 => Op::Sub,
        0x16 => Op::Inc,
        0x17 => Op::Dec,
        0x20 => Op::Eq,
        0x22 => Op::Lt,
        0x24 => Op::Gt,
        0x40 => Op::Load(u16_at(code, pc + 1)?),
        0x41 => {
            let addr = u16_at(code, pc + 1)?;
            if addr as usize > MEMORY_BYTES - 4 {
                return None;
            }
            Op::Store(addr)
        }
        // A jump that would leave the program is the general path's to report
        // (and, for JZ/JNZ not taken, to step over).
        0x50 => Op::Jmp(jump_target(code, pc + 1, pc + 3)?),
        0x51 => Op::Jz(jump_target(code, pc + 1, pc + 3)?),
        0x52 => Op::Jnz(jump_target(code, pc + 1, pc + 3)?),
        0x55 => Op::Push(u32::from_le_bytes([
            *code.get(pc + 1)?,
            *code.get(pc + 2)?,
            *code.get(pc + 3)?,
            *code.get(pc + 4)?,
        ])),
        0x56 => Op::Pop,
        0x60 => Op::Dup,
        0x61 => Op::Swap,
        0x62 => Op::Over,
        _ => return None,
    })
}

/// Where a loop's closing JNZ goes: out to `next` once the count reached zero, else
/// back to `target`.
#[inline(always)]
fn loop_back(flags: Flags, next: usize, target: u32) -> usize {
    if flags.zero() {
        next
    } else {
        target as usize
    }
}

#[inline(always)]
fn load_word(memory: &[u8; MEMORY_BYTES], addr: usize) -> u32 {
    if addr <= MEMORY_BYTES - 4 {
        u32::from_le_bytes([
            memory[addr],
            memory[addr + 1],
            memory[addr + 2],
            memory[addr + 3],
        ])
    } else {
        let b = |i: usize| memory[(addr + i) % MEMORY_BYTES];
        u32::from_le_bytes([b(0), b(1), b(2), b(3)])
    }
}

impl Machine<'_> {
    /// Run until an instruction needs the general path (`None`) or the run ends.
    pub(crate) fn fast_stack(&mut self) -> Option<Result<Status, Trap>> {
        let code = self.code;
        if self.decoded.len() != code.len() {
            self.decoded = vec![Op::Undecoded; code.len()];
        }
        let ops = &mut self.decoded[..];
        let memory: &mut [u8; MEMORY_BYTES] = (&mut *self.memory).try_into().ok()?;
        let (st, depth) = self.ctx.stack.parts_mut();
        let max = self.max_steps;
        let mut pc = self.ctx.pc;
        let mut steps = self.steps;
        let mut n = *depth;
        let mut flags = self.ctx.flags;
        let out = loop {
            let Some(&op) = ops.get(pc) else {
                break Some(Ok(Status::End));
            };
            if steps >= max {
                break Some(Err(Trap::StepLimit));
            }
            // Each arm runs only when the instruction cannot trap here; otherwise the
            // loop ends and the general path runs it (and reports the trap).
            match op {
                Op::Undecoded => {
                    ops[pc] = decode(code, pc);
                    continue;
                }
                Op::DecDupJnz(target) if max - steps >= 3 && (1..STACK_CAPACITY).contains(&n) => {
                    let a = st[n - 1];
                    flags = Flags::sub(a, 1);
                    st[n - 1] = a.wrapping_sub(1);
                    pc = loop_back(flags, pc + 5, target);
                    steps += 3;
                    continue;
                }
                Op::SwapOverAdd if max - steps >= 3 && (2..STACK_CAPACITY).contains(&n) => {
                    let (a, b) = (st[n - 2], st[n - 1]);
                    st[n - 2] = b;
                    st[n - 1] = a.wrapping_add(b);
                    flags = Flags::add(a, b);
                    pc += 3;
                    steps += 3;
                    continue;
                }
                // Store addresses were checked at decode; the guards repeat it so the
                // writes need no other bound (and a wrong entry would hand over, not
                // skip the write).
                Op::CountDown { from, to, target }
                    if max - steps >= 5
                        && n + 2 <= STACK_CAPACITY
                        && to as usize <= MEMORY_BYTES - 4 =>
                {
                    let w = load_word(memory, from as usize);
                    flags = Flags::sub(w, 1);
                    let to = to as usize;
                    memory[to..to + 4].copy_from_slice(&w.wrapping_sub(1).to_le_bytes());
                    pc = loop_back(flags, pc + 11, target);
                    steps += 5;
                    continue;
                }
                Op::Halt => {
                    steps += 1;
                    pc += 1;
                    break Some(Ok(Status::Halted));
                }
                Op::Nop => pc += 1,
                Op::Add | Op::Sub if n >= 2 => {
                    let (a, b) = (st[n - 2], st[n - 1]);
                    let (r, f) = if op == Op::Add {
                        (a.wrapping_add(b), Flags::add(a, b))
                    } else {
                        (a.wrapping_sub(b), Flags::sub(a, b))
                    };
                    st[n - 2] = r;
                    n -= 1;
                    flags = f;
                    pc += 1;
                }
                Op::Inc | Op::Dec if n >= 1 => {
                    let a = st[n - 1];
                    let (r, f) = if op == Op::Inc {
                        (a.wrapping_add(1), Flags::add(a, 1))
                    } else {
                        (a.wrapping_sub(1), Flags::sub(a, 1))
                    };
                    st[n - 1] = r;
                    flags = f;
                    pc += 1;
                }
                Op::Eq | Op::Lt | Op::Gt if n >= 2 => {
                    let (a, b) = (st[n - 2], st[n - 1]);
                    let (x, y) = (a as i32, b as i32);
                    let r = match op {
                        Op::Eq => x == y,
                        Op::Lt => x < y,
                        _ => x > y,
                    };
                    st[n - 2] = r as u32;
                    n -= 1;
                    flags = Flags::sub(a, b);
                    pc += 1;
                }
                Op::Load(addr) if n < STACK_CAPACITY => {
                    st[n] = load_word(memory, addr as usize);
                    n += 1;
                    pc += 3;
                }
                Op::Store(addr) if n >= 1 && addr as usize <= MEMORY_BYTES - 4 => {
                    let addr = addr as usize;
                    n -= 1;
                    memory[addr..addr + 4].copy_from_slice(&st[n].to_le_bytes());
                    pc += 3;
                }
                Op::Jmp(target) => pc = target as usize,
                Op::Jz(target) | Op::Jnz(target) if n >= 1 => {
                    n -= 1;
                    let taken = flags.zero() == matches!(op, Op::Jz(_));
                    pc = if taken { target as usize } else { pc + 3 };
                }
                Op::Push(w) if n < STACK_CAPACITY => {
                    st[n] = w;
                    n += 1;
                    pc += 5;
                }
                Op::Pop if n >= 1 => {
                    n -= 1;
                    pc += 1;
                }
                Op::Dup if (1..STACK_CAPACITY).contains(&n) => {
                    st[n] = st[n - 1];
                    n += 1;
                    pc += 1;
                }
                Op::Swap if n >= 2 => {
                    st.swap(n - 1, n - 2);
                    pc += 1;
                }
                Op::Over if (2..STACK_CAPACITY).contains(&n) => {
                    st[n] = st[n - 2];
                    n += 1;
                    pc += 1;
                }
                _ => break None,
            }
            steps += 1;
        };
        self.ctx.pc = pc;
        self.steps = steps;
        *depth = n;
        self.ctx.flags = flags;
        out
    }
}
