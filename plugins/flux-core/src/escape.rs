//! The v3 escape prefix `FF sel [sub] payload…` (FLUX.md §11) and, in the `reg`
//! profile, the compressed shorts `FF A0…B2` (§12.3).

use crate::machine::{
    ChildState, Continuation, Flags, Machine, Next, Sandbox, Status, MEMORY_BYTES, REGISTERS,
    UNLIMITED_FUEL,
};
use crate::profile::Profile;
use crate::trap::Trap;

/// Payload bytes after `FF sel sub` for each assigned (sel, sub).
pub fn payload_len(sel: u8, sub: u8) -> Option<usize> {
    Some(match (sel, sub) {
        (0x01, 0x00) => 0,
        (0x01, 0x01) => 6,
        (0x01, 0x02) => 1,
        (0x01, 0x03) => 4,
        (0x01, 0x04) => 0,
        (0x01, 0x05) => 4,
        (0x02, 0x00) => 3,
        (0x02, 0x01) => 5,
        (0x02, 0x02) => 5,
        (0x02, 0x03) => 0,
        (0x02, 0x04) => 4,
        (0x02, 0x05) => 0,
        (0x03, 0x00) => 1,
        (0x03, 0x01) => 0,
        (0x03, 0x02) => 2,
        (0x03, 0x03) => 0,
        (0x03, 0x04) => 0,
        (0x03, 0x05) => 3,
        _ => return None,
    })
}

/// Bytes after `FF sel` for a compressed short (`reg` profile).
pub fn compressed_len(sel: u8) -> Option<usize> {
    Some(match sel {
        0xA0 | 0xA8 | 0xA9 | 0xAA | 0xAF | 0xAB | 0xAC | 0xB1 | 0xB2 => 1,
        0xA1..=0xA7 | 0xAD | 0xAE | 0xB0 => 2,
        _ => return None,
    })
}

