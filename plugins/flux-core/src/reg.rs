//! The register profile (`reg`, FLUX.md §12): the v3 vector dialect.

use crate::machine::{Machine, Next, Status, CANONICAL_NAN};
use crate::trap::Trap;

/// Encoded length of a primary opcode in the `reg` profile (0xFF: see escapes).
pub fn reg_len(op: u8) -> usize {
    match op {
        0x00..=0x07 | 0xF0..=0xFE => 1,
        0x08..=0x17 => 2,
        0x18 => 4,
        0x19..=0x1F | 0xA0 => 3,
        0x55 => 5,
        0x40..=0x47 | 0xE0..=0xEF => 4,
        0x48..=0x4F | 0xA4 | 0xD0..=0xDF => 5,
        0xFF => 3,
        _ => 4, // 20–3F, 50–9F, A1–A3, A5–CF
    }
}

/// Which bytes of a defined register instruction name registers: bit 0 the byte after
/// the opcode (rd), bit 1 the next (rs1), bit 2 the one after (rs2). Offsets and
/// immediates are not registers.
pub const fn reg_operands(op: u8) -> u8 {
    match op {
        0x08..=0x0D | 0x18..=0x1F | 0x3C..=0x42 | 0x44 | 0x46 => 0b001,
        0x36 | 0x37 | 0x3A | 0x3B | 0x48 | 0x49 => 0b011,
        0x20..=0x35 | 0x38 | 0x39 => 0b111,
        _ => 0,
    }
}

/// [`reg_operands`] for every opcode, looked up once per instruction.
static REG_OPERANDS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut op = 0;
    while op < 256 {
        t[op] = reg_operands(op as u8);
        op += 1;
    }
    t
};

/// FLUX.md §12.1: every register operand is checked when the instruction is decoded,
/// so `ILLEGAL_REGISTER` wins over any other trap the instruction could raise.
#[inline(always)]
pub(crate) fn check_registers(mask: u8, operands: [u8; 3]) -> Result<(), Trap> {
    let bad = (mask & 1 != 0 && operands[0] >= 16)
        | (mask & 2 != 0 && operands[1] >= 16)
        | (mask & 4 != 0 && operands[2] >= 16);
    if bad {
        Err(Trap::IllegalRegister)
    } else {
        Ok(())
    }
}

/// Whether §12.2 defines the opcode (others of known length trap UNIMPLEMENTED).
pub fn reg_defined(op: u8) -> bool {
    matches!(op, 0x00 | 0x01 | 0x02 | 0x04 | 0x07 | 0x08..=0x0D | 0x18..=0x1F | 0x20..=0x3F | 0x40..=0x46 | 0x48 | 0x49 | 0x55)
}

fn fmin(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        b
    } else if b.is_nan() {
        a
    } else {
        a.min(b)
    }
}

fn fmax(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        b
    } else if b.is_nan() {
        a
    } else {
        a.max(b)
    }
}

