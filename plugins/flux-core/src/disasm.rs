//! Disassembly. For the stack profile the output is valid assembly that reassembles to
//! the same bytes (`assemble(disassemble(code)) == code`); branch targets on
//! instruction boundaries get labels, bytes that are not instructions become `.byte`.
//! For the `reg` profile it is a listing (there is no register assembler).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::decode::{stack_branch, sweep, Insn};
use crate::opcode::Op;
use crate::profile::Profile;

fn label(offset: usize) -> String {
    format!("L{offset:04x}")
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn bytes_directive(bytes: &[u8]) -> String {
    let list: Vec<String> = bytes.iter().map(|b| format!("0x{b:02x}")).collect();
    format!(".byte {}", list.join(", "))
}

/// Absolute code addresses an escape refers to (FORK entry, DEADLINE checkpoint).
fn escape_code_ref(b: &[u8]) -> Option<usize> {
    match (b.get(1), b.get(2)) {
        (Some(0x03), Some(0x02)) => Some(u16_at(b, 3) as usize),
        (Some(0x01), Some(0x01)) => Some(u16_at(b, 7) as usize),
        _ => None,
    }
}

fn code_operand(target: usize, labels: &BTreeSet<usize>) -> String {
    if labels.contains(&target) {
        label(target)
    } else {
        target.to_string()
    }
}

fn escape_text(b: &[u8], labels: &BTreeSet<usize>) -> String {
    let (sel, sub) = (b[1], b[2]);
    match (sel, sub) {
        (0x00, 0x00) => "ext.nop".into(),
        (0x00, n) => format!("probe {n}"),
        (0x01, 0x00) => "fuel.check".into(),
        (0x01, 0x01) => format!(
            "deadline {}, {}",
            u32_at(b, 3),
            code_operand(u16_at(b, 7) as usize, labels)
        ),
        (0x01, 0x02) => format!("yield {}", b[3]),
        (0x01, 0x03) => format!("persist {}, {}", u16_at(b, 3), u16_at(b, 5)),
        (0x01, 0x04) => "time.now".into(),
        (0x01, 0x05) => format!("sleep.until {}", u32_at(b, 3)),
        (0x02, 0x00) => format!("cap.invoke {}, {}", u16_at(b, 3), b[5]),
        (0x02, 0x01) => format!("mem.tag {}, {}, {}", u16_at(b, 3), u16_at(b, 5), b[7]),
        (0x02, 0x02) => format!("sandbox.enter {}, {}, {}", u16_at(b, 3), u16_at(b, 5), b[7]),
        (0x02, 0x03) => "sandbox.exit".into(),
        (0x02, 0x04) => format!("fuel.set {}", u32_at(b, 3)),
        (0x02, 0x05) => "identity".into(),
        (0x03, 0x00) => format!("suspend {}", b[3]),
        (0x03, 0x01) => "resume".into(),
        (0x03, 0x02) => format!("fork {}", code_operand(u16_at(b, 3) as usize, labels)),
        (0x03, 0x03) => "join".into(),
        (0x03, 0x04) => "cancel".into(),
        (0x03, 0x05) => format!("await {}, {}", b[3], u16_at(b, 4)),
        _ => bytes_directive(b),
    }
}

fn stack_text(insn: &Insn<'_>, labels: &BTreeSet<usize>) -> String {
    let b = insn.bytes;
    if insn.decode.is_err() {
        return bytes_directive(b);
    }
    if b[0] == 0xFF {
        return escape_text(b, labels);
    }
    let Some(op) = Op::from_byte(b[0]) else {
        return bytes_directive(b);
    };
    let m = op.mnemonic();
    match op {
        Op::Load | Op::Store => format!("{m} {}", u16_at(b, 1)),
        Op::Jmp | Op::Jz | Op::Jnz | Op::Call => {
            let disp = i16::from_le_bytes([b[1], b[2]]);
            match stack_branch(insn) {
                Some((target, _)) if target >= 0 && labels.contains(&(target as usize)) => {
                    format!("{m} {}", label(target as usize))
                }
                _ => format!("{m} {disp:+}"),
            }
        }
        Op::Push => format!("{m} {}", u32_at(b, 1) as i32),
        Op::Signal | Op::Broadcast | Op::Listen => format!("{m} {}", b[1]),
        _ => m.to_owned(),
    }
}

/// Disassemble `code`. Stack-profile output reassembles to the same bytes.
pub fn disassemble(code: &[u8], profile: Profile) -> String {
    let insns = sweep(code, profile);
    if profile == Profile::Reg {
        return reg_listing(&insns);
    }
    let boundaries: BTreeSet<usize> = insns
        .iter()
        .map(|i| i.offset)
        .chain(std::iter::once(code.len()))
        .collect();
    let mut labels = BTreeSet::new();
    for insn in insns.iter().filter(|i| i.decode.is_ok()) {
        let target = if insn.bytes[0] == 0xFF {
            escape_code_ref(insn.bytes).map(|t| t as i64)
        } else {
            stack_branch(insn).map(|(t, _)| t)
        };
        if let Some(t) = target.filter(|t| *t >= 0).map(|t| t as usize) {
            if boundaries.contains(&t) {
                labels.insert(t);
            }
        }
    }
    let mut out = String::new();
    for insn in &insns {
        if labels.contains(&insn.offset) {
            let _ = writeln!(out, "{}:", label(insn.offset));
        }
        let text = stack_text(insn, &labels);
        let hex: Vec<String> = insn.bytes.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            out,
            "    {text:<28} ; {:04x}: {}",
            insn.offset,
            hex.join(" ")
        );
    }
    if labels.contains(&code.len()) {
        let _ = writeln!(out, "{}:", label(code.len()));
    }
    out
}

