//! Static decoding of a whole program into instructions (for the disassembler and the
//! validator). Execution does its own decoding on the fly.

use crate::escape::escape_len;
use crate::opcode::Op;
use crate::profile::Profile;
use crate::reg::reg_len;
use crate::trap::Trap;

/// One decoded instruction, or why the bytes at `offset` are not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insn<'c> {
    pub offset: usize,
    /// The instruction's bytes (for a bad decode: the bytes it gave up on).
    pub bytes: &'c [u8],
    pub decode: Result<(), Trap>,
}

impl Insn<'_> {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn next(&self) -> usize {
        self.offset + self.bytes.len()
    }
}

/// Decode the instruction at `offset` (which must be < code.len()).
pub fn decode_at(code: &[u8], offset: usize, profile: Profile) -> Insn<'_> {
    let rest = &code[offset..];
    let op = rest[0];
    let len = if op == 0xFF {
        match escape_len(rest, profile) {
            Ok(len) => len,
            Err(trap) => {
                // Consume what is there of the escape header so a sweep can continue.
                let take = rest.len().min(if trap == Trap::TruncatedInstruction {
                    rest.len()
                } else {
                    2
                });
                return Insn {
                    offset,
                    bytes: &rest[..take.max(1)],
                    decode: Err(trap),
                };
            }
        }
    } else {
        match profile {
            Profile::Stack => match Op::from_byte(op) {
                Some(o) => o.encoded_len(),
                None => {
                    return Insn {
                        offset,
                        bytes: &rest[..1],
                        decode: Err(Trap::InvalidOpcode),
                    }
                }
            },
            Profile::Reg => reg_len(op),
        }
    };
    if rest.len() < len {
        return Insn {
            offset,
            bytes: rest,
            decode: Err(Trap::TruncatedInstruction),
        };
    }
    Insn {
        offset,
        bytes: &rest[..len],
        decode: Ok(()),
    }
}

/// Linear sweep from 0 to the end.
pub fn sweep(code: &[u8], profile: Profile) -> Vec<Insn<'_>> {
    let mut out = Vec::new();
    let mut pc = 0;
    while pc < code.len() {
        let insn = decode_at(code, pc, profile);
        pc = insn.next();
        out.push(insn);
    }
    out
}

/// The relative branch target of a stack-profile instruction, if it has one:
/// `(target, kind)` where target may lie outside the program.
pub fn stack_branch(insn: &Insn<'_>) -> Option<(i64, Op)> {
    let op = Op::from_byte(*insn.bytes.first()?)?;
    matches!(op, Op::Jmp | Op::Jz | Op::Jnz | Op::Call).then(|| {
        let disp = i16::from_le_bytes([insn.bytes[1], insn.bytes[2]]) as i64;
        (insn.next() as i64 + disp, op)
    })
}
