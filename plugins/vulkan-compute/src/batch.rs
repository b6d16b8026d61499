//! Batches: many programs × many initial stacks → one result each, identical to
//! flux-core's [`RunResult`]. Jobs the GPU cannot run exactly come back marked and are
//! rerun on the CPU, with the reason reported.

use flux_core::{Config, Flags, RunResult, Status, Trap};
use rayon::prelude::*;
use serde::Serialize;

use crate::gpu::{DispatchTimes, Gpu, GpuError, RECORD_EPOCH, RESULT_HEADER};

/// Stack words a GPU result may hold at most (the shader's stack holds more); callers
/// that need less pass a smaller `out_stack` and read back less.
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

/// Why a job was handed back: the shader's NEEDS_CPU reasons, and the host's own.
fn reason(code: u32) -> &'static str {
    match code {
        1 => "the stack grew past the GPU's 1 024 words",
        2 => "calls nested deeper than the GPU's 16 frames",
        3 => "memory outside the GPU's 256-byte window",
        4 => "more than 16 channel messages",
        5 => "an escape-prefix instruction (FF …)",
        7 => "it ran past the GPU's step budget for one dispatch",
        STEP_LIMIT_OVER_32_BITS => "a step limit over 2^32",
        9 => "the final stack is deeper than the batch's result size",
        // The lanes are sized so that every job is taken; this is the check that it was.
        NOT_REACHED => "the GPU did not reach it in this dispatch",
        _ => "the GPU returned a record it cannot have written",
    }
}

/// Host-side reasons (the shader's are below 10).
const STEP_LIMIT_OVER_32_BITS: u32 = 8;
const NOT_REACHED: u32 = 10;
const BAD_RECORD: u32 = 11;

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

/// A batch's results in the jobs' order, kept compact: a small row per job and every
/// final stack end to end for what ran on the GPU, flux-core's own results for what
/// was handed back. A million `RunResult`s (152 bytes each, and a stack allocated for
/// every one) cost more host time than the rest of the decode; [`stack`] reads a final
/// stack in place, [`result`] builds job i's `RunResult` when it is wanted.
///
/// [`stack`]: BatchResults::stack
/// [`result`]: BatchResults::result
#[derive(Debug, Default)]
pub struct BatchResults {
    rows: Vec<Row>,
    stacks: Vec<i32>,
    handed_back: Vec<(RunResult, &'static str)>,
}

/// One job's outcome on the GPU, or where to find its CPU rerun.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    /// On the GPU: where its final stack starts in `stacks`. Handed back: its index in
    /// `handed_back` (while decoding: the reason).
    at: u32,
    steps: u32,
    trap_pc: u32,
    confidence: u16,
    len: u16,
    /// The shader's status code (see `status`), or HANDED_BACK.
    status: u8,
    flags: u8,
    /// The trap's code, when `status` is a trap.
    error: u8,
}

const HANDED_BACK: u8 = 255;

impl Row {
    /// A job for flux-core, and why (a reason code until the rerun is placed).
    fn handed_back(why: u32) -> Row {
        Row {
            status: HANDED_BACK,
            at: why,
            ..Row::default()
        }
    }
}

fn status(code: u8) -> Option<Status> {
    match code {
        0 => Some(Status::Halted),
        1 => Some(Status::Break),
        2 => Some(Status::End),
        3 => Some(Status::Trap),
        _ => None,
    }
}

impl BatchResults {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Job `i`'s final stack, bottom first (empty after a trap), read in place.
    pub fn stack(&self, i: usize) -> &[i32] {
        let row = &self.rows[i];
        if row.status == HANDED_BACK {
            &self.handed_back[row.at as usize].0.stack
        } else {
            &self.stacks[row.at as usize..row.at as usize + row.len as usize]
        }
    }

    /// Job `i`'s result: exactly what flux-core returns for it.
    pub fn result(&self, i: usize) -> RunResult {
        let row = &self.rows[i];
        if row.status == HANDED_BACK {
            return self.handed_back[row.at as usize].0.clone();
        }
        // Decoding admitted only known statuses and trap codes.
        let status = status(row.status).unwrap_or(Status::Trap);
        let trapped = status == Status::Trap;
        RunResult {
            profile: flux_core::Profile::Stack,
            stack: self.stack(i).to_vec(),
            flags: Flags(row.flags),
            status,
            error: if trapped {
                Trap::from_code(row.error)
            } else {
                None
            },
            trap_pc: trapped.then_some(row.trap_pc as usize),
            steps: u64::from(row.steps),
            registers: None,
            clock: u64::from(row.steps),
            fuel: None,
            confidence: u32::from(row.confidence),
            continuations: 0,
            trace: Vec::new(),
        }
    }

