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

/// Run the batch on `gpu`; jobs it cannot run exactly go to flux-core. Jobs are
/// grouped so that neighbouring invocations run alike (see [`Order::Grouped`]).
pub fn run_gpu(
    gpu: &Gpu,
    programs: &[Vec<u8>],
    jobs: &[Job],
    max_steps: u64,
    out_stack: usize,
) -> Result<(Vec<(RunResult, Ran)>, BatchStats), GpuError> {
    run_gpu_ordered(gpu, programs, jobs, max_steps, out_stack, Order::Grouped)
}

/// How jobs are laid out for the GPU. Results always come back in the jobs' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// As given.
    AsGiven,
    /// Programs with a loop apart from straight-line ones, then by length: a GPU runs
    /// invocations in lockstep groups (a warp of 32 on NVIDIA, 8 lanes on lavapipe),
    /// and a group lasts as long as its longest member, so one looping program among
    /// straight-line ones holds them all.
    Grouped,
}

/// [`run_gpu`] with a chosen job order (the benchmark compares them).
pub fn run_gpu_ordered(
    gpu: &Gpu,
    programs: &[Vec<u8>],
    jobs: &[Job],
    max_steps: u64,
    out_stack: usize,
    order: Order,
) -> Result<(Vec<(RunResult, Ran)>, BatchStats), GpuError> {
    let out_stack = out_stack.min(OUT_STACK);
    let stride = RESULT_HEADER + out_stack;
    // Where each program and each initial stack goes: prefix sums, once, so every core
    // can then write its share of the upload buffers in place.
    let layout_start = std::time::Instant::now();
    let code_at = prefix_sums(programs, |p| p.len().div_ceil(4))?;
    let init_at = prefix_sums(jobs, |j| j.stack.len())?;
    let code_words = code_at.last().copied().unwrap_or(0) as usize;
    if code_words > (u32::MAX / 4) as usize {
        return Err(GpuError::Vulkan {
            doing: "packing the batch",
            why: format!("{code_words} words of programs; a batch holds at most 1 GiB of code"),
        });
    }
    let init_words = init_at.last().copied().unwrap_or(0) as usize;
    // Grouped: record r runs job `run[r]`, job i's result is record `record[i]`;
    // otherwise record i is job i.
    let grouped = (order == Order::Grouped).then(|| group(programs, jobs));
    let run = grouped.as_ref().map(|(run, _)| run.as_slice());
    let mut pack_us = layout_start.elapsed().as_micros();
    let (buffer, times) = match u32::try_from(max_steps) {
        Ok(steps) => gpu.dispatch_with(
            [code_words, jobs.len() * 4, init_words],
            jobs.len(),
            steps,
            out_stack,
            |code, words, init| {
                let t = std::time::Instant::now();
                pack(programs, jobs, run, &code_at, &init_at, code, words, init);
                pack_us += t.elapsed().as_micros();
            },
        )?,
        Err(_) => (None, DispatchTimes::default()),
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
            let r = grouped.as_ref().map_or(i, |(_, record)| record[i] as usize);
            let rec = out.get(r * stride..(r + 1) * stride);
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

/// Items per piece of parallel packing: long runs per core, not a task per job.
const PIECE: usize = 4096;

/// `[0, l0, l0 + l1, …]` for the lengths `len(item)`: where each item starts, and the
/// total last. On every core: each piece's total first, then each piece fills its
/// share from where the pieces before it end. A batch whose words do not fit the
/// shader's 32-bit offsets is an error.
fn prefix_sums<T: Sync>(
    items: &[T],
    len: impl Fn(&T) -> usize + Sync,
) -> Result<Vec<u32>, GpuError> {
    let too_big = || GpuError::Vulkan {
        doing: "packing the batch",
        why: "more than 2^32 words of input in one batch".into(),
    };
    let totals: Vec<usize> = items
        .par_chunks(PIECE)
        .map(|piece| piece.iter().map(&len).fold(0usize, usize::saturating_add))
        .collect();
    let mut starts = Vec::with_capacity(totals.len());
    let mut total = 0u32;
    for t in totals {
        starts.push(total);
        total = u32::try_from(t)
            .ok()
            .and_then(|t| total.checked_add(t))
            .ok_or_else(too_big)?;
    }
    let mut at = vec![0u32; items.len() + 1];
    at[1..]
        .par_chunks_mut(PIECE)
        .zip(items.par_chunks(PIECE))
        .zip(starts)
        .for_each(|((dst, piece), start)| {
            let mut running = start;
            for (d, item) in dst.iter_mut().zip(piece) {
                // Cannot overflow: the piece's total fitted above.
                running += len(item) as u32;
                *d = running;
            }
        });
    Ok(at)
}

/// Write the batch into the upload buffers, on every core: programs end to end (each
/// from a word boundary, little-endian bytes as the shader reads them), one 4-word
/// record per job, in `run`'s order when given (program's byte offset and length,
/// initial stack's offset and length), and the initial stacks end to end. Every word
/// is written (the buffers are reused) and nothing is read back (they may be
/// write-combined).
#[allow(clippy::too_many_arguments)] // the batch, its layout and the three buffers
fn pack(
    programs: &[Vec<u8>],
    jobs: &[Job],
    run: Option<&[u32]>,
    code_at: &[u32],
    init_at: &[u32],
    code: &mut [u32],
    words: &mut [u32],
    init: &mut [u32],
) {
    rayon::join(
        || {
            in_pieces(code, code_at, |i, dst| {
                let p = &programs[i];
                let mut whole = p.chunks_exact(4);
                for (w, c) in dst.iter_mut().zip(&mut whole) {
                    *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                let tail = whole.remainder();
                if let Some(last) = dst.get_mut(p.len() / 4).filter(|_| !tail.is_empty()) {
                    let mut b = [0u8; 4];
                    b[..tail.len()].copy_from_slice(tail);
                    *last = u32::from_le_bytes(b);
                }
            })
        },
        || {
            rayon::join(
                || {
                    words
                        .par_chunks_mut(4 * PIECE)
                        .enumerate()
                        .for_each(|(piece, dst)| {
                            for (k, w) in dst.chunks_exact_mut(4).enumerate() {
                                let r = piece * PIECE + k;
                                let i = run.map_or(r, |run| run[r] as usize);
                                let j = &jobs[i];
                                w.copy_from_slice(&[
                                    code_at[j.program] * 4,
                                    programs[j.program].len() as u32,
                                    init_at[i],
                                    j.stack.len() as u32,
                                ]);
                            }
                        })
                },
                || in_pieces(init, init_at, |i, dst| dst.copy_from_slice(&jobs[i].stack)),
            )
        },
    );
}

/// The grouped order of [`Order::Grouped`]: `(run, record)`, where record `r` runs job
/// `run[r]` and job `i` is record `record[i]`. Within each piece of `PIECE` jobs, a
/// counting sort over a cheap guess at each program's work (linear, stable within a
/// class, on every core). Only within pieces: sorting the whole batch put every long
/// job at its end, and lavapipe ran that 0.8× as fast as no grouping at all, while
/// pieces of 512 to 4 096 ran 1.5× as fast. The guess only decides which jobs run
/// side by side, never a result.
fn group(programs: &[Vec<u8>], jobs: &[Job]) -> (Vec<u32>, Vec<u32>) {
    const CLASSES: usize = 512;
    let class_of_program: Vec<u16> = programs.par_iter().map(|p| work_class(p)).collect();
    let mut run = vec![0u32; jobs.len()];
    let mut record = vec![0u32; jobs.len()];
    run.par_chunks_mut(PIECE)
        .zip(record.par_chunks_mut(PIECE))
        .zip(jobs.par_chunks(PIECE))
        .enumerate()
        .for_each(|(piece, ((run, record), jobs))| {
            let base = piece * PIECE;
            let mut start = [0u32; CLASSES + 1];
            for j in jobs {
                start[class_of_program[j.program] as usize + 1] += 1;
            }
            for c in 0..CLASSES {
                start[c + 1] += start[c];
            }
            for (k, j) in jobs.iter().enumerate() {
                let c = class_of_program[j.program] as usize;
                let r = start[c] as usize;
                start[c] += 1;
                run[r] = (base + k) as u32;
                record[k] = (base + r) as u32;
            }
        });
    (run, record)
}

/// Which of 512 classes a program falls in: 256 and up for one with a backward branch
/// (a JMP/JZ/JNZ/CALL byte whose 16-bit displacement is negative — a byte scan, so an
/// operand that looks like one only misplaces the program), then by length in words.
fn work_class(code: &[u8]) -> u16 {
    // Every opcode byte against the byte two on (the displacement's high byte): no
    // early exit, so the compiler can compare many bytes at once.
    let looped = code
        .iter()
        .zip(code.iter().skip(2))
        .fold(false, |any, (&op, &high)| {
            any | (op & 0xfc == 0x50 && high & 0x80 != 0)
        });
    (u16::from(looped) << 8) | code.len().div_ceil(4).min(255) as u16
}

/// Call `fill(i, piece)` for every item `i`, where item `i` owns `buf[at[i]..at[i + 1]]`,
/// on every core: the buffer is cut into pieces of `PIECE` items each.
fn in_pieces(buf: &mut [u32], at: &[u32], fill: impl Fn(usize, &mut [u32]) + Sync) {
    let items = at.len().saturating_sub(1);
    let mut pieces = Vec::with_capacity(items.div_ceil(PIECE));
    let mut rest = buf;
    for first in (0..items).step_by(PIECE) {
        let end = (first + PIECE).min(items);
        let (head, tail) = rest.split_at_mut((at[end] - at[first]) as usize);
        pieces.push((first, end, head));
        rest = tail;
    }
    pieces.into_par_iter().for_each(|(first, end, piece)| {
        let base = at[first];
        for i in first..end {
            let (a, b) = ((at[i] - base) as usize, (at[i + 1] - base) as usize);
            fill(i, &mut piece[a..b]);
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_is_a_permutation_that_puts_alike_jobs_side_by_side_within_each_piece() {
        let programs = crate::sample::programs(3 * PIECE + 123, 5);
        // Jobs name programs out of order, some twice.
        let jobs: Vec<Job> = (0..programs.len() + 500)
            .map(|i| Job {
                program: (i * 7919) % programs.len(),
                stack: vec![],
            })
            .collect();
        let (run, record) = group(&programs, &jobs);
        let mut seen = vec![false; jobs.len()];
        for (r, &i) in run.iter().enumerate() {
            assert!(
                !std::mem::replace(&mut seen[i as usize], true),
                "job {i} runs twice"
            );
            assert_eq!(record[i as usize] as usize, r, "record is run's inverse");
            assert_eq!(r / PIECE, i as usize / PIECE, "a job stays in its piece");
        }
        for piece in run.chunks(PIECE) {
            let classes: Vec<u16> = piece
                .iter()
                .map(|&i| work_class(&programs[jobs[i as usize].program]))
                .collect();
            assert!(classes.windows(2).all(|w| w[0] <= w[1]), "sorted by class");
            // Stable: equal classes keep the jobs' order.
            for (w, c) in piece.windows(2).zip(classes.windows(2)) {
                if c[0] == c[1] {
                    assert!(w[0] < w[1]);
                }
            }
        }
    }

    #[test]
    fn prefix_sums_agree_with_a_running_total_across_pieces_and_refuse_overflow() {
        let lens: Vec<usize> = (0..2 * PIECE + 77).map(|i| i % 13).collect();
        let at = prefix_sums(&lens, |&l| l).unwrap();
        let mut running = 0u32;
        assert_eq!(at[0], 0);
        for (i, &l) in lens.iter().enumerate() {
            running += l as u32;
            assert_eq!(at[i + 1], running, "item {i}");
        }
        assert!(prefix_sums(&[(), ()], |_| u32::MAX as usize).is_err());
        assert!(prefix_sums(&[()], |_| u32::MAX as usize + 1).is_err());
        assert_eq!(prefix_sums(&[] as &[()], |_| 1).unwrap(), vec![0]);
    }

    #[test]
    fn a_loop_is_told_apart_from_straight_line_code() {
        // push 3; loop: dec; dup; jnz loop; halt
        let looped = [0x55, 3, 0, 0, 0, 0x17, 0x60, 0x52, 0xfb, 0xff, 0x00];
        let straight = [0x55, 3, 0, 0, 0, 0x17, 0x60, 0x52, 0x01, 0x00, 0x00];
        assert!(work_class(&looped) >= 256);
        assert!(work_class(&straight) < 256);
        assert!(
            work_class(&[0x00]) < work_class(&straight),
            "then by length"
        );
    }
}
