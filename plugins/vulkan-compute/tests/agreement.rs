//! The GPU interpreter against flux-core, on whatever Vulkan device is here (lavapipe in
//! CI). No device is a failure that names the package, never a skip.
#![allow(clippy::unwrap_used)]

use datum_plugin_vulkan_compute::batch::{run_cpu, run_gpu, vector_jobs, Job, Ran, OUT_STACK};
use datum_plugin_vulkan_compute::gpu::Gpu;
use datum_plugin_vulkan_compute::sample;
use flux_core::conformance::{VectorFile, PROJECT_VECTORS};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

fn gpu() -> Gpu {
    Gpu::open(None).unwrap_or_else(|e| panic!("{e}: {}", e.hint()))
}

/// Every stack-profile vector of the project, run as one batch — plus the suites named
/// in `DATUM_AGREEMENT_VECTORS` (colon-separated files; `.ci/run` passes the upstream
/// suites, which the project may not copy).
#[test]
fn project_vectors_agree_with_flux_core() {
    let gpu = gpu();
    let mut files: Vec<VectorFile> = PROJECT_VECTORS
        .iter()
        .map(|(_, text)| VectorFile::parse(text).unwrap())
        .collect();
    for path in std::env::var("DATUM_AGREEMENT_VECTORS")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
    {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        files.push(VectorFile::parse(&text).unwrap());
    }
    let (programs, jobs) = vector_jobs(&files);
    let (batch, stats) = run_gpu(&gpu, &programs, &jobs, 1_000_000, OUT_STACK).unwrap();
    let gpu_results = batch.to_pairs();
    let cpu_results = run_cpu(&programs, &jobs, 1_000_000);
    for (i, ((g, ran), c)) in gpu_results.iter().zip(&cpu_results).enumerate() {
        assert_eq!(g, c, "job {i} ({ran:?}) differs from flux-core");
    }
    assert!(
        stats.on_gpu * 2 > stats.jobs,
        "most vectors should run on the GPU: {stats:?}"
    );
    println!(
        "{} vectors: {} on {}, {} handed to the CPU",
        stats.jobs, stats.on_gpu, gpu.device_info.name, stats.on_cpu
    );
}

/// Short programs built from real opcodes with random operands: the kind evolve makes.
fn program() -> impl Strategy<Value = Vec<u8>> {
    let one_byte = prop::sample::select(vec![
        0x00u8, 0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x20, 0x21, 0x22, 0x23,
        0x24, 0x25, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x43, 0x44, 0x54, 0x56, 0x60, 0x61, 0x62,
        0x63, 0x70, 0x71, 0x72, 0x73, 0x80, 0x81, 0x82, 0x07, 0xFE,
    ])
    .prop_map(|op| vec![op]);
    let imm = prop_oneof![
        any::<i32>(),
        -4i32..64,
        prop::sample::select(vec![
            0,
            1,
            -1,
            i32::MIN,
            i32::MAX,
            1000,
            0x3F800000,
            0x7F800000,
            0x00000001,
            0x80000000u32 as i32
        ]),
    ]
    .prop_map(|v| {
        let mut b = vec![0x55u8];
        b.extend_from_slice(&v.to_le_bytes());
        b
    });
    let jump = (
        prop::sample::select(vec![0x50u8, 0x51, 0x52, 0x53]),
        -12i16..12,
    )
        .prop_map(|(op, d)| {
            let mut b = vec![op];
            b.extend_from_slice(&d.to_le_bytes());
            b
        });
    let mem = (
        prop::sample::select(vec![0x40u8, 0x41]),
        prop_oneof![0u16..260, any::<u16>()],
    )
        .prop_map(|(op, a)| {
            let mut b = vec![op];
            b.extend_from_slice(&a.to_le_bytes());
            b
        });
    let chan =
        (prop::sample::select(vec![0x90u8, 0x91, 0x92]), 0u8..4).prop_map(|(op, c)| vec![op, c]);
    let instr = prop_oneof![4 => imm, 6 => one_byte, 2 => jump, 1 => mem, 1 => chan];
    (
        prop::collection::vec(instr, 0..24),
        prop::option::of(0usize..3),
    )
        .prop_map(|(is, cut)| {
            let mut code: Vec<u8> = is.concat();
            // Sometimes cut the last instruction short (TRUNCATED_INSTRUCTION).
            if let Some(n) = cut {
                code.truncate(code.len().saturating_sub(n));
            }
            code
        })
}

