//! The stack profile's fast path: the common opcodes with pc and the step count in
//! locals. It runs only while nothing needs per-instruction attention (no deadline,
//! fuel or trace) and hands any instruction it does not handle — or that would trap —
//! back to the general interpreter, which executes it from unchanged state. A property
//! test (`tests/robustness.rs`) checks both paths give identical results.

use crate::machine::{Flags, Machine, Status, WordStack, MEMORY_BYTES, STACK_CAPACITY};
use crate::trap::Trap;

impl Machine<'_> {
    /// Run until an instruction needs the general path (`None`) or the run ends.
    pub(crate) fn fast_stack(&mut self) -> Option<Result<Status, Trap>> {
        let code = self.code;
        let max = self.max_steps;
        let mut pc = self.ctx.pc;
        let mut steps = self.steps;
        let out = loop {
            if pc >= code.len() {
                break Some(Ok(Status::End));
            }
            if steps >= max {
                break Some(Err(Trap::StepLimit));
            }
            let st = &mut self.ctx.stack;
            let n = st.len();
            // Superinstructions: the loop shapes compilers and people write, run as
            // one dispatch when every instruction in them would run here anyway (room
            // on the stack, a valid jump, steps left for all of them). Otherwise the
            // first instruction runs alone below, exactly as before.
            let op = code[pc];
            if matches!(op, 0x17 | 0x40 | 0x61) {
                if let Some((next_pc, k)) = fused(
                    code,
                    pc,
                    st,
                    &mut self.ctx.flags,
                    &mut self.memory,
                    max - steps,
                ) {
                    pc = next_pc;
                    steps += k;
                    continue;
                }
            }
            match op {
                0x00 => {
                    steps += 1;
                    pc += 1;
                    break Some(Ok(Status::Halted));
                }
                0x01 => pc += 1,
                op @ (0x10 | 0x11) if n >= 2 => {
                    let (a, b) = (st[n - 2], st[n - 1]);
                    let (r, f) = if op == 0x10 {
                        (a.wrapping_add(b), Flags::add(a, b))
                    } else {
                        (a.wrapping_sub(b), Flags::sub(a, b))
                    };
                    st[n - 2] = r;
                    st.truncate(n - 1);
                    self.ctx.flags = f;
                    pc += 1;
                }
                op @ (0x16 | 0x17) if n >= 1 => {
                    let a = st[n - 1];
                    let (r, f) = if op == 0x16 {
                        (a.wrapping_add(1), Flags::add(a, 1))
                    } else {
                        (a.wrapping_sub(1), Flags::sub(a, 1))
                    };
                    st[n - 1] = r;
                    self.ctx.flags = f;
                    pc += 1;
                }
                op @ (0x20 | 0x22 | 0x24) if n >= 2 => {
                    let (a, b) = (st[n - 2], st[n - 1]);
                    let (x, y) = (a as i32, b as i32);
                    let r = match op {
                        0x20 => x == y,
                        0x22 => x < y,
                        _ => x > y,
                    };
                    st[n - 2] = r as u32;
                    st.truncate(n - 1);
                    self.ctx.flags = Flags::sub(a, b);
                    pc += 1;
                }
                0x40 if pc + 3 <= code.len() && n < STACK_CAPACITY => {
                    let addr = u16::from_le_bytes([code[pc + 1], code[pc + 2]]) as usize;
                    let w = self.load_word(addr);
                    self.ctx.stack.push(w);
                    pc += 3;
                }
                0x41 if pc + 3 <= code.len()
                    && n >= 1
                    && (u16::from_le_bytes([code[pc + 1], code[pc + 2]]) as usize)
                        <= MEMORY_BYTES - 4 =>
                {
                    let addr = u16::from_le_bytes([code[pc + 1], code[pc + 2]]) as usize;
                    let w = st[n - 1];
                    st.truncate(n - 1);
                    self.memory[addr..addr + 4].copy_from_slice(&w.to_le_bytes());
                    pc += 3;
                }
                op @ 0x50..=0x52 if pc + 3 <= code.len() && (op == 0x50 || n >= 1) => {
                    let next = pc + 3;
                    let target =
                        next as i64 + i16::from_le_bytes([code[pc + 1], code[pc + 2]]) as i64;
                    let taken = match op {
                        0x50 => true,
                        0x51 => self.ctx.flags.zero(),
                        _ => !self.ctx.flags.zero(),
                    };
                    if taken && (target < 0 || target > code.len() as i64) {
                        break None;
                    }
                    if op != 0x50 {
                        st.truncate(n - 1);
                    }
                    pc = if taken { target as usize } else { next };
                }
                0x55 if pc + 5 <= code.len() && n < STACK_CAPACITY => {
                    let w = u32::from_le_bytes([
                        code[pc + 1],
                        code[pc + 2],
                        code[pc + 3],
                        code[pc + 4],
                    ]);
                    st.push(w);
                    pc += 5;
                }
                0x56 if n >= 1 => {
                    st.truncate(n - 1);
                    pc += 1;
                }
                0x60 if (1..STACK_CAPACITY).contains(&n) => {
                    let a = st[n - 1];
                    st.push(a);
                    pc += 1;
                }
                0x61 if n >= 2 => {
                    st.swap(n - 1, n - 2);
                    pc += 1;
                }
                0x62 if (2..STACK_CAPACITY).contains(&n) => {
                    let a = st[n - 2];
                    st.push(a);
                    pc += 1;
                }
                _ => break None,
            }
            steps += 1;
        };
        self.ctx.pc = pc;
        self.steps = steps;
        out
    }
}