impl Machine<'_> {
    #[inline(always)]
    fn r(&self, i: u8) -> Result<u32, Trap> {
        self.ctx
            .regs
            .get(i as usize)
            .copied()
            .ok_or(Trap::IllegalRegister)
    }

    #[inline(always)]
    fn w(&mut self, i: u8, v: u32) -> Result<(), Trap> {
        *self
            .ctx
            .regs
            .get_mut(i as usize)
            .ok_or(Trap::IllegalRegister)? = v;
        Ok(())
    }

    /// LOAD/STORE and LOADOFF/STOREOFF: the address is checked (range, then sandbox);
    /// `rd` was checked at decode (§12.1), so reading it cannot trap.
    fn reg_memory(&mut self, rd: u8, base: u32, store: bool) -> Result<(), Trap> {
        let addr = self.mem_check(base as i32 as i64, store)?;
        if store {
            let v = self.r(rd)?;
            self.store_word(addr, v);
        } else {
            self.r(rd)?;
            let v = self.load_word(addr);
            self.w(rd, v)?;
        }
        Ok(())
    }

    /// Execute the instruction at pc in the register profile.
    pub(crate) fn step_reg(&mut self, depth: u32) -> Result<Next, Trap> {
        let pc = self.ctx.pc;
        let op = self.code[pc];
        if op == 0xFF {
            return self.step_escape(depth);
        }
        let len = reg_len(op);
        let b = self.fetch(len)?;
        let next = pc + len;
        if !reg_defined(op) {
            return Err(Trap::Unimplemented);
        }
        self.ctx.pc = next;
        let (rd, x, y) = (
            b.get(1).copied().unwrap_or(0),
            b.get(2).copied().unwrap_or(0),
            b.get(3).copied().unwrap_or(0),
        );
        check_registers(REG_OPERANDS[op as usize], [rd, x, y])?;
        let imm16 = u16::from_le_bytes([x, y]);
        match op {
            0x00 => return Ok(Next::Stop(Status::Halted)),
            0x01 | 0x07 => {}
            0x02 => self.ctx.pc = self.ctx.returns.pop().ok_or(Trap::CallStackUnderflow)?,
            0x04 => return Ok(Next::Stop(Status::Break)),
            0x08..=0x0B => {
                let v = self.r(rd)?;
                let r = match op {
                    0x08 => v.wrapping_add(1),
                    0x09 => v.wrapping_sub(1),
                    0x0A => !v,
                    _ => 0u32.wrapping_sub(v),
                };
                self.w(rd, r)?;
            }
            0x0C => {
                let v = self.r(rd)?;
                self.push(v)?;
            }
            0x0D => {
                self.r(rd)?;
                let v = self.pop()?;
                self.w(rd, v)?;
            }
            0x18 => self.w(rd, imm16 as i16 as i32 as u32)?,
            0x19..=0x1F => {
                let v = self.r(rd)?;
                let r = match op {
                    0x19 => v.wrapping_add(x as i8 as i32 as u32),
                    0x1A => v.wrapping_sub(x as i8 as i32 as u32),
                    0x1B => v & x as u32,
                    0x1C => v | x as u32,
                    0x1D => v ^ x as u32,
                    0x1E => v << (x & 31),
                    _ => ((v as i32) >> (x & 31)) as u32,
                };
                self.w(rd, r)?;
            }
            0x20..=0x35 => {
                let (a, c) = (self.r(x)?, self.r(y)?);
                self.r(rd)?;
                let (ai, ci) = (a as i32, c as i32);
                let r = match op {
                    0x20 => a.wrapping_add(c),
                    0x21 => a.wrapping_sub(c),
                    0x22 => a.wrapping_mul(c),
                    0x23 | 0x24 => {
                        if c == 0 {
                            return Err(Trap::DivZero);
                        }
                        (if op == 0x23 {
                            ai.wrapping_div(ci)
                        } else {
                            ai.wrapping_rem(ci)
                        }) as u32
                    }
                    0x25 => a & c,
                    0x26 => a | c,
                    0x27 => a ^ c,
                    0x28 => a << (c & 31),
                    0x29 => (ai >> (c & 31)) as u32,
                    0x2A => ai.min(ci) as u32,
                    0x2B => ai.max(ci) as u32,
                    0x2C => (ai == ci) as u32,
                    0x2D => (ai < ci) as u32,
                    0x2E => (ai > ci) as u32,
                    0x2F => (ai != ci) as u32,
                    0x30 => Self::float_op(a, c, |p, q| p + q),
                    0x31 => Self::float_op(a, c, |p, q| p - q),
                    0x32 => Self::float_op(a, c, |p, q| p * q),
                    0x33 => Self::float_op(a, c, |p, q| p / q),
                    0x34 => Self::float_op(a, c, fmin),
                    _ => Self::float_op(a, c, fmax),
                };
                self.w(rd, r)?;
            }
            0x36 => {
                let v = f32::from_bits(self.r(x)?);
                self.w(rd, v as i32 as u32)?;
            }
            0x37 => {
                let v = self.r(x)? as i32 as f32;
                let bits = if v.is_nan() {
                    CANONICAL_NAN
                } else {
                    v.to_bits()
                };
                self.w(rd, bits)?;
            }
            0x38 | 0x39 => {
                let base = self.r(x)?.wrapping_add(self.r(y)?);
                self.reg_memory(rd, base, op == 0x39)?;
            }
            0x3A => {
                let v = self.r(x)?;
                self.w(rd, v)?;
            }
            0x3B => {
                let (a, c) = (self.r(rd)?, self.r(x)?);
                self.w(rd, c)?;
                self.w(x, a)?;
            }
            0x3C..=0x3F => {
                let v = self.r(rd)? as i32;
                let taken = match op {
                    0x3C => v == 0,
                    0x3D => v != 0,
                    0x3E => v < 0,
                    _ => v > 0,
                };
                if taken {
                    self.jump_rel(next, x as i8 as i32)?;
                }
            }
            0x40..=0x42 => {
                let v = self.r(rd)?;
                let r = match op {
                    0x40 => imm16 as u32,
                    0x41 => v.wrapping_add(imm16 as u32),
                    _ => v.wrapping_sub(imm16 as u32),
                };
                self.w(rd, r)?;
            }
            0x43 => self.jump_rel(next, imm16 as i16 as i32)?,
            0x44 => {
                self.r(rd)?;
                self.jump_rel(next, imm16 as i16 as i32)?;
                self.w(rd, next as u32)?;
            }
            0x45 => {
                self.jump_rel(next, imm16 as i16 as i32)?;
                if self.ctx.returns.len() >= crate::machine::RETURN_STACK_CAPACITY {
                    return Err(Trap::CallStackOverflow);
                }
                self.ctx.returns.push(next);
            }
            0x46 => {
                let v = self.r(rd)?.wrapping_sub(1);
                self.w(rd, v)?;
                if (v as i32) > 0 {
                    self.jump_rel(next, -(imm16 as i16 as i32))?;
                }
            }
            0x48 | 0x49 => {
                let off = i16::from_le_bytes([y, b[4]]) as i32;
                let base = self.r(x)?.wrapping_add(off as u32);
                self.reg_memory(rd, base, op == 0x49)?;
            }
            0x55 => {
                let v = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
                self.push(v)?;
            }
            _ => return Err(Trap::Unimplemented),
        }
        Ok(Next::Continue)
    }
}
