//! Property tests (the fuzz targets): no input makes the decoder/VM, the assembler, the
//! disassembler or the validator panic, and results keep their invariants. Scale with
//! PROPTEST_CASES (CI runs the default; `scripts/fuzz` runs millions).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use flux_core::{asm, disasm, run, validate, Config, Op, Profile, Status};
use proptest::prelude::*;

/// Mostly well-formed stack-profile instructions, so runs get past the first byte.
fn instruction() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (0usize..Op::ALL.len(), any::<[u8; 4]>()).prop_map(|(i, operand)| {
            let op = Op::ALL[i];
            let mut bytes = vec![op as u8];
            bytes.extend_from_slice(&operand[..op.encoded_len() - 1]);
            if op == Op::Escape {
                // A known selector most of the time.
                bytes[1] %= 4;
                bytes[2] %= 6;
            }
            bytes
        }),
        1 => proptest::collection::vec(any::<u8>(), 1..4),
    ]
}

fn program() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(instruction(), 0..24).prop_map(|parts| parts.concat())
}

fn config(profile: Profile) -> Config {
    Config {
        profile,
        max_steps: 20_000,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_vm_never_panics_and_keeps_its_invariants(code in program(), reg in any::<bool>()) {
        let profile = if reg { Profile::Reg } else { Profile::Stack };
        let r = run(&code, &config(profile));
        prop_assert!(r.steps <= 20_000);
        if r.status == Status::Trap {
            prop_assert!(r.stack.is_empty() && r.error.is_some());
        } else {
            prop_assert!(r.error.is_none() && r.stack.len() <= 4096);
        }
        prop_assert!(r.confidence <= 1000);
    }

    #[test]
    fn the_fast_path_and_the_general_path_agree(code in program(), initial in proptest::collection::vec(any::<u32>(), 0..4)) {
        // Tracing every step keeps the machine on the general path throughout.
        let fast = run(&code, &Config { initial_stack: initial.clone(), ..config(Profile::Stack) });
        let general = run(&code, &Config { initial_stack: initial, trace_limit: usize::MAX, ..config(Profile::Stack) });
        prop_assert_eq!((&fast.stack, fast.flags, fast.status, fast.error, fast.steps, fast.trap_pc),
                        (&general.stack, general.flags, general.status, general.error, general.steps, general.trap_pc));
    }

    #[test]
    fn random_bytes_never_panic(code in proptest::collection::vec(any::<u8>(), 0..96), reg in any::<bool>()) {
        let profile = if reg { Profile::Reg } else { Profile::Stack };
        let _ = run(&code, &config(profile));
        let _ = validate::validate(&code, profile, 0);
        let _ = disasm::disassemble(&code, profile);
    }

    #[test]
    fn disassembly_always_reassembles_to_the_same_bytes(code in program()) {
        let text = disasm::disassemble(&code, Profile::Stack);
        prop_assert_eq!(asm::assemble(&text).unwrap(), code);
    }

    #[test]
    fn the_assembler_never_panics(source in "[ -~\n]{0,200}") {
        let _ = asm::assemble(&source);
    }

    #[test]
    fn the_assembler_never_panics_on_near_misses(lines in proptest::collection::vec(
        ("(push|jmp|load|signal|fuel.set|deadline|\\.byte|frob|L1:|'x'|nop)", "( -?[0-9]{1,11}| 0x[0-9a-fA-F]{1,9}| L1| '.'| '\\\\.'| 1.5f|, ?|)*"), 0..12)) {
        let source: String = lines.iter().map(|(m, ops)| format!("{m}{ops}\n")).collect();
        let _ = asm::assemble(&format!("L1:\n{source}"));
    }

    #[test]
    fn a_program_the_validator_clears_never_underflows(code in program()) {
        // The depth analysis loses track after CALL and RESUME (and escapes may hide
        // either), so the promise holds for programs without those bytes.
        if code.iter().any(|b| *b == 0x53 || *b == 0xFF) {
            return Ok(());
        }
        let report = validate::validate(&code, Profile::Stack, 0);
        let r = run(&code, &config(Profile::Stack));
        if report.ok() && report.findings.iter().all(|f| f.check != "stack-underflow") {
            prop_assert_ne!(r.error, Some(flux_core::Trap::StackUnderflow));
        }
    }
}