    /// Where job `i` ran.
    pub fn ran(&self, i: usize) -> Ran {
        let row = &self.rows[i];
        if row.status == HANDED_BACK {
            Ran::Cpu(self.handed_back[row.at as usize].1.to_owned())
        } else {
            Ran::Gpu
        }
    }

    /// Every job's result and where it ran, in the jobs' order (built on every core).
    pub fn to_pairs(&self) -> Vec<(RunResult, Ran)> {
        (0..self.len())
            .into_par_iter()
            .map(|i| (self.result(i), self.ran(i)))
            .collect()
    }
}

/// Run the batch on `gpu`; jobs it cannot run exactly go to flux-core. The device's
/// lanes take the jobs one after another (see the shader), `gpu.jobs_per_lane` each.
pub fn run_gpu(
    gpu: &Gpu,
    programs: &[Vec<u8>],
    jobs: &[Job],
    max_steps: u64,
    out_stack: usize,
) -> Result<(BatchResults, BatchStats), GpuError> {
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
    let mut pack_us = layout_start.elapsed().as_micros();
    let (buffer, times) = match u32::try_from(max_steps) {
        Ok(steps) => gpu.dispatch_with(
            [code_words, jobs.len() * 4, init_words],
            jobs.len(),
            steps,
            out_stack,
            |code, words, init| {
                let t = std::time::Instant::now();
                pack(programs, jobs, &code_at, &init_at, code, words, init);
                pack_us += t.elapsed().as_micros();
            },
        )?,
        Err(_) => (None, DispatchTimes::default()),
    };
    let guard = match &buffer {
        Some(b) => Some(b.words.read().map_err(|e| GpuError::Vulkan {
            doing: "reading results back",
            why: format!("{e:?}"),
        })?),
        None => None,
    };
    let decode_start = std::time::Instant::now();
    let results = match (&buffer, &guard) {
        (Some(b), Some(out)) => {
            decode_all(out, stride, out_stack, b.epoch, programs, jobs, max_steps)?
        }
        _ => {
            let rows = vec![Row::handed_back(STEP_LIMIT_OVER_32_BITS); jobs.len()];
            rerun_handed_back(rows, Vec::new(), programs, jobs, max_steps)
        }
    };
    let mut stats = BatchStats {
        jobs: jobs.len(),
        times,
        ..BatchStats::default()
    };
    for (_, why) in &results.handed_back {
        *stats.handed_back.entry((*why).to_owned()).or_default() += 1;
    }
    stats.on_cpu = results.handed_back.len();
    stats.on_gpu = jobs.len() - stats.on_cpu;
    stats.times.readback_us = decode_start.elapsed().as_micros();
    stats.host_us = pack_us;
    Ok((results, stats))
}

/// Decode every record of the dispatch `epoch` (on every core): rows first, then the
/// final stacks end to end, then flux-core reruns what the GPU handed back.
fn decode_all(
    out: &[u32],
    stride: usize,
    out_stack: usize,
    epoch: u32,
    programs: &[Vec<u8>],
    jobs: &[Job],
    max_steps: u64,
) -> Result<BatchResults, GpuError> {
    let mut rows: Vec<Row> = (0..jobs.len())
        .into_par_iter()
        .map(|i| {
            let rec = out.get(i * stride..(i + 1) * stride);
            rec.map_or(Err(BAD_RECORD), |rec| decode(rec, out_stack, epoch))
                .unwrap_or_else(Row::handed_back)
        })
        .collect();
    let stack_at = prefix_sums(&rows, |r| r.len as usize)?;
    let mut stacks = vec![0i32; stack_at.last().copied().unwrap_or(0) as usize];
    in_pieces(&mut stacks, &stack_at, |i, dst| {
        let from = i * stride + RESULT_HEADER;
        let len = dst.len();
        for (d, &w) in dst.iter_mut().zip(&out[from..from + len]) {
            *d = w as i32;
        }
    });
    rows.par_iter_mut()
        .zip(&stack_at[..jobs.len()])
        .filter(|(row, _)| row.status != HANDED_BACK)
        .for_each(|(row, &at)| row.at = at);
    Ok(rerun_handed_back(rows, stacks, programs, jobs, max_steps))
}

