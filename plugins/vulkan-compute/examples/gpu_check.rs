//! The real-device check, as one binary to carry to a GPU machine (which has no Rust
//! toolchain): list devices, check agreement with flux-core (project vectors and
//! generated programs), then benchmark batches against flux-core on one core and on
//! all cores, and the fixed cost of a dispatch.
//!
//!   gpu_check [--device N] [--sizes 10000,100000,1000000] [--agree 20000]
//!             [--jobs-per-lane 1,4,16,64] [--json FILE]
//!
//! `--jobs-per-lane` runs the largest size once more for each value (1 is one job per
//! lane, the shader's old way and the kernel's same-run baseline).
//!
//! Exits 1 if any result differs from flux-core.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use datum_plugin_vulkan_compute::batch::{
    run_cpu, run_cpu_all_cores, run_gpu, vector_jobs, BatchResults, Job, OUT_STACK,
};
use datum_plugin_vulkan_compute::gpu::{self, Gpu};
use datum_plugin_vulkan_compute::sample;
use flux_core::conformance::{VectorFile, PROJECT_VECTORS};
use serde_json::json;

/// The value after the last `name` (a later argument overrides an earlier one).
fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .rposition(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn jobs_for(n: usize) -> Vec<Job> {
    (0..n)
        .map(|i| Job {
            program: i,
            stack: vec![i as u32 % 97, 3 + i as u32 % 13],
        })
        .collect()
}

/// The jobs among the first `cpu.len()` whose GPU result differs from flux-core's.
fn differing(gpu: &BatchResults, cpu: &[flux_core::RunResult]) -> Vec<usize> {
    (0..cpu.len())
        .filter(|&i| gpu.result(i) != cpu[i])
        .collect()
}

fn main() {
    let device = arg("--device").map(|d| d.parse().expect("--device N"));
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.parse().expect("--sizes N,N,…"))
        .collect();
    let agree_n: usize = arg("--agree").map_or(20_000, |a| a.parse().expect("--agree N"));
    let per_lane: Vec<u32> = arg("--jobs-per-lane")
        .unwrap_or_else(|| "1,4,16,64".into())
        .split(',')
        .map(|s| s.parse().expect("--jobs-per-lane N,N,…"))
        .collect();
    let mut report = json!({});

    let devices = match gpu::list() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}\nhint: {}", e.hint());
            std::process::exit(2);
        }
    };
    for d in &devices {
        println!(
            "device {}: {} ({}, {}, Vulkan {}, {} MiB)",
            d.index, d.name, d.kind, d.driver, d.api_version, d.memory_mb
        );
    }
    report["devices"] = json!(devices);
    let mut gpu = Gpu::open(device).unwrap_or_else(|e| panic!("{e}: {}", e.hint()));
    let default_staged = gpu.stage_inputs;
    println!(
        "using device {} ({}); setup {:.1} ms; step budget {}; lanes: {} jobs each, at least {}; inputs {}",
        gpu.device_info.index,
        gpu.device_info.name,
        gpu.setup.as_secs_f64() * 1e3,
        gpu.step_budget,
        gpu.jobs_per_lane,
        gpu.fill_lanes,
        if gpu.stage_inputs { "copied to device memory" } else { "read where the host wrote them" }
    );
    report["device"] = json!(gpu.device_info);
    report["setup_ms"] = json!(gpu.setup.as_secs_f64() * 1e3);

    // --- agreement ---------------------------------------------------------------
    let mut mismatches = 0usize;
    let files: Vec<VectorFile> = PROJECT_VECTORS
        .iter()
        .map(|(_, text)| VectorFile::parse(text).unwrap())
        .collect();
    let (programs, jobs) = vector_jobs(&files);
    let (g, stats) = run_gpu(&gpu, &programs, &jobs, 1_000_000, OUT_STACK).unwrap();
    let c = run_cpu(&programs, &jobs, 1_000_000);
    let bad = differing(&g, &c).len();
    mismatches += bad;
    println!(
        "agreement, project vectors: {}/{} identical ({} ran on the GPU, {} handed to the CPU)",
        stats.jobs - bad,
        stats.jobs,
        stats.on_gpu,
        stats.on_cpu
    );
    report["agree_vectors"] =
        json!({"total": stats.jobs, "identical": stats.jobs - bad, "on_gpu": stats.on_gpu});

    let programs = sample::programs(agree_n, 7);
    let jobs = jobs_for(agree_n);
    for max_steps in [1000u64, 37] {
        let (g, stats) = run_gpu(&gpu, &programs, &jobs, max_steps, OUT_STACK).unwrap();
        let c = run_cpu(&programs, &jobs, max_steps);
        let bad = differing(&g, &c);
        for &i in bad.iter().take(3) {
            eprintln!(
                "DIFFERS: program {:02x?} stack {:?}\n  gpu {:?}\n  cpu {:?}",
                programs[i],
                jobs[i].stack,
                g.result(i),
                c[i]
            );
        }
        mismatches += bad.len();
        println!("agreement, {agree_n} generated programs, max_steps {max_steps}: {}/{} identical ({} on the GPU)", agree_n - bad.len(), agree_n, stats.on_gpu);
        report[format!("agree_generated_{max_steps}")] =
            json!({"total": agree_n, "identical": agree_n - bad.len(), "on_gpu": stats.on_gpu});
    }

    // --- fixed cost of a dispatch -------------------------------------------------
    let one = sample::programs(1, 11);
    let mut costs: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            run_gpu(&gpu, &one, &jobs_for(1), 1000, 8).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    costs.sort_by(f64::total_cmp);
    let fixed_us = costs[costs.len() / 2];
    println!("fixed cost of a dispatch (1 job: upload + run + read back): {fixed_us:.0} µs (median of 21)");
    report["dispatch_fixed_us"] = json!(fixed_us);

    // --- throughput ----------------------------------------------------------------
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\n{:>9} {:>14} {:>14} {:>16} {:>9} {:>9} {:>8}   GPU run / pack (layout + writing the buffers) / decode incl. CPU reruns", "programs", "GPU prog/s", "1 core prog/s", format!("{cores} cores prog/s"), "vs 1", "vs all", "on GPU");
    let mut rows = Vec::new();
    let mut last = None;
    for &n in &sizes {
        let programs = sample::programs(n, 1234 + n as u64);
        let jobs = jobs_for(n);
        // The first batch of a size allocates its buffers; a loop (evolve) reuses them.
        let t = Instant::now();
        run_gpu(&gpu, &programs, &jobs, 1000, 24).unwrap();
        let cold_rate = n as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (g, stats) = run_gpu(&gpu, &programs, &jobs, 1000, 24).unwrap();
        let gpu_s = t.elapsed().as_secs_f64();
        // One core: a slice is enough for a rate (and checks those results too).
        let sample_n = n.min(200_000);
        let t = Instant::now();
        let c = run_cpu(&programs[..sample_n], &jobs[..sample_n], 1000);
        let one_rate = sample_n as f64 / t.elapsed().as_secs_f64();
        let bad = differing(&g, &c).len();
        mismatches += bad;
        let t = Instant::now();
        run_cpu_all_cores(&programs, &jobs, 1000);
        let all_rate = n as f64 / t.elapsed().as_secs_f64();
        let gpu_rate = n as f64 / gpu_s;
        println!(
            "{n:>9} {gpu_rate:>14.0} {one_rate:>14.0} {all_rate:>16.0} {:>8.1}× {:>8.1}× {:>7.1}%   {:.1} / {:.1} / {:.1} ms{}",
            gpu_rate / one_rate,
            gpu_rate / all_rate,
            100.0 * stats.on_gpu as f64 / n as f64,
            stats.times.run_us as f64 / 1e3,
            stats.host_us as f64 / 1e3,
            stats.times.readback_us as f64 / 1e3,
            if bad > 0 { format!("  ({bad} DIFFER)") } else { String::new() }
        );
        if !stats.handed_back.is_empty() {
            println!("{:>9} handed to the CPU: {:?}", "", stats.handed_back);
        }
        let kernel_rate = n as f64 / (stats.times.run_us.max(1) as f64 / 1e6);
        println!("{:>9} GPU kernel alone: {kernel_rate:.0} prog/s ({:.0}× one core); first (cold) batch {cold_rate:.0} prog/s", "", kernel_rate / one_rate);
        rows.push(json!({"cold_per_s": cold_rate, "kernel_per_s": kernel_rate, "host_us": stats.host_us, "handed_back": stats.handed_back, "programs": n, "gpu_per_s": gpu_rate, "one_core_per_s": one_rate, "all_cores_per_s": all_rate, "cores": cores, "on_gpu": stats.on_gpu, "times": stats.times, "differ": bad}));
        last = Some((programs, jobs, one_rate));
    }
    report["throughput"] = json!(rows);

    // --- lanes and staging, the largest size --------------------------------------
    if let Some((programs, jobs, one_rate)) = last {
        let n = jobs.len();
        let check = run_cpu(&programs[..1000.min(n)], &jobs[..1000.min(n)], 1000);
        // The best of three runs (kernel time, end-to-end time): the machine's other
        // work only slows a run. Checks the first results each time.
        let mut best_of_three = |gpu: &Gpu| {
            run_gpu(gpu, &programs, &jobs, 1000, 24).unwrap();
            let (mut kernel, mut end_to_end) = (f64::MAX, f64::MAX);
            for _ in 0..3 {
                let t = Instant::now();
                let (g, stats) = run_gpu(gpu, &programs, &jobs, 1000, 24).unwrap();
                end_to_end = end_to_end.min(t.elapsed().as_secs_f64());
                kernel = kernel.min(stats.times.run_us.max(1) as f64 / 1e6);
                mismatches += differing(&g, &check).len();
            }
            (n as f64 / kernel, n as f64 / end_to_end)
        };
        let (default, iterations) = (gpu.jobs_per_lane, gpu.lane_iterations);
        let mut sweep = Vec::new();
        println!("\n{n} programs, jobs per lane (1 = one job per lane, the same-run baseline):");
        for &j in &per_lane {
            gpu.jobs_per_lane = j;
            // One job per lane: a lane's iterations hold exactly one job.
            gpu.lane_iterations = if j == 1 { gpu.job_bound() } else { iterations };
            let (kernel, end_to_end) = best_of_three(&gpu);
            sweep.push((j, kernel));
            println!("{j:>9} jobs per lane: kernel {kernel:.0} prog/s ({:.1}× one core), end to end {end_to_end:.0} prog/s ({:.1}× one core)", kernel / one_rate, end_to_end / one_rate);
        }
        (gpu.jobs_per_lane, gpu.lane_iterations) = (default, iterations);
        if let Some(&(_, base)) = sweep.iter().find(|(j, _)| *j == 1) {
            for &(j, rate) in sweep.iter().filter(|(j, _)| *j != 1) {
                println!("{:>9} jobs per lane vs one: kernel {:.2}×", j, rate / base);
            }
        }
        report["jobs_per_lane"] = json!(sweep);
        // Inputs read from host memory vs copied into device memory first (the default
        // on a discrete GPU), same run.
        let mut staging = Vec::new();
        for staged in [false, true] {
            gpu.stage_inputs = staged;
            let (kernel, end_to_end) = best_of_three(&gpu);
            println!("{:>9} inputs {}: kernel {kernel:.0} prog/s, end to end {end_to_end:.0} prog/s ({:.1}× one core)", "", if staged { "copied to device memory" } else { "read from host memory" }, end_to_end / one_rate);
            staging.push(
                json!({"staged": staged, "kernel_per_s": kernel, "end_to_end_per_s": end_to_end}),
            );
        }
        gpu.stage_inputs = default_staged;
        report["staging"] = json!(staging);
    }

    report["mismatches"] = json!(mismatches);
    if let Some(path) = arg("--json") {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
    if mismatches > 0 {
        eprintln!("{mismatches} results differ from flux-core");
        std::process::exit(1);
    }
    println!("\nall results identical to flux-core");
}
