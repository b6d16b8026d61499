//! Property tests (the fuzz targets): no input makes the decoder/VM, the assembler, the
//! disassembler or the validator panic, and results keep their invariants. Scale with
//! PROPTEST_CASES (CI runs the default; `scripts/fuzz` runs millions).
//!
//! Programs come from `flux_gen`'s grammar (loops, calls, fork/join, memory, escapes),
//! and `generators_reach_deep_states` fails when that grammar stops reaching them.
//! Failing cases are kept in `proptest-regressions/` and replayed first.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use flux_core::{asm, disasm, run, validate, Config, Op, Profile, RunResult, Status};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// Mostly well-formed stack-profile instructions in any order: the old generator, kept
/// for the byte-level properties and as the "before" of the reach report.
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

fn byte_program() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(instruction(), 0..24).prop_map(|parts| parts.concat())
}

/// Grammar programs, with some byte-level ones mixed in.
fn program() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![4 => flux_gen::stack_program(), 1 => byte_program()]
}

fn facts(r: &RunResult) -> flux_gen::RunFacts {
    flux_gen::RunFacts {
        steps: r.steps,
        trap: r.error.map(|t| format!("{t:?}")),
        trace: r.trace.iter().map(|t| (t.pc, t.opcode)).collect(),
    }
}

/// What `n` programs of `strategy` reach with a 2-word initial stack (fixed seed, so
/// the shares are the same on every run).
fn reach(strategy: impl Strategy<Value = Vec<u8>>, n: usize) -> flux_gen::Reach {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut reach = flux_gen::Reach::default();
    for _ in 0..n {
        let code = strategy.new_tree(&mut runner).unwrap().current();
        let r = run(
            &code,
            &Config {
                initial_stack: vec![3, 7],
                trace_limit: usize::MAX,
                ..config(Profile::Stack)
            },
        );
        reach.add(&code, &facts(&r));
    }
    reach
}

#[test]
fn generators_reach_deep_states() {
    let before = reach(byte_program(), 3000);
    let after = reach(flux_gen::stack_program(), 3000);
    println!("before (random instructions): {}", before.summary());
    println!("after (grammar):              {}", after.summary());
    let at_least = |what: &str, n: u64, pct: f64| {
        assert!(
            after.pct(n) >= pct,
            "only {:.1}% of runs {what} (want ≥ {pct}%): {}",
            after.pct(n),
            after.summary()
        );
    };
    at_least("ran over 20 steps", after.over_20_steps, 30.0);
    at_least("took a branch", after.branch_taken, 40.0);
    at_least(
        "took a backward branch (a loop)",
        after.backward_branch,
        20.0,
    );
    at_least("executed CALL", after.called, 15.0);
    at_least("returned from a CALL", after.returned, 10.0);
    at_least("joined a forked child", after.forked, 5.0);
    at_least("executed an escape", after.escapes, 15.0);
    assert!(
        after.pct(after.first_instruction_only) <= 10.0,
        "{}",
        after.summary()
    );
    // Every trap the stack profile can raise from a program alone.
    for trap in [
        "StackUnderflow",
        "StackOverflow",
        "CallStackUnderflow",
        "CallStackOverflow",
        "DivZero",
        "InvalidOpcode",
        "TruncatedInstruction",
        "BadJump",
        "MemOutOfRange",
        "StepLimit",
        "CapDenied",
        "FuelExhausted",
        "ExtUnknown",
        "JoinFailed",
    ] {
        assert!(
            after.traps.contains_key(trap),
            "no run trapped {trap}: {}",
            after.summary()
        );
    }
}

/// Programs dense in the fast path's superinstructions (DEC DUP JNZ; SWAP OVER ADD;
/// LOAD DEC DUP STORE JNZ), with their parts alone, jumps anywhere near (into the
/// middle of a fused group too) and addresses at the edge of memory.
fn fusion_program() -> impl Strategy<Value = Vec<u8>> {
    let disp = || (-24i16..24).prop_map(|d| d.to_le_bytes().to_vec());
    let addr = || {
        prop_oneof![
            Just(0u16),
            Just(4),
            Just(65532),
            Just(65533),
            Just(65535),
            any::<u16>()
        ]
        .prop_map(|a| a.to_le_bytes().to_vec())
    };
    let piece = prop_oneof![
        3 => disp().prop_map(|d| [vec![0x17, 0x60, 0x52], d].concat()),
        3 => Just(vec![0x61, 0x62, 0x10]),
        3 => (addr(), addr(), disp()).prop_map(|(a, b, d)| {
            [vec![0x40], a, vec![0x17, 0x60, 0x41], b, vec![0x52], d].concat()
        }),
        1 => (0u32..5).prop_map(|v| [vec![0x55], v.to_le_bytes().to_vec()].concat()),
        1 => prop::sample::select(vec![0x17u8, 0x60, 0x61, 0x62, 0x10, 0x56]).prop_map(|b| vec![b]),
        1 => disp().prop_map(|d| [vec![0x52], d].concat()),
        1 => addr().prop_map(|a| [vec![0x40], a].concat()),
        1 => addr().prop_map(|a| [vec![0x41], a].concat()),
    ];
    proptest::collection::vec(piece, 1..12).prop_map(|parts| parts.concat())
}