/// Run on flux-core every job whose row is HANDED_BACK (its `at` the reason), on every
/// core, and point the row at its result.
fn rerun_handed_back(
    mut rows: Vec<Row>,
    stacks: Vec<i32>,
    programs: &[Vec<u8>],
    jobs: &[Job],
    max_steps: u64,
) -> BatchResults {
    let back: Vec<usize> = rows
        .par_iter()
        .enumerate()
        .filter(|(_, r)| r.status == HANDED_BACK)
        .map(|(i, _)| i)
        .collect();
    let handed_back: Vec<(RunResult, &'static str)> = back
        .par_iter()
        .map(|&i| {
            let j = &jobs[i];
            (cpu(&programs[j.program], j, max_steps), reason(rows[i].at))
        })
        .collect();
    for (k, &i) in back.iter().enumerate() {
        rows[i].at = k as u32;
    }
    BatchResults {
        rows,
        stacks,
        handed_back,
    }
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
/// record per job (program's byte offset and length, initial stack's offset and
/// length), and the initial stacks end to end. Every word
/// is written (the buffers are reused) and nothing is read back (they may be
/// write-combined).
#[allow(clippy::too_many_arguments)] // the batch, its layout and the three buffers
fn pack(
    programs: &[Vec<u8>],
    jobs: &[Job],
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
                                let i = piece * PIECE + k;
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

/// Call `fill(i, piece)` for every item `i`, where item `i` owns `buf[at[i]..at[i + 1]]`,
/// on every core: the buffer is cut into pieces of `PIECE` items each.
fn in_pieces<T: Send>(buf: &mut [T], at: &[u32], fill: impl Fn(usize, &mut [T]) + Sync) {
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

/// One result record of the dispatch `epoch` as a row, or why it goes to the CPU (the
/// shader's NEEDS_CPU reason, or the host's when the record is not one it can trust).
fn decode(rec: &[u32], out_stack: usize, epoch: u32) -> Result<Row, u32> {
    if rec[RECORD_EPOCH] != epoch {
        return Err(NOT_REACHED);
    }
    let code = match rec[0] {
        255 => return Err(rec[1]),
        c => u8::try_from(c).map_err(|_| BAD_RECORD)?,
    };
    let trapped = status(code).ok_or(BAD_RECORD)? == Status::Trap;
    let error = if trapped {
        let trap = u8::try_from(rec[1]).map_err(|_| BAD_RECORD)?;
        Trap::from_code(trap).ok_or(BAD_RECORD)?;
        trap
    } else {
        0
    };
    let len = rec[6] as usize;
    if len > out_stack || rec[4] > 0xF || rec[5] > 1000 {
        return Err(BAD_RECORD);
    }
    Ok(Row {
        at: 0,
        steps: rec[3],
        trap_pc: rec[2],
        confidence: rec[5] as u16,
        len: len as u16,
        status: code,
        flags: rec[4] as u8,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A record as the shader writes it: status, error, fault, steps, flags,
    /// confidence, stack length, epoch, then the stack.
    fn record(head: [u32; 8], stack: &[u32], out_stack: usize) -> Vec<u32> {
        let mut rec = head.to_vec();
        rec.extend_from_slice(stack);
        rec.resize(RESULT_HEADER + out_stack, 0xDEAD_BEEF);
        rec
    }

    #[test]
    fn a_record_is_taken_only_from_this_dispatch_and_only_when_it_makes_sense() {
        let ok = record([0, 0, 0, 9, 1, 1000, 2, 7], &[5, 6], 4);
        let row = decode(&ok, 4, 7).unwrap();
        assert_eq!((row.status, row.steps, row.len, row.flags), (0, 9, 2, 1));
        // A record left in the reused buffer by an earlier dispatch.
        assert_eq!(decode(&ok, 4, 8).unwrap_err(), NOT_REACHED);
        // Handed back by the shader, with its reason.
        let back = record([255, 7, 0, 0, 0, 0, 0, 7], &[], 4);
        assert_eq!(decode(&back, 4, 7).unwrap_err(), 7);
        // Nothing the shader writes: the job goes to flux-core instead.
        for bad in [
            [4, 0, 0, 0, 0, 1000, 0, 7],       // unknown status
            [3, 200, 0, 1, 0, 1000, 0, 7],     // unknown trap
            [3, 0, 0, 1, 0, 1000, 0, 7],       // a trap with no code
            [0, 0, 0, 1, 0, 1000, 5, 7],       // more stack than the record holds
            [0, 0, 0, 1, 16, 1000, 0, 7],      // flags beyond Z, S, C, O
            [0, 0, 0, 1, 0, 1001, 0, 7],       // confidence past 1000
            [1 << 20, 0, 0, 0, 0, 1000, 0, 7], // a status that is not a byte
        ] {
            assert_eq!(
                decode(&record(bad, &[], 4), 4, 7).unwrap_err(),
                BAD_RECORD,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn batch_results_give_flux_cores_result_for_every_job() {
        let programs = vec![
            vec![0x55, 5, 0, 0, 0, 0x55, 6, 0, 0, 0, 0x10, 0x00], // push 5; push 6; add; halt
            vec![0x56],                                           // drop on an empty stack
            vec![0xFF, 0x00],                                     // the escape prefix
        ];
        let jobs: Vec<Job> = (0..3)
            .map(|p| Job {
                program: p,
                stack: vec![],
            })
            .collect();
        let cpu_results = run_cpu(&programs, &jobs, 100);
        // What a dispatch writes for the first two; the third is handed back.
        let stride = RESULT_HEADER + 4;
        let mut out = record([0, 0, 0, 4, 0, 1000, 1, 3], &[11], 4);
        out.extend(record([3, 1, 0, 1, 0, 1000, 0, 3], &[], 4));
        out.extend(record([255, 5, 0, 0, 0, 0, 0, 3], &[], 4));
        let batch = decode_all(&out, stride, 4, 3, &programs, &jobs, 100).unwrap();
        assert_eq!(batch.len(), 3);
        for (i, c) in cpu_results.iter().enumerate() {
            assert_eq!(&batch.result(i), c, "job {i}");
            assert_eq!(batch.stack(i), c.stack.as_slice(), "job {i}");
        }
        assert_eq!(batch.ran(0), Ran::Gpu);
        assert_eq!(batch.ran(2), Ran::Cpu(reason(5).to_owned()));
        assert_eq!(batch.to_pairs()[2], (cpu_results[2].clone(), batch.ran(2)));
    }

    /// The shader's `div_step` (FDIV's quotient, 14 bits at a time), written again here
    /// to check its argument on the divisions a GPU may do: a float estimate up to 2.5
    /// ulp off either way — lavapipe's division is exact, so on it the corrections
    /// upward never run — made exact by two corrections each way.
    #[test]
    fn a_float_estimate_off_by_its_allowed_error_still_gives_the_exact_quotient() {
        fn div_step(x: u32, d: u32, ulps: f32) -> (u32, u32) {
            let estimate = (x as f32 * 16384.0) / d as f32;
            let off = estimate * (1.0 + ulps * f32::EPSILON);
            let mut q = off.floor() as u32;
            let mut r = (x << 14).wrapping_sub(q.wrapping_mul(d)) as i32;
            for _ in 0..2 {
                if r < 0 {
                    q = q.wrapping_sub(1);
                    r += d as i32;
                }
            }
            for _ in 0..2 {
                if r >= d as i32 {
                    q += 1;
                    r -= d as i32;
                }
            }
            (q, r as u32)
        }
        let mut rng = crate::sample::Rng::new(42);
        for _ in 0..200_000 {
            let d = (1 << 23) | rng.below(1 << 23) as u32;
            // x < 2·d, with exact multiples of d and their neighbours often.
            let x = match rng.below(3) {
                0 => rng.below(2 * d as u64) as u32,
                1 => d * rng.below(2) as u32,
                _ => (d + rng.below(3) as u32).min(2 * d - 1),
            };
            let want = (
                (u64::from(x) << 14) / u64::from(d),
                (u64::from(x) << 14) % u64::from(d),
            );
            for ulps in [-2.5f32, -1.0, 0.0, 1.0, 2.5] {
                let (q, r) = div_step(x, d, ulps);
                assert_eq!((u64::from(q), u64::from(r)), want, "{x} / {d}, {ulps} ulp");
            }
        }
    }
}