/// The target of a relative jump whose displacement is at `code[at..at + 2]`, from
/// `next`; `None` when it would leave the program.
#[inline(always)]
fn jump_target(code: &[u8], at: usize, next: usize) -> Option<usize> {
    let target = next as i64 + i16::from_le_bytes([code[at], code[at + 1]]) as i64;
    (0..=code.len() as i64)
        .contains(&target)
        .then_some(target as usize)
}

/// Run the superinstruction starting at `pc`, if there is one and it may run whole:
/// returns the next pc and the instructions it counted. Each is the exact composition
/// of the single instructions (the property test `the_fast_path_and_the_general_path_agree`
/// and `superinstructions_equal_their_parts` compare them with the general path).
#[inline(always)]
fn fused(
    code: &[u8],
    pc: usize,
    st: &mut WordStack,
    flags: &mut Flags,
    memory: &mut [u8],
    steps_left: u64,
) -> Option<(usize, u64)> {
    let n = st.len();
    let at = |i: usize| code.get(pc + i).copied();
    match (at(0)?, at(1), at(2)) {
        // DEC DUP JNZ off: count down the top of the stack, loop while it is not 0.
        (0x17, Some(0x60), Some(0x52)) if steps_left >= 3 && (1..STACK_CAPACITY).contains(&n) => {
            let next = pc + 5;
            if next > code.len() {
                return None;
            }
            let a = st[n - 1];
            let f = Flags::sub(a, 1);
            let target = if f.zero() {
                next
            } else {
                jump_target(code, pc + 3, next)?
            };
            st[n - 1] = a.wrapping_sub(1);
            *flags = f;
            Some((target, 3))
        }
        // SWAP OVER ADD: ( a b -- b a+b ), one Fibonacci step.
        (0x61, Some(0x62), Some(0x10)) if steps_left >= 3 && (2..STACK_CAPACITY).contains(&n) => {
            let (a, b) = (st[n - 2], st[n - 1]);
            st[n - 2] = b;
            st[n - 1] = a.wrapping_add(b);
            *flags = Flags::add(a, b);
            Some((pc + 3, 3))
        }
        // LOAD x; DEC; DUP; STORE y; JNZ off: a loop counter kept in memory.
        (0x40, _, _)
            if steps_left >= 5
                && n + 2 <= STACK_CAPACITY
                && pc + 11 <= code.len()
                && code[pc + 3] == 0x17
                && code[pc + 4] == 0x60
                && code[pc + 5] == 0x41
                && code[pc + 8] == 0x52 =>
        {
            let from = u16::from_le_bytes([code[pc + 1], code[pc + 2]]) as usize;
            let to = u16::from_le_bytes([code[pc + 6], code[pc + 7]]) as usize;
            if to > MEMORY_BYTES - 4 {
                return None;
            }
            let next = pc + 11;
            let w = if from <= MEMORY_BYTES - 4 {
                u32::from_le_bytes([
                    memory[from],
                    memory[from + 1],
                    memory[from + 2],
                    memory[from + 3],
                ])
            } else {
                let b = |i: usize| memory[(from + i) % MEMORY_BYTES];
                u32::from_le_bytes([b(0), b(1), b(2), b(3)])
            };
            let f = Flags::sub(w, 1);
            let target = if f.zero() {
                next
            } else {
                jump_target(code, pc + 9, next)?
            };
            memory[to..to + 4].copy_from_slice(&w.wrapping_sub(1).to_le_bytes());
            *flags = f;
            Some((target, 5))
        }
        _ => None,
    }
}
