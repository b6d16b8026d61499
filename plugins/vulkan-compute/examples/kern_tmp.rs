#![allow(clippy::all)]
use datum_plugin_vulkan_compute::batch::{run_gpu, Job};
use datum_plugin_vulkan_compute::gpu::Gpu;
use datum_plugin_vulkan_compute::sample;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().unwrap());
    let mut gpu = Gpu::open(None).unwrap();
    let programs = sample::programs(n, 1234 + n as u64);
    let jobs: Vec<Job> = (0..n)
        .map(|i| Job {
            program: i,
            stack: vec![i as u32 % 97, 3 + i as u32 % 13],
        })
        .collect();
    let q = gpu.lane_iterations;
    for j in [16u32] {
        gpu.jobs_per_lane = j;
        gpu.lane_iterations = if j == 1 { gpu.job_bound() } else { q };
        let runs: Vec<_> = (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                let s = run_gpu(&gpu, &programs, &jobs, 1000, 24).unwrap().1;
                (s, t.elapsed().as_secs_f64() * 1e3)
            })
            .collect();
        let med = |f: &dyn Fn(&(datum_plugin_vulkan_compute::batch::BatchStats, f64)) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!("J={j} medians: total {:.1} ms, pack {:.1} ms, upload {:.1} ms, run {:.1} ms, decode {:.1} ms", med(&|r| r.1), med(&|r| r.0.host_us as f64 / 1e3), med(&|r| r.0.times.upload_us as f64 / 1e3), med(&|r| r.0.times.run_us as f64 / 1e3), med(&|r| r.0.times.readback_us as f64 / 1e3));
        let mut t: Vec<f64> = runs.iter().map(|r| r.0.times.run_us as f64).collect();
        t.sort_by(f64::total_cmp);
        println!(
            "  kernel best {:.0} k prog/s, median {:.0} k prog/s; {:?}",
            n as f64 / t[0] * 1e3,
            n as f64 / t[3] * 1e3,
            runs[0].0.handed_back
        );
    }
}
