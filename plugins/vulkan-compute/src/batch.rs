//! Batches: many programs × many initial stacks → one [`RunResult`] each, identical to
//! flux-core's. Jobs the GPU cannot run exactly come back marked and are rerun on the
//! CPU, with the reason reported.

use flux_core::{Config, Flags, RunResult, Status, Trap};
use rayon::prelude::*;
use serde::Serialize;

use crate::gpu::{DispatchTimes, Gpu, GpuError, RESULT_HEADER};

/// Stack words a GPU result may hold at most (the shader's STACK_CAP); callers that
/// need less pass a smaller `out_stack` and read back less.
pub const OUT_STACK: usize = 256;

/// One run: a program (by index into the batch's programs) and its initial stack.
#[derive(Debug, Clone)]
pub struct Job {
    pub program: usize,
    pub stack: Vec<u32>,
}

/// Where a job ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "on", content = "reason")]
pub enum Ran {
    Gpu,
    /// Rerun on flux-core, and why.
    Cpu(String),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchStats {
    pub jobs: usize,
    pub on_gpu: usize,
    pub on_cpu: usize,
    /// Why jobs were handed to the CPU, with counts.
    pub handed_back: std::collections::BTreeMap<String, usize>,
    pub times: DispatchTimes,
    /// Host time packing the batch (µs).
    pub host_us: u128,
}

/// Why the shader handed a job back (its NEEDS_CPU reasons).
fn reason(code: u32) -> String {
    match code {
        1 => "the stack grew past the GPU's 256 words".into(),
        2 => "calls nested deeper than the GPU's 16 frames".into(),
        3 => "memory outside the GPU's 256-byte window".into(),
        4 => "more than 16 channel messages".into(),
        5 => "an escape-prefix instruction (FF …)".into(),
        7 => "it ran past the GPU's step budget for one dispatch".into(),
        8 => "a step limit over 2^32".into(),
        9 => "the final stack is deeper than the batch's result size".into(),
        other => format!("GPU reason {other}"),
    }
}

fn cpu(code: &[u8], job: &Job, max_steps: u64) -> RunResult {
    flux_core::run(
        code,
        &Config {
            initial_stack: job.stack.clone(),
            max_steps,
            ..Config::default()
        },
    )
}

/// The stack-profile vectors of `files` that need nothing but an initial stack, as a
/// batch (programs and one job each).
pub fn vector_jobs(files: &[flux_core::conformance::VectorFile]) -> (Vec<Vec<u8>>, Vec<Job>) {
    let mut programs = Vec::new();
    let mut jobs = Vec::new();
    for file in files {
        if file.profile().ok() != Some(flux_core::Profile::Stack) {
            continue;
        }
        for (code, stack) in file
            .vectors
            .iter()
            .filter_map(|v| v.plain_run(flux_core::Profile::Stack))
        {
            jobs.push(Job {
                program: programs.len(),
                stack,
            });
            programs.push(code);
        }
    }
    (programs, jobs)
}

/// Run every job on flux-core on this thread (the reference, and one core's rate).
pub fn run_cpu(programs: &[Vec<u8>], jobs: &[Job], max_steps: u64) -> Vec<RunResult> {
    jobs.iter()
        .map(|j| cpu(&programs[j.program], j, max_steps))
        .collect()
}

/// Run every job on flux-core using every core (the `--fallback cpu` path).
pub fn run_cpu_all_cores(programs: &[Vec<u8>], jobs: &[Job], max_steps: u64) -> Vec<RunResult> {
    jobs.par_iter()
        .map(|j| cpu(&programs[j.program], j, max_steps))
        .collect()
}

/// Run the batch on `gpu`; jobs it cannot run exactly go to flux-core.
pub fn run_gpu(
    gpu: &Gpu,
    programs: &[Vec<u8>],
    jobs: &[Job],
    max_steps: u64,
    out_stack: usize,
) -> Result<(Vec<(RunResult, Ran)>, BatchStats), GpuError> {
    let out_stack = out_stack.min(OUT_STACK);
    let stride = RESULT_HEADER + out_stack;
    let pack_start = std::time::Instant::now();
    // Programs laid end to end, each starting on a word boundary; offsets and the
    // initial-stack positions are prefix sums, the rest is filled on every core.
    let mut offsets = Vec::with_capacity(programs.len());
    let mut total = 0u32;
    for p in programs {
        offsets.push(total * 4);
        total += p.len().div_ceil(4) as u32;
    }
    let mut code = vec![0u32; total as usize];
    split_by(&mut code, programs.iter().map(|p| p.len().div_ceil(4)))
        .into_par_iter()
        .zip(programs.par_iter())
        .for_each(|(dst, p)| {
            for (w, c) in dst.iter_mut().zip(p.chunks(4)) {
                let mut b = [0u8; 4];
                b[..c.len()].copy_from_slice(c);
                *w = u32::from_le_bytes(b);
            }
        });
    let mut init_at = Vec::with_capacity(jobs.len());
    let mut at = 0u32;
    for j in jobs {
        init_at.push(at);
        at += j.stack.len() as u32;
    }
    let gpu_steps = u32::try_from(max_steps).ok();
    let mut words = vec![0u32; jobs.len() * 4];
    words
        .par_chunks_mut(4)
        .zip(jobs.par_iter().zip(init_at.par_iter()))
        .for_each(|(w, (j, &io))| {
            w.copy_from_slice(&[
                offsets[j.program],
                programs[j.program].len() as u32,
                io,
                j.stack.len() as u32,
            ]);
        });
    let mut init = vec![0u32; at as usize];
    split_by(&mut init, jobs.iter().map(|j| j.stack.len()))
        .into_par_iter()
        .zip(jobs.par_iter())
        .for_each(|(dst, j)| dst.copy_from_slice(&j.stack));
    let pack_us = pack_start.elapsed().as_micros();
    let (buffer, times) = match gpu_steps {
        Some(steps) => gpu.dispatch(&code, &words, &init, steps, out_stack)?,
        None => (None, DispatchTimes::default()),
    };
    let guard = match &buffer {
        Some(b) => Some(b.read().map_err(|e| GpuError::Vulkan {
            doing: "reading results back",
            why: format!("{e:?}"),
        })?),
        None => None,
    };
    let out: &[u32] = guard.as_deref().unwrap_or(&[]);
    let mut stats = BatchStats {
        jobs: jobs.len(),
        times,
        ..BatchStats::default()
    };
    // Decode on every core, rerunning on flux-core what the GPU handed back.
    let decode_start = std::time::Instant::now();
    let results: Vec<(RunResult, Ran)> = jobs
        .par_iter()
        .enumerate()
        .map(|(i, j)| {
            let rec = out.get(i * stride..(i + 1) * stride);
            match rec.and_then(|rec| decode(rec, out_stack)) {
                Some(Ok(r)) => (r, Ran::Gpu),
                Some(Err(why)) => (
                    cpu(&programs[j.program], j, max_steps),
                    Ran::Cpu(reason(why)),
                ),
                None => (cpu(&programs[j.program], j, max_steps), Ran::Cpu(reason(8))),
            }
        })
        .collect();
    for (_, ran) in &results {
        if let Ran::Cpu(why) = ran {
            *stats.handed_back.entry(why.clone()).or_default() += 1;
        }
    }
    stats.on_cpu = stats.handed_back.values().sum();
    stats.on_gpu = jobs.len() - stats.on_cpu;
    stats.times.readback_us = decode_start.elapsed().as_micros();
    stats.host_us = pack_us;
    Ok((results, stats))
}

/// `buf` cut into consecutive pieces of the given lengths (which must fit), so each
/// piece can be filled on its own core.
fn split_by(buf: &mut [u32], lens: impl Iterator<Item = usize>) -> Vec<&mut [u32]> {
    let mut pieces = Vec::new();
    let mut rest = buf;
    for len in lens {
        let (head, tail) = rest.split_at_mut(len);
        pieces.push(head);
        rest = tail;
    }
    pieces
}

/// One result record, or the NEEDS_CPU reason.
fn decode(rec: &[u32], out_stack: usize) -> Option<Result<RunResult, u32>> {
    let status = match rec[0] {
        0 => Status::Halted,
        1 => Status::Break,
        2 => Status::End,
        3 => Status::Trap,
        255 => return Some(Err(rec[1])),
        _ => return None,
    };
    let steps = rec[3] as u64;
    let len = (rec[6] as usize).min(out_stack);
    let error = (status == Status::Trap)
        .then(|| Trap::from_code(rec[1] as u8))
        .flatten();
    if status == Status::Trap && error.is_none() {
        return None;
    }
    Some(Ok(RunResult {
        profile: flux_core::Profile::Stack,
        stack: rec[RESULT_HEADER..RESULT_HEADER + len]
            .iter()
            .map(|&w| w as i32)
            .collect(),
        flags: Flags(rec[4] as u8),
        status,
        error,
        trap_pc: (status == Status::Trap).then_some(rec[2] as usize),
        steps,
        registers: None,
        clock: steps,
        fuel: None,
        confidence: rec[5],
        continuations: 0,
        trace: Vec::new(),
    }))
}