fn config(profile: Profile) -> Config {
    Config {
        profile,
        max_steps: 20_000,
        ..Config::default()
    }
}

proptest! {
    // Failures are persisted (proptest-regressions/robustness.txt) and replayed first.
    #![proptest_config(ProptestConfig::default())]

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
    fn superinstructions_equal_their_parts(
        code in fusion_program(),
        initial in proptest::collection::vec(0u32..6, 0..4),
        max_steps in prop_oneof![1u64..40, Just(20_000)],
    ) {
        // Step limits that fall inside a fused group must stop it where the parts stop.
        let limited = Config { initial_stack: initial, max_steps, ..Config::default() };
        let fast = run(&code, &limited);
        let general = run(&code, &Config { trace_limit: usize::MAX, ..limited.clone() });
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
    fn disassembly_always_reassembles_to_the_same_bytes(code in byte_program()) {
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
    fn the_validator_foresees_every_stack_underflow(code in program(), depth in 0usize..3) {
        // Every program is judged: an underflow the VM hits must be one the validator
        // reported at that pc, or at a pc whose depth it says it could not track
        // (after CALL, RESUME or an escape it cannot follow).
        let report = validate::validate(&code, Profile::Stack, depth);
        let r = run(&code, &Config { initial_stack: vec![1; depth], ..config(Profile::Stack) });
        if r.error == Some(flux_core::Trap::StackUnderflow) {
            let pc = r.trap_pc.unwrap();
            prop_assert!(
                report.findings.iter().any(|f| f.offset == pc && (f.check == "stack-underflow" || f.check == "depth-unknown")),
                "underflow at {pc} not foreseen in {}: {:?}", flux_core::hex::encode(&code), report.findings
            );
        }
    }
}

/// Every instruction the fast path runs, at the edges of the stack: empty, one word,
/// two, one short of full and full. A random program rarely fills 4,096 words, so the
/// edges are spelled out here; the fast path must hand each over (and trap) exactly as
/// the general path does.
#[test]
fn the_fast_path_agrees_at_the_edges_of_the_stack() {
    let programs: [&[u8]; 20] = [
        &[0x10],                                                 // ADD
        &[0x11],                                                 // SUB
        &[0x16],                                                 // INC
        &[0x17],                                                 // DEC
        &[0x20],                                                 // EQ
        &[0x22],                                                 // LT
        &[0x24],                                                 // GT
        &[0x40, 0x00, 0x00],                                     // LOAD 0
        &[0x40, 0xff, 0xff],                                     // LOAD 65535 (wraps)
        &[0x41, 0x00, 0x00],                                     // STORE 0
        &[0x51, 0x00, 0x00],                                     // JZ +0
        &[0x52, 0x00, 0x00],                                     // JNZ +0
        &[0x55, 1, 0, 0, 0],                                     // PUSH 1
        &[0x56],                                                 // POP
        &[0x60],                                                 // DUP
        &[0x61],                                                 // SWAP
        &[0x62],                                                 // OVER
        &[0x17, 0x60, 0x52, 0xfb, 0xff],                         // DEC DUP JNZ -5
        &[0x61, 0x62, 0x10],                                     // SWAP OVER ADD
        &[0x40, 4, 0, 0x17, 0x60, 0x41, 4, 0, 0x52, 0xf5, 0xff], // LOAD DEC DUP STORE JNZ
    ];
    for code in programs {
        for depth in [0, 1, 2, 4095, 4096] {
            let limited = Config {
                initial_stack: vec![3; depth],
                max_steps: 64,
                ..Config::default()
            };
            let fast = run(code, &limited);
            let general = run(
                code,
                &Config {
                    trace_limit: usize::MAX,
                    ..limited.clone()
                },
            );
            let key = |r: &RunResult| {
                (
                    r.stack.clone(),
                    r.flags,
                    r.status,
                    r.error,
                    r.steps,
                    r.trap_pc,
                )
            };
            assert_eq!(
                key(&fast),
                key(&general),
                "{} from depth {depth}",
                flux_core::hex::encode(code)
            );
        }
    }
}
