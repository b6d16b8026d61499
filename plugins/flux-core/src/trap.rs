//! Trap codes (FLUX.md §10).

use serde::{Deserialize, Serialize};

/// Why a run stopped abnormally. The numeric codes are the spec's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Trap {
    StackUnderflow = 0x01,
    StackOverflow = 0x02,
    CallStackUnderflow = 0x03,
    CallStackOverflow = 0x04,
    DivZero = 0x05,
    InvalidOpcode = 0x06,
    TruncatedInstruction = 0x07,
    BadJump = 0x08,
    MemOutOfRange = 0x09,
    IllegalRegister = 0x0A,
    Unimplemented = 0x0B,
    StepLimit = 0x0C,
    CapDenied = 0xE0,
    SandboxViolation = 0xE1,
    FuelExhausted = 0xE2,
    TagMismatch = 0xE3,
    ExtUnknown = 0xE4,
    DeadlineExceeded = 0xE6,
    JoinFailed = 0xE7,
}

impl Trap {
    /// Every trap, in code order.
    pub const ALL: [Trap; 19] = [
        Trap::StackUnderflow,
        Trap::StackOverflow,
        Trap::CallStackUnderflow,
        Trap::CallStackOverflow,
        Trap::DivZero,
        Trap::InvalidOpcode,
        Trap::TruncatedInstruction,
        Trap::BadJump,
        Trap::MemOutOfRange,
        Trap::IllegalRegister,
        Trap::Unimplemented,
        Trap::StepLimit,
        Trap::CapDenied,
        Trap::SandboxViolation,
        Trap::FuelExhausted,
        Trap::TagMismatch,
        Trap::ExtUnknown,
        Trap::DeadlineExceeded,
        Trap::JoinFailed,
    ];

    /// The trap with the spec's numeric code (other backends report codes).
    pub fn from_code(code: u8) -> Option<Trap> {
        Trap::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The spec's name, e.g. `STACK_UNDERFLOW`.
    pub fn name(self) -> &'static str {
        match self {
            Trap::StackUnderflow => "STACK_UNDERFLOW",
            Trap::StackOverflow => "STACK_OVERFLOW",
            Trap::CallStackUnderflow => "CALL_STACK_UNDERFLOW",
            Trap::CallStackOverflow => "CALL_STACK_OVERFLOW",
            Trap::DivZero => "DIV_ZERO",
            Trap::InvalidOpcode => "INVALID_OPCODE",
            Trap::TruncatedInstruction => "TRUNCATED_INSTRUCTION",
            Trap::BadJump => "BAD_JUMP",
            Trap::MemOutOfRange => "MEM_OUT_OF_RANGE",
            Trap::IllegalRegister => "ILLEGAL_REGISTER",
            Trap::Unimplemented => "UNIMPLEMENTED",
            Trap::StepLimit => "STEP_LIMIT",
            Trap::CapDenied => "CAP_DENIED",
            Trap::SandboxViolation => "SANDBOX_VIOLATION",
            Trap::FuelExhausted => "FUEL_EXHAUSTED",
            Trap::TagMismatch => "TAG_MISMATCH",
            Trap::ExtUnknown => "EXT_UNKNOWN",
            Trap::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Trap::JoinFailed => "JOIN_FAILED",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

impl std::fmt::Display for Trap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
