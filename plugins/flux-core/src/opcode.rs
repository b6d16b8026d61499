//! Stack-profile opcodes (FLUX.md §5) and their encoded lengths.

/// A primary opcode of the stack profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    Halt = 0x00,
    Nop = 0x01,
    Break = 0x02,
    Add = 0x10,
    Sub = 0x11,
    Mul = 0x12,
    Div = 0x13,
    Mod = 0x14,
    Neg = 0x15,
    Inc = 0x16,
    Dec = 0x17,
    Eq = 0x20,
    Ne = 0x21,
    Lt = 0x22,
    Le = 0x23,
    Gt = 0x24,
    Ge = 0x25,
    And = 0x30,
    Or = 0x31,
    Xor = 0x32,
    Not = 0x33,
    Shl = 0x34,
    Shr = 0x35,
    Load = 0x40,
    Store = 0x41,
    Peek = 0x43,
    Poke = 0x44,
    Jmp = 0x50,
    Jz = 0x51,
    Jnz = 0x52,
    Call = 0x53,
    Ret = 0x54,
    Push = 0x55,
    Pop = 0x56,
    Dup = 0x60,
    Swap = 0x61,
    Over = 0x62,
    Rot = 0x63,
    Fadd = 0x70,
    Fsub = 0x71,
    Fmul = 0x72,
    Fdiv = 0x73,
    ConfGet = 0x80,
    ConfSet = 0x81,
    ConfMul = 0x82,
    Signal = 0x90,
    Broadcast = 0x91,
    Listen = 0x92,
    Escape = 0xFF,
}

impl Op {
    /// Every opcode, for tables, tests and the disassembler.
    pub const ALL: [Op; 49] = [
        Op::Halt,
        Op::Nop,
        Op::Break,
        Op::Add,
        Op::Sub,
        Op::Mul,
        Op::Div,
        Op::Mod,
        Op::Neg,
        Op::Inc,
        Op::Dec,
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::And,
        Op::Or,
        Op::Xor,
        Op::Not,
        Op::Shl,
        Op::Shr,
        Op::Load,
        Op::Store,
        Op::Peek,
        Op::Poke,
        Op::Jmp,
        Op::Jz,
        Op::Jnz,
        Op::Call,
        Op::Ret,
        Op::Push,
        Op::Pop,
        Op::Dup,
        Op::Swap,
        Op::Over,
        Op::Rot,
        Op::Fadd,
        Op::Fsub,
        Op::Fmul,
        Op::Fdiv,
        Op::ConfGet,
        Op::ConfSet,
        Op::ConfMul,
        Op::Signal,
        Op::Broadcast,
        Op::Listen,
        Op::Escape,
    ];

    pub fn from_byte(byte: u8) -> Option<Op> {
        DECODE[byte as usize]
    }

    /// Encoded length in bytes, operands included (escapes: the minimum, 3).
    pub fn encoded_len(self) -> usize {
        match self {
            Op::Signal | Op::Broadcast | Op::Listen => 2,
            Op::Load | Op::Store | Op::Jmp | Op::Jz | Op::Jnz | Op::Call => 3,
            Op::Escape => 3,
            Op::Push => 5,
            _ => 1,
        }
    }

    /// The assembler mnemonic.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Op::Halt => "halt",
            Op::Nop => "nop",
            Op::Break => "break",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Mod => "mod",
            Op::Neg => "neg",
            Op::Inc => "inc",
            Op::Dec => "dec",
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::And => "and",
            Op::Or => "or",
            Op::Xor => "xor",
            Op::Not => "not",
            Op::Shl => "shl",
            Op::Shr => "shr",
            Op::Load => "load",
            Op::Store => "store",
            Op::Peek => "peek",
            Op::Poke => "poke",
            Op::Jmp => "jmp",
            Op::Jz => "jz",
            Op::Jnz => "jnz",
            Op::Call => "call",
            Op::Ret => "ret",
            Op::Push => "push",
            Op::Pop => "pop",
            Op::Dup => "dup",
            Op::Swap => "swap",
            Op::Over => "over",
            Op::Rot => "rot",
            Op::Fadd => "fadd",
            Op::Fsub => "fsub",
            Op::Fmul => "fmul",
            Op::Fdiv => "fdiv",
            Op::ConfGet => "conf_get",
            Op::ConfSet => "conf_set",
            Op::ConfMul => "conf_mul",
            Op::Signal => "signal",
            Op::Broadcast => "broadcast",
            Op::Listen => "listen",
            Op::Escape => "escape",
        }
    }
}

const DECODE: [Option<Op>; 256] = {
    let mut table = [None; 256];
    let mut i = 0;
    while i < Op::ALL.len() {
        table[Op::ALL[i] as usize] = Some(Op::ALL[i]);
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table_is_the_inverse_of_the_enum() {
        for op in Op::ALL {
            assert_eq!(Op::from_byte(op as u8), Some(op));
        }
        let assigned = (0..=255u8).filter(|b| Op::from_byte(*b).is_some()).count();
        assert_eq!(assigned, Op::ALL.len());
        assert_eq!(Op::from_byte(0x42), None);
    }
}
