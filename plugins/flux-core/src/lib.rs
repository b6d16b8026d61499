//! The FLUX bytecode virtual machine core, to `shared/spec/FLUX.md`.
//!
//! A plain library (not a plugin): the flux-vm plugin wraps it, and later evolve,
//! think and the Vulkan backend's CPU fallback reuse it. It never panics on any input:
//! every malformed program ends in a [`Trap`].
//!
//! ```
//! use flux_core::{run, Config, Status};
//! let code = flux_core::hex::decode("550500000055070000001000").unwrap();
//! let result = run(&code, &Config::default());
//! assert_eq!(result.status, Status::Halted);
//! assert_eq!(result.stack, vec![12]);
//! ```

pub mod hex;
mod machine;
mod opcode;
mod trap;

pub use machine::{run, Config, Flags, Machine, RunResult, Status};
pub use opcode::Op;
pub use trap::Trap;
