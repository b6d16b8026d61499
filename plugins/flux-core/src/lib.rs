//! The FLUX bytecode virtual machine core, to `shared/spec/FLUX.md`.
//!
//! A plain library (not a plugin): the flux-vm plugin wraps it, and later evolve,
//! think and the Vulkan backend's CPU fallback reuse it. It never panics on any input:
//! every malformed program ends in a [`Trap`], and the step limit ends every loop.
//!
//! ```
//! use flux_core::{run, Config, Status};
//! let code = flux_core::hex::decode("550500000055070000001000").unwrap();
//! let result = run(&code, &Config::default());
//! assert_eq!(result.status, Status::Halted);
//! assert_eq!(result.stack, vec![12]);
//! ```

pub mod asm;
pub mod conformance;
pub mod decode;
pub mod disasm;
mod escape;
mod fast;
pub mod hex;
mod machine;
mod opcode;
mod profile;
mod reg;
mod stack;
mod trap;
pub mod validate;

pub use escape::{compressed_len, escape_len, payload_len};
pub use machine::{
    run, Config, Continuation, Flags, Machine, RunResult, Status, TraceStep, DEFAULT_MAX_STEPS,
    MEMORY_BYTES, REGISTERS, STACK_CAPACITY,
};
pub use opcode::Op;
pub use profile::{parse_image, with_header, ImageError, Profile, HEADER_LEN};
pub use reg::{reg_defined, reg_len};
pub use trap::Trap;
