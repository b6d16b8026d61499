//! Machine behaviour that vectors do not show: results beyond the stack, limits,
//! traces, images.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use flux_core::{asm::assemble, hex, run, Config, Profile, Status, Trap};

fn run_hex(text: &str) -> flux_core::RunResult {
    run(&hex::decode(text).unwrap(), &Config::default())
}

#[test]
fn a_trap_hides_the_stack_but_keeps_flags_steps_and_where() {
    let r = run_hex("5501000000 5501000000 11 5500000000 13");
    assert_eq!((r.status, r.error), (Status::Trap, Some(Trap::DivZero)));
    assert!(r.stack.is_empty());
    assert_eq!(r.flags.0, 1, "flags as they were: Z from the SUB");
    assert_eq!((r.steps, r.trap_pc), (5, Some(16)));
}

#[test]
fn the_step_limit_ends_every_loop() {
    let config = Config {
        max_steps: 1000,
        ..Config::default()
    };
    let r = run(&hex::decode("50fdff").unwrap(), &config);
    assert_eq!((r.error, r.steps), (Some(Trap::StepLimit), 1000));
}

#[test]
fn fuel_allows_n_minus_one_instructions() {
    let config = Config {
        fuel: Some(3),
        ..Config::default()
    };
    let r = run(&assemble("nop\nnop\nnop\nnop").unwrap(), &config);
    assert_eq!((r.error, r.steps), (Some(Trap::FuelExhausted), 3));
}

#[test]
fn the_trap_wins_over_halt_when_fuel_runs_out() {
    let config = Config {
        fuel: Some(1),
        ..Config::default()
    };
    assert_eq!(run(&[0x00], &config).error, Some(Trap::FuelExhausted));
}

#[test]
fn join_nesting_is_bounded() {
    // Each child forks and joins a copy of itself: the 65th level fails.
    let code = assemble("start: fork start\n join\n halt").unwrap();
    let r = run(&code, &Config::default());
    assert_eq!(r.error, Some(Trap::JoinFailed));
}

#[test]
fn registers_are_reported_in_the_reg_profile_only() {
    let r = run(&[0x18, 0x03, 0x09, 0x00, 0x00], &Config::reg());
    assert_eq!(r.registers.unwrap()[3], 9);
    assert!(run(&[0x00], &Config::default()).registers.is_none());
}

#[test]
fn trace_records_each_step_up_to_its_limit() {
    let config = Config {
        trace_limit: 2,
        ..Config::default()
    };
    let r = run(&assemble("push 1\npush 2\nadd\nhalt").unwrap(), &config);
    assert_eq!(r.trace.len(), 2);
    assert_eq!(
        (r.trace[1].pc, r.trace[1].depth, r.trace[1].top),
        (5, 1, Some(1))
    );
}

#[test]
fn suspend_leaves_a_continuation_for_the_host() {
    let r = run(
        &assemble("push 3\nsuspend 2\npush 4").unwrap(),
        &Config::default(),
    );
    assert_eq!(
        (r.status, r.continuations, r.stack.clone()),
        (Status::Suspended, 1, vec![3])
    );
}

#[test]
fn an_overfull_initial_stack_overflows() {
    let config = Config {
        initial_stack: vec![0; 4097],
        ..Config::default()
    };
    assert_eq!(run(&[0x00], &config).error, Some(Trap::StackOverflow));
}

#[test]
fn images_carry_their_profile() {
    let image = flux_core::with_header(Profile::Reg, &[0x00]);
    let (profile, code) = flux_core::parse_image(&image, None).unwrap();
    assert_eq!((profile, code.len()), (Profile::Reg, 1));
}

/// §14 rule 3 lets a trap satisfy an empty expected stack in v2.1 files; the project's
/// `expect_no_trap` closes that hole, and failures name the stack as JSON.
#[test]
fn an_empty_expected_stack_can_pin_no_trap() {
    use flux_core::conformance::Vector;
    let underflow = |no_trap: bool| -> Vector {
        serde_json::from_value(serde_json::json!({
            "name": "add_on_empty",
            "bytecode_hex": "10 00",
            "expected_stack": [],
            "expect_no_trap": no_trap,
        }))
        .unwrap()
    };
    assert!(
        underflow(false).check(Profile::Stack, 100).pass,
        "the v2.1 rule"
    );
    let pinned = underflow(true).check(Profile::Stack, 100);
    assert!(!pinned.pass);
    assert_eq!(pinned.reason, "unexpected trap STACK_UNDERFLOW");
    let wrong: Vector = serde_json::from_value(serde_json::json!({
        "name": "five", "bytecode_hex": "5505000000 00", "expected_stack": [6, 7],
    }))
    .unwrap();
    assert_eq!(
        wrong.check(Profile::Stack, 100).reason,
        "expected stack [6,7], got [5]"
    );
}