fn reg_name(op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "halt",
        0x01 => "nop",
        0x02 => "ret",
        0x04 => "brk",
        0x07 => "syn",
        0x08 => "inc",
        0x09 => "dec",
        0x0A => "not",
        0x0B => "neg",
        0x0C => "push",
        0x0D => "pop",
        0x18 => "movi",
        0x19 => "addi",
        0x1A => "subi",
        0x1B => "andi",
        0x1C => "ori",
        0x1D => "xori",
        0x1E => "shli",
        0x1F => "shri",
        0x20 => "add",
        0x21 => "sub",
        0x22 => "mul",
        0x23 => "div",
        0x24 => "mod",
        0x25 => "and",
        0x26 => "or",
        0x27 => "xor",
        0x28 => "shl",
        0x29 => "shr",
        0x2A => "min",
        0x2B => "max",
        0x2C => "cmp_eq",
        0x2D => "cmp_lt",
        0x2E => "cmp_gt",
        0x2F => "cmp_ne",
        0x30 => "fadd",
        0x31 => "fsub",
        0x32 => "fmul",
        0x33 => "fdiv",
        0x34 => "fmin",
        0x35 => "fmax",
        0x36 => "ftoi",
        0x37 => "itof",
        0x38 => "load",
        0x39 => "store",
        0x3A => "mov",
        0x3B => "swp",
        0x3C => "jz",
        0x3D => "jnz",
        0x3E => "jlt",
        0x3F => "jgt",
        0x40 => "movi16",
        0x41 => "addi16",
        0x42 => "subi16",
        0x43 => "jmp",
        0x44 => "jal",
        0x45 => "call",
        0x46 => "loop",
        0x48 => "loadoff",
        0x49 => "storeoff",
        0x55 => "push",
        _ => return None,
    })
}

fn reg_text(b: &[u8]) -> String {
    let op = b[0];
    let Some(m) = reg_name(op) else {
        return format!("unimplemented 0x{op:02x}");
    };
    let r = |i: usize| format!("r{}", b[i]);
    let imm16 = || u16_at(b, 2);
    match op {
        0x00..=0x07 => m.to_owned(),
        0x08..=0x0D => format!("{m} {}", r(1)),
        0x18 => format!("{m} {}, {}", r(1), imm16() as i16),
        0x19 | 0x1A => format!("{m} {}, {}", r(1), b[2] as i8),
        0x1B..=0x1F => format!("{m} {}, {}", r(1), b[2]),
        0x36 | 0x37 | 0x3A | 0x3B => format!("{m} {}, {}", r(1), r(2)),
        0x3C..=0x3F => format!("{m} {}, {:+}", r(1), b[2] as i8),
        0x20..=0x39 => format!("{m} {}, {}, {}", r(1), r(2), r(3)),
        0x40..=0x42 => format!("{m} {}, {}", r(1), imm16()),
        0x43 | 0x45 => format!("{m} {:+}", imm16() as i16),
        0x44 | 0x46 => format!("{m} {}, {:+}", r(1), imm16() as i16),
        0x48 | 0x49 => format!(
            "{m} {}, {}, {}",
            r(1),
            r(2),
            i16::from_le_bytes([b[3], b[4]])
        ),
        0x55 => format!("push {}", u32_at(b, 1) as i32),
        _ => m.to_owned(),
    }
}

fn reg_listing(insns: &[Insn<'_>]) -> String {
    let mut out = String::from("; reg profile listing (not reassemblable)\n");
    for insn in insns {
        let b = insn.bytes;
        let text = if insn.decode.is_err() {
            bytes_directive(b)
        } else if b[0] == 0xFF {
            if (0xA0..=0xB2).contains(&b[1]) {
                format!(
                    "short.{:02x} {}",
                    b[1],
                    b[2..]
                        .iter()
                        .map(|x| format!("0x{x:02x}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                escape_text(b, &BTreeSet::new())
            }
        } else {
            reg_text(b)
        };
        let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
        let _ = writeln!(
            out,
            "    {text:<28} ; {:04x}: {}",
            insn.offset,
            hex.join(" ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    #[test]
    fn disassembly_reassembles_to_the_same_bytes() {
        let src = "start: push 10\nloop: dec\n dup\n jnz loop\n fuel.check\n fork start\n .byte 0x42\n jmp +1\n";
        let code = assemble(src).unwrap();
        let text = disassemble(&code, Profile::Stack);
        assert_eq!(assemble(&text).unwrap(), code, "{text}");
        assert!(text.contains("jnz L0005"), "{text}");
    }

    #[test]
    fn garbage_round_trips_as_bytes() {
        let code = [0x42, 0x55, 0x01, 0xFF, 0xFD, 0x00, 0x50, 0x00];
        let text = disassemble(&code, Profile::Stack);
        assert_eq!(assemble(&text).unwrap(), code, "{text}");
    }

    #[test]
    fn reg_listing_names_registers() {
        let text = disassemble(
            &[0x18, 0x01, 0x07, 0x00, 0x20, 0x00, 0x01, 0x02],
            Profile::Reg,
        );
        assert!(
            text.contains("movi r1, 7") && text.contains("add r0, r1, r2"),
            "{text}"
        );
    }
}