/// `n` generated programs, each with its own short initial stack.
fn generated(n: usize) -> (Vec<Vec<u8>>, Vec<Job>) {
    let mut runner = TestRunner::new(Config::default());
    let strategy = (program(), prop::collection::vec(any::<u32>(), 0..4));
    let mut programs = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..n {
        let (code, stack) = strategy.new_tree(&mut runner).unwrap().current();
        jobs.push(Job {
            program: programs.len(),
            stack,
        });
        programs.push(code);
    }
    (programs, jobs)
}

#[test]
fn thousands_of_generated_programs_agree_with_flux_core() {
    let gpu = gpu();
    let (programs, jobs) = generated(5000);
    for max_steps in [200u64, 7] {
        let (batch, stats) = run_gpu(&gpu, &programs, &jobs, max_steps, OUT_STACK).unwrap();
        let gpu_results = batch.to_pairs();
        let cpu_results = run_cpu(&programs, &jobs, max_steps);
        for (i, ((g, ran), c)) in gpu_results.iter().zip(&cpu_results).enumerate() {
            assert_eq!(
                g, c,
                "program {i} {:02x?} with stack {:?} ({ran:?}) differs",
                programs[i], jobs[i].stack
            );
        }
        let on_cpu: Vec<&Ran> = gpu_results
            .iter()
            .map(|(_, r)| r)
            .filter(|r| **r != Ran::Gpu)
            .collect();
        assert!(
            stats.on_gpu > 4000,
            "{stats:?}; handed back: {:?}",
            &on_cpu[..on_cpu.len().min(5)]
        );
    }
}

/// Float operands from every region: zeros, denormals, the normal range's edges,
/// infinities, NaNs, and arbitrary bit patterns.
fn float_bits() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        (0u32..2, 0u32..0x80_0000).prop_map(|(s, m)| s << 31 | m), // zero and denormals
        (0u32..2, 1u32..4, 0u32..0x80_0000).prop_map(|(s, e, m)| s << 31 | e << 23 | m), // smallest normals
        (0u32..2, 250u32..255, 0u32..0x80_0000).prop_map(|(s, e, m)| s << 31 | e << 23 | m), // near overflow
        (0u32..2, 100u32..160, 0u32..0x80_0000).prop_map(|(s, e, m)| s << 31 | e << 23 | m), // ordinary
        prop::sample::select(vec![
            0x7F80_0000u32,
            0xFF80_0000,
            0x7FC0_0000,
            0x7F80_0001,
            0xFFFF_FFFF,
            0x8000_0000,
            0,
            0x0000_0001,
            0x807F_FFFF,
            0x3F80_0000
        ]),
    ]
}

#[test]
fn every_float_operation_rounds_exactly_like_the_cpu() {
    let gpu = gpu();
    let mut runner = TestRunner::new(Config::default());
    let strategy = (float_bits(), float_bits());
    let mut programs = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..5000 {
        let (a, b) = strategy.new_tree(&mut runner).unwrap().current();
        for op in [0x70u8, 0x71, 0x72, 0x73] {
            jobs.push(Job {
                program: programs.len(),
                stack: vec![a, b],
            });
            programs.push(vec![op]);
        }
    }
    let (batch, stats) = run_gpu(&gpu, &programs, &jobs, 10, OUT_STACK).unwrap();
    let gpu_results = batch.to_pairs();
    let cpu_results = run_cpu(&programs, &jobs, 10);
    for (i, ((g, _), c)) in gpu_results.iter().zip(&cpu_results).enumerate() {
        assert_eq!(
            g.stack, c.stack,
            "op {:02x} on {:08x}, {:08x}: GPU {:08x?} vs CPU {:08x?}",
            programs[i][0], jobs[i].stack[0], jobs[i].stack[1], g.stack, c.stack
        );
    }
    assert_eq!(
        stats.on_gpu, stats.jobs,
        "float operations never need the CPU"
    );
}

const NOT_REACHED: &str = "the GPU did not reach it in this dispatch";
const BUDGET: &str = "it ran past the GPU's step budget for one dispatch";