/// Total encoded length of the escape at `code[0]` (which is 0xFF) in `profile`:
/// `Ok(len)`, or the trap decoding it raises.
pub fn escape_len(code: &[u8], profile: Profile) -> Result<usize, Trap> {
    let sel = *code.get(1).ok_or(Trap::TruncatedInstruction)?;
    let len = match sel {
        0x00 => 3,
        0x01..=0x03 => {
            let sub = *code.get(2).ok_or(Trap::TruncatedInstruction)?;
            3 + payload_len(sel, sub).ok_or(Trap::ExtUnknown)?
        }
        0xA0..=0xB2 if profile == Profile::Reg => {
            2 + compressed_len(sel).ok_or(Trap::ExtUnknown)?
        }
        _ => return Err(Trap::ExtUnknown),
    };
    if code.len() < len {
        return Err(Trap::TruncatedInstruction);
    }
    Ok(len)
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

impl Machine<'_> {
    #[inline]
    fn reg(&self, r: u8) -> Result<u32, Trap> {
        self.ctx
            .regs
            .get(r as usize)
            .copied()
            .ok_or(Trap::IllegalRegister)
    }

    #[inline]
    fn set_reg(&mut self, r: u8, v: u32) -> Result<(), Trap> {
        *self
            .ctx
            .regs
            .get_mut(r as usize)
            .ok_or(Trap::IllegalRegister)? = v;
        Ok(())
    }

    /// Execute the escape at pc. Escapes are what change the deadline and fuel, so the
    /// loop's watch flag is refreshed after each.
    pub(crate) fn step_escape(&mut self, depth: u32) -> Result<Next, Trap> {
        let outcome = self.escape(depth);
        self.refresh_watch();
        outcome
    }

    fn escape(&mut self, depth: u32) -> Result<Next, Trap> {
        let pc = self.ctx.pc;
        let len = escape_len(&self.code[pc..], self.profile)?;
        let b = &self.code[pc..pc + len];
        let next = pc + len;
        self.ctx.pc = next;
        let (sel, sub) = (b[1], b[2]);
        match sel {
            0x00 if sub == 0 => {}
            0x00 => {
                let known = matches!(sub, 1..=3)
                    || (self.profile == Profile::Reg && (0xA0..=0xB2).contains(&sub));
                self.push(known as u32)?;
            }
            0x01 => match sub {
                0x00 => self.push(self.fuel.unwrap_or(UNLIMITED_FUEL))?,
                0x01 => {
                    let ms = u32_at(b, 3) as u64;
                    self.ctx.deadline = Some((self.now() + ms, u16_at(b, 7) as usize));
                }
                0x02 => {
                    if self.contended.contains(&b[3]) {
                        self.advance_clock(1);
                    }
                }
                0x03 => {
                    let (addr, size) = (u16_at(b, 3) as usize, u16_at(b, 5) as usize);
                    let ok = addr + size <= MEMORY_BYTES;
                    if ok {
                        self.persisted
                            .push((addr as u16, self.memory[addr..addr + size].to_vec()));
                    }
                    self.push(ok as u32)?;
                }
                0x04 => self.push(self.now() as u32)?,
                _ => {
                    let t = u32_at(b, 3) as u64;
                    self.set_clock(self.now().max(t));
                }
            },
            0x02 => match sub {
                0x00 => {
                    let (cap, n) = (u16_at(b, 3), b[5] as usize);
                    if !self.capabilities.contains(&cap) {
                        return Err(Trap::CapDenied);
                    }
                    self.need(n)?;
                    let keep = self.ctx.stack.len() - n;
                    self.ctx.stack.truncate(keep);
                    self.push(0)?;
                }
                0x01 => self.tags.push((u16_at(b, 3), u16_at(b, 5), b[7])),
                0x02 => {
                    self.sandbox_saved.push(self.sandbox);
                    self.sandbox = Some(Sandbox {
                        start: u16_at(b, 3) as u32,
                        size: u16_at(b, 5) as u32,
                        perms: b[7],
                    });
                }
                0x03 => {
                    if let Some(saved) = self.sandbox_saved.pop() {
                        self.sandbox = saved;
                    }
                }
                0x04 => {
                    let n = u32_at(b, 3);
                    if n == 0 {
                        return Err(Trap::FuelExhausted);
                    }
                    self.fuel = (n != UNLIMITED_FUEL).then_some(n);
                    return Ok(Next::Uncharged);
                }
                _ => self.push(self.identity)?,
            },
            0x03 => match sub {
                0x00 => {
                    let c = Continuation {
                        channel: b[3],
                        pc: next as u32,
                        stack: self.ctx.stack.iter().map(|&w| w as i32 as i64).collect(),
                        flags: self.ctx.flags.0,
                        clock: self.now(),
                        fuel: self.fuel,
                        registers: self.ctx.regs.iter().map(|&r| r as i32 as i64).collect(),
                    };
                    self.continuations.push(c);
                    return Ok(Next::Stop(Status::Suspended));
                }
                0x01 => match self.continuations.pop() {
                    None => self.push(0)?,
                    Some(c) => {
                        self.ctx.stack.set(c.stack.iter().map(|&w| w as u32));
                        self.ctx.flags = Flags(c.flags & 0x0F);
                        self.set_clock(c.clock);
                        self.fuel = c.fuel;
                        let mut regs = [0u32; REGISTERS];
                        for (r, v) in regs.iter_mut().zip(c.registers.iter()) {
                            *r = *v as u32;
                        }
                        self.ctx.regs = regs;
                        self.jump_abs(c.pc as i64)?;
                        self.push(1)?;
                    }
                },
                0x02 => {
                    self.children.push(ChildState::Ready(u16_at(b, 3) as usize));
                    self.push(self.children.len() as u32)?;
                }
                0x03 => {
                    let id = self.pop()?;
                    let r = self.join(id, depth)?;
                    self.push(r)?;
                }
                0x04 => {
                    let id = self.pop()?;
                    let index = (id as usize).wrapping_sub(1);
                    let ok = matches!(self.children.get(index), Some(ChildState::Ready(_)));
                    if ok {
                        self.children[index] = ChildState::Cancelled;
                    }
                    self.push(ok as u32)?;
                }
                _ => {
                    let ch = b[3] as usize;
                    match self.channels[ch].pop_front() {
                        Some(v) => self.push(v)?,
                        None => {
                            self.advance_clock(u16_at(b, 4) as u64);
                            self.push(0)?;
                        }
                    }
                }
            },
            _ => self.compressed(sel, b, next)?,
        }
        Ok(Next::Continue)
    }

    /// Compressed shorts (§12.3); `b` is the whole instruction, pc already advanced.
    fn compressed(&mut self, sel: u8, b: &[u8], next: usize) -> Result<(), Trap> {
        let (x, y) = (b[2], b.get(3).copied().unwrap_or(0));
        // §12.1: register operands are checked at decode, before memory or the stack.
        // A0, A8 and A9 hold registers in a nibble (always valid); AA and AF none.
        let mask = match sel {
            0xA1 | 0xAB | 0xAC | 0xB1 | 0xB2 => 0b01,
            0xA2..=0xA7 | 0xAD | 0xAE | 0xB0 => 0b11,
            _ => 0,
        };
        crate::reg::check_registers(mask, [x, y, 0])?;
        match sel {
            0xA0 => self.set_reg(x >> 4, (x & 0x0F) as u32)?,
            0xA1 => self.set_reg(x, y as u32)?,
            0xA2 => {
                let v = self.reg(y)?;
                self.set_reg(x, v.wrapping_add(v))?
            }
            0xA3 => {
                let v = self.reg(y)?.wrapping_add(self.ctx.regs[0]);
                self.set_reg(x, v)?
            }
            0xA4 | 0xB0 => {
                let v = self.reg(y)?;
                self.set_reg(x, 0u32.wrapping_sub(v))?
            }
            0xA5 => {
                let v = self.reg(y)?;
                self.set_reg(x, v)?
            }
            0xA6 => {
                let v = self.reg(y)?;
                self.set_reg(x, (v == 0) as u32)?
            }
            0xA7 => {
                let v = self.reg(y)?;
                self.set_reg(x, ((v as i32) < 0) as u32)?
            }
            0xA8 | 0xA9 => {
                let v = self.reg(x >> 4)?;
                // Sign-extend the low nibble.
                let off = ((x << 4) as i8 >> 4) as i32;
                if (v == 0) == (sel == 0xA8) {
                    self.jump_rel(next, off)?;
                }
            }
            0xAA => self.jump_rel(next, x as i8 as i32)?,
            0xAF => {
                self.jump_rel(next, x as i8 as i32)?;
                if self.ctx.returns.len() >= crate::machine::RETURN_STACK_CAPACITY {
                    return Err(Trap::CallStackOverflow);
                }
                self.ctx.returns.push(next);
            }
            0xAB => {
                let v = self.reg(x)?;
                self.push(v)?
            }
            0xAC => {
                let v = self.pop()?;
                self.set_reg(x, v)?
            }
            0xAD => {
                let addr = self.mem_check(self.reg(y)? as i32 as i64, false)?;
                let w = self.load_word(addr);
                self.set_reg(x, w)?
            }
            0xAE => {
                let addr = self.mem_check(self.reg(y)? as i32 as i64, true)?;
                let v = self.reg(x)?;
                self.store_word(addr, v);
            }
            0xB1 => {
                let v = self.reg(x)?;
                self.set_reg(x, v.wrapping_add(1))?
            }
            _ => {
                let v = self.reg(x)?;
                self.set_reg(x, v.wrapping_sub(1))?
            }
        }
        Ok(())
    }
}
