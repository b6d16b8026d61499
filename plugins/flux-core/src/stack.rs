//! The stack profile's primary opcodes (FLUX.md §5).

use crate::machine::{Flags, Machine, Next, Status};
use crate::trap::Trap;

impl Machine<'_> {
    #[inline(always)]
    fn binary(&mut self, f: impl FnOnce(u32, u32) -> (u32, Option<Flags>)) -> Result<(), Trap> {
        let (a, b) = self.pop2()?;
        let (r, flags) = f(a, b);
        if let Some(flags) = flags {
            self.ctx.flags = flags;
        }
        // Two were popped, so there is room for one.
        self.push(r)
    }

    #[inline(always)]
    fn compare(&mut self, f: impl FnOnce(i32, i32) -> bool) -> Result<(), Trap> {
        self.binary(|a, b| (f(a as i32, b as i32) as u32, Some(Flags::sub(a, b))))
    }

    #[inline(always)]
    fn unary(&mut self, f: impl FnOnce(u32) -> (u32, Flags)) -> Result<(), Trap> {
        let top = self.ctx.stack.last_mut().ok_or(Trap::StackUnderflow)?;
        let (r, flags) = f(*top);
        *top = r;
        self.ctx.flags = flags;
        Ok(())
    }

    #[inline(always)]
    fn word_index(i: u32) -> i64 {
        let i = i as i32;
        if (0..=16383).contains(&i) {
            i as i64 * 4
        } else {
            -1 // out of range whatever the sandbox
        }
    }

    /// Execute the instruction at pc in the stack profile.
    #[inline(always)]
    pub(crate) fn step_stack(&mut self, depth: u32) -> Result<Next, Trap> {
        let pc = self.ctx.pc;
        let op = self.code[pc];
        match op {
            0x00 => {
                self.ctx.pc = pc + 1;
                return Ok(Next::Stop(Status::Halted));
            }
            0x01 => self.ctx.pc = pc + 1,
            0x02 => {
                self.ctx.pc = pc + 1;
                return Ok(Next::Stop(Status::Break));
            }
            0x10..=0x17
            | 0x20..=0x25
            | 0x30..=0x35
            | 0x43
            | 0x44
            | 0x54
            | 0x56
            | 0x60..=0x63
            | 0x70..=0x73
            | 0x80..=0x82 => {
                self.ctx.pc = pc + 1;
                self.one_byte(op)?;
            }
            0x40 | 0x41 => {
                let b = self.fetch(3)?;
                let addr = u16::from_le_bytes([b[1], b[2]]) as i64;
                self.ctx.pc = pc + 3;
                if op == 0x40 {
                    let addr = self.mem_check(addr, false)?;
                    let w = self.load_word(addr);
                    self.push(w)?;
                } else {
                    self.need(1)?;
                    let addr = self.mem_check(addr, true)?;
                    let w = self.pop()?;
                    self.store_word(addr, w);
                }
            }
            0x50..=0x53 => {
                let b = self.fetch(3)?;
                let disp = i16::from_le_bytes([b[1], b[2]]) as i32;
                let next = pc + 3;
                self.ctx.pc = next;
                match op {
                    0x50 => self.jump_rel(next, disp)?,
                    0x51 | 0x52 => {
                        self.pop()?;
                        if self.ctx.flags.zero() == (op == 0x51) {
                            self.jump_rel(next, disp)?;
                        }
                    }
                    _ => {
                        self.jump_rel(next, disp)?;
                        if self.ctx.returns.len() >= crate::machine::RETURN_STACK_CAPACITY {
                            self.ctx.pc = pc;
                            return Err(Trap::CallStackOverflow);
                        }
                        self.ctx.returns.push(next);
                    }
                }
            }
            0x55 => {
                let b = self.fetch(5)?;
                let w = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
                self.ctx.pc = pc + 5;
                self.push(w)?;
            }
            0x90..=0x92 => {
                let b = self.fetch(2)?;
                let ch = b[1] as usize;
                self.ctx.pc = pc + 2;
                if op == 0x92 {
                    let v = self.channels[ch].pop_front().unwrap_or(0);
                    self.push(v)?;
                } else {
                    // Standalone VM: the only attached agent is itself (§9 loopback).
                    let v = self.pop()?;
                    self.channels[ch].push_back(v);
                }
            }
            0xFF => return self.step_escape(depth),
            _ => return Err(Trap::InvalidOpcode),
        }
        Ok(Next::Continue)
    }

    /// The one-byte stack-profile instructions (pc already advanced).
    #[inline(always)]
    fn one_byte(&mut self, op: u8) -> Result<(), Trap> {
        match op {
            0x10 => self.binary(|a, b| (a.wrapping_add(b), Some(Flags::add(a, b)))),
            0x11 => self.binary(|a, b| (a.wrapping_sub(b), Some(Flags::sub(a, b)))),
            0x12 => self.binary(|a, b| {
                let exact = (a as i32 as i64) * (b as i32 as i64);
                let r = exact as u32;
                let lost = exact != r as i32 as i64;
                (r, Some(Flags::from_bits(r == 0, r >> 31 == 1, lost, lost)))
            }),
            0x13 | 0x14 => {
                let n = self.ctx.stack.len();
                self.need(2)?;
                if self.ctx.stack[n - 1] == 0 {
                    return Err(Trap::DivZero);
                }
                let (a, b) = self.pop2()?;
                let (a, b) = (a as i32, b as i32);
                let (r, overflow) = if op == 0x13 {
                    a.overflowing_div(b)
                } else {
                    (a.wrapping_rem(b), false)
                };
                let r = r as u32;
                self.ctx.flags = Flags::from_bits(r == 0, r >> 31 == 1, false, overflow);
                self.push(r)
            }
            0x15 => self.unary(|a| (0u32.wrapping_sub(a), Flags::sub(0, a))),
            0x16 => self.unary(|a| (a.wrapping_add(1), Flags::add(a, 1))),
            0x17 => self.unary(|a| (a.wrapping_sub(1), Flags::sub(a, 1))),
            0x20 => self.compare(|a, b| a == b),
            0x21 => self.compare(|a, b| a != b),
            0x22 => self.compare(|a, b| a < b),
            0x23 => self.compare(|a, b| a <= b),
            0x24 => self.compare(|a, b| a > b),
            0x25 => self.compare(|a, b| a >= b),
            0x30 => self.binary(|a, b| (a & b, Some(Flags::logic(a & b)))),
            0x31 => self.binary(|a, b| (a | b, Some(Flags::logic(a | b)))),
            0x32 => self.binary(|a, b| (a ^ b, Some(Flags::logic(a ^ b)))),
            0x33 => self.unary(|a| (!a, Flags::logic(!a))),
            0x34 => self.binary(|a, n| {
                let r = a << (n & 31);
                (r, Some(Flags::logic(r)))
            }),
            0x35 => self.binary(|a, n| {
                let r = ((a as i32) >> (n & 31)) as u32;
                (r, Some(Flags::logic(r)))
            }),
            0x43 => {
                let i = self.pop()?;
                let addr = self.mem_check(Self::word_index(i), false)?;
                let w = self.load_word(addr);
                self.push(w)
            }
            0x44 => {
                self.need(2)?;
                let i = self.ctx.stack[self.ctx.stack.len() - 1];
                let addr = self.mem_check(Self::word_index(i), true)?;
                let (w, _) = self.pop2()?;
                self.store_word(addr, w);
                Ok(())
            }
            0x54 => {
                self.ctx.pc = self.ctx.returns.pop().ok_or(Trap::CallStackUnderflow)?;
                Ok(())
            }
            0x56 => self.pop().map(drop),
            0x60 => {
                let a = *self.ctx.stack.last().ok_or(Trap::StackUnderflow)?;
                self.push(a)
            }
            0x61 => {
                self.need(2)?;
                let n = self.ctx.stack.len();
                self.ctx.stack.swap(n - 1, n - 2);
                Ok(())
            }
            0x62 => {
                self.need(2)?;
                let a = self.ctx.stack[self.ctx.stack.len() - 2];
                self.push(a)
            }
            0x63 => {
                self.need(3)?;
                let n = self.ctx.stack.len();
                self.ctx.stack[n - 3..].rotate_left(1);
                Ok(())
            }
            0x70 => self.binary(|a, b| (Self::float_op(a, b, |x, y| x + y), None)),
            0x71 => self.binary(|a, b| (Self::float_op(a, b, |x, y| x - y), None)),
            0x72 => self.binary(|a, b| (Self::float_op(a, b, |x, y| x * y), None)),
            0x73 => self.binary(|a, b| (Self::float_op(a, b, |x, y| x / y), None)),
            0x80 => self.push(self.confidence),
            0x81 => {
                let v = self.pop()? as i32;
                self.confidence = v.clamp(0, 1000) as u32;
                Ok(())
            }
            0x82 => {
                let v = self.pop()? as i32 as i64;
                self.confidence = (self.confidence as i64 * v / 1000).clamp(0, 1000) as u32;
                Ok(())
            }
            _ => Err(Trap::InvalidOpcode),
        }
    }
}