/// However the jobs are spread over the device's lanes — one each (the shader's old
/// way), a few each, as many as a lane can hold — and whether the lanes read the batch
/// where the host wrote it or from a copy in device memory (a discrete GPU's way),
/// every result is flux-core's, and every job is taken.
#[test]
fn every_way_of_spreading_jobs_over_lanes_agrees_with_flux_core() {
    let mut gpu = gpu();
    let (programs, mut jobs) = generated(3000);
    // Initial stacks of every length up to 40 words: copied into a lane 8 words an
    // iteration, as the results are copied out; and a few past the GPU's 1 024.
    for (i, j) in jobs.iter_mut().enumerate() {
        j.stack = (0..(i % 41) as u32)
            .chain(j.stack.iter().copied())
            .collect();
        if i % 1000 == 999 {
            j.stack = vec![7; 1100];
        }
    }
    let cpu_results = run_cpu(&programs, &jobs, 200);
    assert!(cpu_results.iter().filter(|c| c.stack.len() > 24).count() > 100);
    let iterations = gpu.lane_iterations;
    let staged = gpu.stage_inputs;
    for (per_lane, one_each, copied) in [
        (1, true, staged),
        (1, false, staged),
        (3, false, staged),
        (1000, false, staged),
        (16, false, !staged),
    ] {
        gpu.jobs_per_lane = per_lane;
        gpu.lane_iterations = if one_each {
            gpu.job_bound()
        } else {
            iterations
        };
        gpu.stage_inputs = copied;
        let (batch, stats) = run_gpu(&gpu, &programs, &jobs, 200, OUT_STACK).unwrap();
        for (i, c) in cpu_results.iter().enumerate() {
            assert_eq!(&batch.result(i), c, "job {i}, {per_lane} per lane");
            assert_eq!(batch.stack(i), c.stack.as_slice(), "job {i}");
        }
        assert!(!stats.handed_back.contains_key(NOT_REACHED), "{stats:?}");
        assert!(stats.on_gpu > 2000, "{stats:?}");
    }
}

/// Jobs that run to the step budget, many to a lane. lavapipe's loop limiter ends a
/// SIMD group's loop after a fixed count without a word, which would lose the jobs its
/// lanes were running; the lanes' iterations stay below it, so each such job comes back
/// handed to flux-core for its budget, never lost.
#[test]
fn jobs_that_run_to_the_budget_many_to_a_lane_all_come_back() {
    let mut gpu = gpu();
    // A GPU's budget (2^24 steps) would make this a long test there.
    gpu.step_budget = gpu.step_budget.min(1_500);
    let mut programs = sample::programs(2000, 3);
    programs.push(vec![0x50, 0xFD, 0xFF]); // JMP to itself
    let forever = programs.len() - 1;
    let jobs: Vec<Job> = (0..3000)
        .map(|i| Job {
            program: if i % 3 == 0 { forever } else { i * 2 / 3 },
            stack: vec![i as u32, 3],
        })
        .collect();
    let max_steps = 3_000;
    let cpu_results = run_cpu(&programs, &jobs, max_steps);
    let (batch, stats) = run_gpu(&gpu, &programs, &jobs, max_steps, 24).unwrap();
    for (i, c) in cpu_results.iter().enumerate() {
        assert_eq!(&batch.result(i), c, "job {i}");
        if jobs[i].program == forever {
            assert_eq!(batch.ran(i), Ran::Cpu(BUDGET.into()), "job {i}");
        }
    }
    // (Some of the sample's loops outrun the budget too.)
    assert!(stats.handed_back[BUDGET] >= 1000, "{stats:?}");
    assert!(!stats.handed_back.contains_key(NOT_REACHED), "{stats:?}");
}

/// The longest job a lane can be given — a full initial stack to copy in (1 024 words),
/// every step of the budget, a full result to copy out (256 words) — finishes on a
/// lane that has exactly `job_bound` iterations: the bound a lane checks before it
/// takes a job is enough.
#[test]
fn the_longest_possible_job_fits_in_its_bound() {
    let mut gpu = gpu();
    gpu.step_budget = gpu.step_budget.min(1_500);
    gpu.lane_iterations = gpu.job_bound();
    let budget = gpu.step_budget as usize;
    // DROP × 768 (down to a full result), NOPs, then HALT as the budget's last step.
    let mut program = vec![0x56u8; 768];
    program.resize(budget, 0x01);
    program.push(0x00);
    let programs = vec![program];
    let jobs: Vec<Job> = (0..64)
        .map(|i| Job {
            program: 0,
            stack: (0..1024).map(|w| w * 64 + i).collect(),
        })
        .collect();
    let max_steps = budget as u64 + 10;
    let cpu_results = run_cpu(&programs, &jobs, max_steps);
    let (batch, stats) = run_gpu(&gpu, &programs, &jobs, max_steps, OUT_STACK).unwrap();
    assert_eq!(stats.on_gpu, jobs.len(), "{stats:?}");
    for (i, c) in cpu_results.iter().enumerate() {
        assert_eq!(c.stack.len(), 256);
        assert_eq!(&batch.result(i), c, "job {i}");
    }
}
