//! `cargo bench -p flux-core`: interpreter speed on a countdown loop and on Fibonacci,
//! and the time for the project's whole conformance run. Prints instructions per
//! second; the baseline is the same loop run by a deliberately naive interpreter in this
//! file (one match per byte, no fast paths), measured in the same run.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flux_core::{asm::assemble, run, Config};

fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..n {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        out = Some(r);
    }
    (best, out.unwrap())
}

/// A straightforward interpreter of just the countdown's three opcodes (PUSH, DEC, DUP,
/// JNZ, HALT), written the way a first version would be: Vec stack, Option checks,
/// bounds-checked slices. The ratio shows what the real machine's design buys.
fn naive(code: &[u8]) -> Vec<i32> {
    let mut stack: Vec<i32> = Vec::new();
    let mut pc = 0usize;
    let mut zero = false;
    loop {
        match code[pc] {
            0x55 => {
                stack.push(i32::from_le_bytes(code[pc + 1..pc + 5].try_into().unwrap()));
                pc += 5;
            }
            0x17 => {
                let v = stack.pop().unwrap().wrapping_sub(1);
                zero = v == 0;
                stack.push(v);
                pc += 1;
            }
            0x60 => {
                let v = *stack.last().unwrap();
                stack.push(v);
                pc += 1;
            }
            0x52 => {
                stack.pop();
                let disp = i16::from_le_bytes([code[pc + 1], code[pc + 2]]) as isize;
                pc = if zero {
                    pc + 3
                } else {
                    (pc as isize + 3 + disp) as usize
                };
            }
            _ => return stack,
        }
    }
}

fn main() {
    let rounds = 30_000_000u64;
    let countdown = assemble(&format!("push {rounds}\ntick: dec\n dup\n jnz tick\n halt")).unwrap();
    let config = Config {
        max_steps: u64::MAX,
        ..Config::default()
    };
    let (t, r) = best_of(5, || run(&countdown, &config));
    assert_eq!(r.stack, vec![0]);
    let ips = r.steps as f64 / t.as_secs_f64();
    let (tn, stack) = best_of(5, || naive(&countdown));
    assert_eq!(stack, vec![0]);
    let naive_ips = r.steps as f64 / tn.as_secs_f64();
    println!("countdown   {:>12} instructions in {:>8.1} ms  {:>7.1} M instr/s   (naive baseline {:.1} M instr/s, ratio {:.2}x)",
        r.steps, t.as_secs_f64() * 1e3, ips / 1e6, naive_ips / 1e6, ips / naive_ips);

    // Fibonacci by the stack loop (wrapping), many rounds.
    let fib = assemble("push 10000000\n store 0\n push 0\n push 1\nround: swap\n over\n add\n load 0\n dec\n dup\n store 0\n jnz round\n pop\n halt").unwrap();
    let (t, r) = best_of(5, || run(&fib, &config));
    println!(
        "fibonacci   {:>12} instructions in {:>8.1} ms  {:>7.1} M instr/s",
        r.steps,
        t.as_secs_f64() * 1e3,
        r.steps as f64 / t.as_secs_f64() / 1e6
    );

    // The project's own conformance vectors, run and judged.
    let files = [
        include_str!("../../../vectors/stack.json"),
        include_str!("../../../vectors/reg.json"),
        include_str!("../../../vectors/examples.json"),
    ];
    let suites: Vec<_> = files
        .iter()
        .map(|t| flux_core::conformance::VectorFile::parse(t).unwrap())
        .collect();
    let (t, passed) = best_of(20, || {
        suites
            .iter()
            .map(|s| {
                flux_core::conformance::run_file(s, flux_core::DEFAULT_MAX_STEPS)
                    .unwrap()
                    .iter()
                    .filter(|v| v.pass)
                    .count()
            })
            .sum::<usize>()
    });
    println!(
        "conformance {:>12} vectors      in {:>8.2} ms",
        passed,
        t.as_secs_f64() * 1e3
    );
}
