//! The GPU interpreter against flux-core, on whatever Vulkan device is here (lavapipe in
//! CI). No device is a failure that names the package, never a skip.
#![allow(clippy::unwrap_used)]

use datum_plugin_vulkan_compute::batch::{run_cpu, run_gpu, vector_jobs, Job, Ran, OUT_STACK};
use datum_plugin_vulkan_compute::gpu::Gpu;
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
    let (gpu_results, stats) = run_gpu(&gpu, &programs, &jobs, 1_000_000, OUT_STACK).unwrap();
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

#[test]
fn thousands_of_generated_programs_agree_with_flux_core() {
    let gpu = gpu();
    let mut runner = TestRunner::new(Config::default());
    let strategy = (program(), prop::collection::vec(any::<u32>(), 0..4));
    let mut programs = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..5000 {
        let (code, stack) = strategy.new_tree(&mut runner).unwrap().current();
        jobs.push(Job {
            program: programs.len(),
            stack,
        });
        programs.push(code);
    }
    for max_steps in [200u64, 7] {
        let (gpu_results, stats) = run_gpu(&gpu, &programs, &jobs, max_steps, OUT_STACK).unwrap();
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
    let (gpu_results, stats) = run_gpu(&gpu, &programs, &jobs, 10, OUT_STACK).unwrap();
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
