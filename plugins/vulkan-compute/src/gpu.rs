//! The Vulkan side: find devices, build the interpreter pipeline once, and run a batch
//! of jobs in one dispatch (upload → run → read back).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use vulkano::buffer::{Buffer, BufferCreateInfo, BufferUsage, Subbuffer};
use vulkano::command_buffer::allocator::StandardCommandBufferAllocator;
use vulkano::command_buffer::{AutoCommandBufferBuilder, CommandBufferUsage, CopyBufferInfoTyped};
use vulkano::descriptor_set::allocator::StandardDescriptorSetAllocator;
use vulkano::descriptor_set::{DescriptorSet, WriteDescriptorSet};
use vulkano::device::physical::{PhysicalDevice, PhysicalDeviceType};
use vulkano::device::{Device, DeviceCreateInfo, Queue, QueueCreateInfo, QueueFlags};
use vulkano::instance::{Instance, InstanceCreateFlags, InstanceCreateInfo};
use vulkano::memory::allocator::{AllocationCreateInfo, MemoryTypeFilter, StandardMemoryAllocator};
use vulkano::memory::MemoryHeapFlags;
use vulkano::pipeline::compute::ComputePipelineCreateInfo;
use vulkano::pipeline::layout::PipelineDescriptorSetLayoutCreateInfo;
use vulkano::pipeline::{
    ComputePipeline, Pipeline, PipelineBindPoint, PipelineLayout, PipelineShaderStageCreateInfo,
};
use vulkano::shader::{ShaderModule, ShaderModuleCreateInfo};
use vulkano::sync::GpuFuture;
use vulkano::VulkanLibrary;

/// The interpreter, compiled from `shaders/flux_stack.wgsl` by build.rs.
static SPIRV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flux_stack.spv"));

/// Words before the stack in each job's result record (see the shader).
pub const RESULT_HEADER: usize = 8;
/// Where a result record says which dispatch wrote it (the shader's `params.epoch`).
pub const RECORD_EPOCH: usize = 7;
const WORKGROUP: u32 = 64;
/// Lane iterations to copy a job's initial stack in (at most the shader's STACK_CAP
/// words) and its result out (at most OUT_STACK words), COPY_WORDS (8) an iteration.
const COPY_ITERATIONS: u32 = 1024 / 8 + crate::batch::OUT_STACK as u32 / 8;
/// Lane iterations on a CPU device (lavapipe): its loop limiter ends a SIMD group's
/// loops after 65 535 counts in all, and one lane iteration counts once or twice
/// (measured with a job that jumps to itself; guarded by the agreement test
/// `jobs_that_run_to_the_budget_many_to_a_lane_all_come_back`).
const CPU_LANE_ITERATIONS: u32 = 30_000;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no Vulkan loader on this machine ({0})")]
    NoLoader(String),
    #[error("no Vulkan device found ({0})")]
    NoDevice(String),
    #[error("there is no Vulkan device {index}; this machine has {count} (see `datum gpu list`)")]
    NoSuchDevice { index: usize, count: usize },
    #[error("Vulkan failed while {doing}: {why}")]
    Vulkan { doing: &'static str, why: String },
}

impl GpuError {
    /// The package or step that fixes it.
    pub fn hint(&self) -> &'static str {
        match self {
            GpuError::NoLoader(_) => "install the Vulkan loader (Debian: apt-get install libvulkan1) and a driver (mesa-vulkan-drivers for the software driver lavapipe)",
            GpuError::NoDevice(_) => "install a Vulkan driver: your GPU vendor's, or mesa-vulkan-drivers for the software driver lavapipe; or pass --fallback cpu",
            GpuError::NoSuchDevice { .. } => "pick an index from `datum gpu list`",
            GpuError::Vulkan { .. } => "check the driver with `vulkaninfo --summary`, or pass --fallback cpu",
        }
    }
}

fn vk<E: std::fmt::Debug>(doing: &'static str) -> impl FnOnce(E) -> GpuError {
    move |e| GpuError::Vulkan {
        doing,
        why: format!("{e:?}"),
    }
}

/// One device as `datum gpu list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    pub index: usize,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub driver: String,
    pub api_version: String,
    /// Device-local memory, MiB.
    pub memory_mb: u64,
    pub compute: bool,
}

fn instance() -> Result<Arc<Instance>, GpuError> {
    let library = VulkanLibrary::new().map_err(|e| GpuError::NoLoader(e.to_string()))?;
    Instance::new(
        library,
        InstanceCreateInfo {
            flags: InstanceCreateFlags::ENUMERATE_PORTABILITY,
            ..Default::default()
        },
    )
    .map_err(|e| GpuError::NoDevice(format!("{e:?}")))
}

fn physical_devices(instance: &Arc<Instance>) -> Result<Vec<Arc<PhysicalDevice>>, GpuError> {
    let devices: Vec<_> = instance
        .enumerate_physical_devices()
        .map_err(vk("listing devices"))?
        .collect();
    if devices.is_empty() {
        return Err(GpuError::NoDevice("the loader found no device".into()));
    }
    Ok(devices)
}

fn info(index: usize, d: &PhysicalDevice) -> DeviceInfo {
    let p = d.properties();
    let kind = match p.device_type {
        PhysicalDeviceType::DiscreteGpu => "discrete-gpu",
        PhysicalDeviceType::IntegratedGpu => "integrated-gpu",
        PhysicalDeviceType::VirtualGpu => "virtual-gpu",
        PhysicalDeviceType::Cpu => "cpu",
        _ => "other",
    };
    let memory_mb = d
        .memory_properties()
        .memory_heaps
        .iter()
        .filter(|h| h.flags.intersects(MemoryHeapFlags::DEVICE_LOCAL))
        .map(|h| h.size)
        .sum::<u64>()
        / (1024 * 1024);
    DeviceInfo {
        index,
        name: p.device_name.clone(),
        kind: kind.into(),
        driver: match (&p.driver_name, &p.driver_info) {
            (Some(n), Some(i)) => format!("{n} {i}"),
            (Some(n), None) => n.clone(),
            _ => format!("{:?}", p.driver_id),
        },
        api_version: p.api_version.to_string(),
        memory_mb,
        compute: d
            .queue_family_properties()
            .iter()
            .any(|q| q.queue_flags.intersects(QueueFlags::COMPUTE)),
    }
}

/// Every Vulkan device on this machine.
pub fn list() -> Result<Vec<DeviceInfo>, GpuError> {
    let instance = instance()?;
    Ok(physical_devices(&instance)?
        .iter()
        .enumerate()
        .map(|(i, d)| info(i, d))
        .collect())
}

/// A device with the interpreter pipeline built, ready for batches.
pub struct Gpu {
    pub device_info: DeviceInfo,
    device: Arc<Device>,
    queue: Arc<Queue>,
    pipeline: Arc<ComputePipeline>,
    memory: Arc<StandardMemoryAllocator>,
    commands: Arc<StandardCommandBufferAllocator>,
    descriptors: Arc<StandardDescriptorSetAllocator>,
    max_groups: u32,
    /// Steps one job may take in a dispatch before it is handed to the CPU.
    pub step_budget: u32,
    /// Iterations of the shader's loop each lane may run (see the shader's top comment).
    pub lane_iterations: u32,
    /// Jobs per lane a batch aims at: more lanes than `count / jobs_per_lane` would
    /// leave lanes idle early, fewer would run long jobs side by side with nothing
    /// to take up the slack. A batch smaller than `fill_lanes` gets one lane per job.
    pub jobs_per_lane: u32,
    /// Lanes that keep the device busy (a batch of fewer jobs runs one job per lane).
    pub fill_lanes: u32,
    /// Copy the inputs into device memory before the lanes start (a discrete GPU: a
    /// lane reads its program once a step, and reading host memory crosses the bus).
    pub stage_inputs: bool,
    /// Counts dispatches; each one's records carry its number (never 0).
    epoch: std::sync::atomic::AtomicU32,
    /// Time to open the device and build the pipeline.
    pub setup: Duration,
    /// Buffers kept from the last dispatch, reused when big enough — 0–2 the uploads
    /// (code, jobs, initial stacks), 3 the results, 4 the job counter, 5–7 the uploads'
    /// copies in device memory (`stage_inputs`): allocating and mapping fresh host memory costs more than a batch of
    /// thousands of programs takes to run, and callers like evolve dispatch in a loop.
    pool: std::sync::Mutex<[Option<Subbuffer<[u32]>>; 8]>,
}

/// The result records of a dispatch, in host-visible memory: `RESULT_HEADER + out_stack`
/// words per job, each record stamped with `epoch` at `RECORD_EPOCH`.
pub struct Results {
    pub words: Subbuffer<[u32]>,
    pub epoch: u32,
}

/// What one dispatch cost.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DispatchTimes {
    pub upload_us: u128,
    pub run_us: u128,
    /// Decoding the results straight from the mapped buffer (filled in by the batch).
    pub readback_us: u128,
}

impl Gpu {
    /// Open device `index` (default: the first discrete GPU, else the first with compute).
    pub fn open(index: Option<usize>) -> Result<Gpu, GpuError> {
        let start = Instant::now();
        let instance = instance()?;
        let devices = physical_devices(&instance)?;
        let index = match index {
            Some(i) if i < devices.len() => i,
            Some(i) => {
                return Err(GpuError::NoSuchDevice {
                    index: i,
                    count: devices.len(),
                })
            }
            None => devices
                .iter()
                .position(|d| d.properties().device_type == PhysicalDeviceType::DiscreteGpu)
                .unwrap_or(0),
        };
        let physical = devices[index].clone();
        let family = physical
            .queue_family_properties()
            .iter()
            .position(|q| q.queue_flags.intersects(QueueFlags::COMPUTE))
            .ok_or_else(|| GpuError::NoDevice(format!("device {index} has no compute queue")))?
            as u32;
        let (device, mut queues) = Device::new(
            physical.clone(),
            DeviceCreateInfo {
                queue_create_infos: vec![QueueCreateInfo {
                    queue_family_index: family,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .map_err(vk("opening the device"))?;
        let queue = queues
            .next()
            .ok_or_else(|| GpuError::NoDevice("the device gave no queue".into()))?;
        let words: Vec<u32> = SPIRV
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // SAFETY: the SPIR-V was produced and validated by naga in build.rs from our own
        // shader; vulkano validates the module's interface against the pipeline layout.
        let module =
            unsafe { ShaderModule::new(device.clone(), ShaderModuleCreateInfo::new(&words)) }
                .map_err(vk("loading the shader"))?;
        let entry = module.entry_point("main").ok_or_else(|| GpuError::Vulkan {
            doing: "loading the shader",
            why: "no `main` entry point".into(),
        })?;
        let stage = PipelineShaderStageCreateInfo::new(entry);
        let layout = PipelineLayout::new(
            device.clone(),
            PipelineDescriptorSetLayoutCreateInfo::from_stages([&stage])
                .into_pipeline_layout_create_info(device.clone())
                .map_err(vk("describing the pipeline layout"))?,
        )
        .map_err(vk("creating the pipeline layout"))?;
        let pipeline = ComputePipeline::new(
            device.clone(),
            None,
            ComputePipelineCreateInfo::stage_layout(stage, layout),
        )
        .map_err(vk("building the compute pipeline"))?;
        let max_groups = physical.properties().max_compute_work_group_count[0];
        // lavapipe ends the loops of a whole SIMD group after a fixed count in total
        // (its loop limiter) without any error, so on a CPU device a lane has
        // CPU_LANE_ITERATIONS iterations and a job 1 500 steps before it is handed to
        // flux-core. GPUs get 2^24 steps a job, enough for evolve-sized programs and
        // short of a driver watchdog.
        let device_type = physical.properties().device_type;
        let cpu = device_type == PhysicalDeviceType::Cpu;
        let step_budget = if cpu { 1_500 } else { 1 << 24 };
        // A CPU device runs one lockstep group per core at a time; a GPU needs tens of
        // thousands of lanes in flight to hide its memory latency.
        let (lane_iterations, fill_lanes) = if cpu {
            (CPU_LANE_ITERATIONS, 256)
        } else {
            (u32::MAX, 1 << 16)
        };
        Ok(Gpu {
            device_info: info(index, &physical),
            memory: Arc::new(StandardMemoryAllocator::new_default(device.clone())),
            commands: Arc::new(StandardCommandBufferAllocator::new(
                device.clone(),
                Default::default(),
            )),
            descriptors: Arc::new(StandardDescriptorSetAllocator::new(
                device.clone(),
                Default::default(),
            )),
            device,
            queue,
            pipeline,
            max_groups,
            step_budget,
            lane_iterations,
            jobs_per_lane: 16,
            fill_lanes,
            stage_inputs: device_type == PhysicalDeviceType::DiscreteGpu,
            epoch: std::sync::atomic::AtomicU32::new(0),
            setup: start.elapsed(),
            pool: std::sync::Mutex::new(Default::default()),
        })
    }

    /// A host-memory buffer of at least `len` words for pool slot `slot`: the kept one
    /// when it is big enough, else a new one (which is then kept).
    fn buffer(
        &self,
        slot: usize,
        len: usize,
        filter: MemoryTypeFilter,
        usage: BufferUsage,
    ) -> Result<Subbuffer<[u32]>, GpuError> {
        // Vulkan rejects empty buffers; an unused word keeps every binding valid.
        let len = len.max(1) as u64;
        let mut pool = self.pool.lock().map_err(|_| GpuError::Vulkan {
            doing: "reusing buffers",
            why: "a previous dispatch panicked".into(),
        })?;
        if let Some(kept) = &pool[slot] {
            if kept.len() >= len {
                return Ok(kept.clone().slice(0..len));
            }
        }
        let fresh = Buffer::new_slice::<u32>(
            self.memory.clone(),
            BufferCreateInfo {
                usage,
                ..Default::default()
            },
            AllocationCreateInfo {
                memory_type_filter: filter,
                ..Default::default()
            },
            // Room to grow, so a slightly larger next batch does not reallocate.
            len + len / 4,
        )
        .map_err(vk("allocating a buffer"))?;
        pool[slot] = Some(fresh.clone());
        Ok(fresh.slice(0..len))
    }

    /// An input buffer of `len` words: host memory written sequentially, which the
    /// lanes read directly or (`stage_inputs`) a copy engine copies to device memory.
    fn upload_buffer(&self, slot: usize, len: usize) -> Result<Subbuffer<[u32]>, GpuError> {
        self.buffer(
            slot,
            len,
            MemoryTypeFilter::PREFER_HOST | MemoryTypeFilter::HOST_SEQUENTIAL_WRITE,
            BufferUsage::STORAGE_BUFFER | BufferUsage::TRANSFER_SRC,
        )
    }

    /// Device memory for the staged copy of input `slot`.
    fn staged_buffer(&self, slot: usize, len: usize) -> Result<Subbuffer<[u32]>, GpuError> {
        self.buffer(
            5 + slot,
            len,
            MemoryTypeFilter::PREFER_DEVICE,
            BufferUsage::STORAGE_BUFFER | BufferUsage::TRANSFER_DST,
        )
    }

    /// Lane iterations the longest possible job takes (see `lanes_for`): with
    /// `lane_iterations` set to this, every lane runs exactly one job, as the shader
    /// once did (the benchmark's same-run baseline).
    pub fn job_bound(&self) -> u32 {
        self.step_budget.saturating_add(COPY_ITERATIONS)
    }

    /// How many lanes run `count` jobs, and the push constant `job_bound`.
    fn lanes(&self, count: usize) -> Result<(usize, u32), GpuError> {
        let job_bound = self.job_bound();
        lanes_for(
            count,
            self.jobs_per_lane,
            self.fill_lanes,
            self.lane_iterations,
            job_bound,
        )
        .map(|lanes| (lanes, job_bound))
        .ok_or_else(|| GpuError::Vulkan {
            doing: "sizing the dispatch",
            why: format!(
                "a lane's {} iterations cannot hold a job of {} steps (lane_iterations must be at least job_bound(), {job_bound})",
                self.lane_iterations, self.step_budget
            ),
        })
    }

    /// Run `count` jobs: `fill` writes their inputs straight into the mapped upload
    /// buffers — code, jobs (4 words each, see the shader's `Job`) and initial stacks,
    /// of `lens` words each — so nothing is packed into host memory and copied again.
    /// It must write every word (the buffers are reused, not cleared), and only write:
    /// upload memory may be write-combined, where reads are very slow. The returned
    /// records are read in place by the caller (no copy); a record whose epoch is not
    /// the returned one was not written by this dispatch.
    pub fn dispatch_with(
        &self,
        lens: [usize; 3],
        count: usize,
        max_steps: u32,
        out_stack: usize,
        fill: impl FnOnce(&mut [u32], &mut [u32], &mut [u32]),
    ) -> Result<(Option<Results>, DispatchTimes), GpuError> {
        let stride = RESULT_HEADER + out_stack;
        let mut times = DispatchTimes::default();
        if count == 0 {
            return Ok((None, times));
        }
        let (lanes, job_bound) = self.lanes(count)?;
        let groups = u32::try_from(lanes.div_ceil(WORKGROUP as usize)).unwrap_or(u32::MAX);
        if groups > self.max_groups {
            return Err(GpuError::Vulkan {
                doing: "sizing the dispatch",
                why: format!(
                    "{count} jobs need {groups} workgroups; this device allows {} per dispatch",
                    self.max_groups
                ),
            });
        }
        if u32::try_from(count * stride).is_err() {
            return Err(GpuError::Vulkan {
                doing: "sizing the dispatch",
                why: format!("{count} results of {stride} words are more than 2^32 words"),
            });
        }
        let t = Instant::now();
        let code_buf = self.upload_buffer(0, lens[0])?;
        let jobs_buf = self.upload_buffer(1, lens[1])?;
        let init_buf = self.upload_buffer(2, lens[2])?;
        let inputs = [code_buf.clone(), jobs_buf.clone(), init_buf.clone()];
        {
            let mut code = code_buf.write().map_err(vk("writing a buffer"))?;
            let mut jobs = jobs_buf.write().map_err(vk("writing a buffer"))?;
            let mut init = init_buf.write().map_err(vk("writing a buffer"))?;
            // A buffer is never empty (Vulkan refuses those): fill sees the real length.
            fill(
                &mut code[..lens[0]],
                &mut jobs[..lens[1]],
                &mut init[..lens[2]],
            );
        }
        let out_buf = self.buffer(
            3,
            count * stride,
            MemoryTypeFilter::PREFER_HOST | MemoryTypeFilter::HOST_RANDOM_ACCESS,
            BufferUsage::STORAGE_BUFFER,
        )?;
        // The lanes' shared job counter: device memory (atomics on host memory cross
        // the bus, one at a time), zeroed by the GPU before the dispatch.
        let counter = self.buffer(
            4,
            1,
            MemoryTypeFilter::PREFER_DEVICE,
            BufferUsage::STORAGE_BUFFER | BufferUsage::TRANSFER_DST,
        )?;
        let epoch = self
            .epoch
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(1)
            .max(1);
        // What the lanes read: the upload buffers themselves, or their copies in device
        // memory (copied by the same command buffer, before the dispatch).
        let bound = if self.stage_inputs {
            [
                self.staged_buffer(0, lens[0])?,
                self.staged_buffer(1, lens[1])?,
                self.staged_buffer(2, lens[2])?,
            ]
        } else {
            inputs.clone()
        };
        let layout = self.pipeline.layout().clone();
        let set = DescriptorSet::new(
            self.descriptors.clone(),
            layout.set_layouts()[0].clone(),
            [
                WriteDescriptorSet::buffer(0, bound[0].clone()),
                WriteDescriptorSet::buffer(1, bound[1].clone()),
                WriteDescriptorSet::buffer(2, bound[2].clone()),
                WriteDescriptorSet::buffer(3, out_buf.clone()),
                WriteDescriptorSet::buffer(4, counter.clone()),
            ],
            [],
        )
        .map_err(vk("binding the buffers"))?;
        let mut builder = AutoCommandBufferBuilder::primary(
            self.commands.clone(),
            self.queue.queue_family_index(),
            CommandBufferUsage::OneTimeSubmit,
        )
        .map_err(vk("recording commands"))?;
        if self.stage_inputs {
            for (from, to) in inputs.into_iter().zip(bound) {
                builder
                    .copy_buffer(CopyBufferInfoTyped::buffers(from, to))
                    .map_err(vk("copying the batch to device memory"))?;
            }
        }
        builder
            .fill_buffer(counter, 0)
            .map_err(vk("clearing the job counter"))?
            .bind_pipeline_compute(self.pipeline.clone())
            .map_err(vk("binding the pipeline"))?
            .bind_descriptor_sets(PipelineBindPoint::Compute, layout.clone(), 0, set)
            .map_err(vk("binding the descriptor set"))?
            .push_constants(
                layout,
                0,
                [
                    count as u32,
                    stride as u32,
                    self.step_budget,
                    max_steps,
                    out_stack as u32,
                    self.lane_iterations,
                    job_bound,
                    epoch,
                ],
            )
            .map_err(vk("setting the push constants"))?;
        // SAFETY: the shader takes job indices below `job_count` only, and every buffer
        // is sized from the same `count`/`stride` it reads them with.
        unsafe { builder.dispatch([groups, 1, 1]) }.map_err(vk("recording the dispatch"))?;
        let commands = builder
            .build()
            .map_err(vk("finishing the command buffer"))?;
        times.upload_us = t.elapsed().as_micros();
        let t = Instant::now();
        vulkano::sync::now(self.device.clone())
            .then_execute(self.queue.clone(), commands)
            .map_err(vk("submitting"))?
            .then_signal_fence_and_flush()
            .map_err(vk("submitting"))?
            .wait(None)
            .map_err(vk("waiting for the GPU"))?;
        times.run_us = t.elapsed().as_micros();
        Ok((
            Some(Results {
                words: out_buf,
                epoch,
            }),
            times,
        ))
    }
}

/// Lanes for `count` jobs, about `jobs_per_lane` each but at least `fill_lanes` (or one
/// per job), so that every job is taken: a lane takes a job only with `job_bound`
/// iterations left, enough for the longest possible job (its initial stack in,
/// `step_budget + 1` steps, its result out — the last step's iteration also writes the
/// first words out), so each lane can take at least `lane_iterations / job_bound`
/// jobs whatever they do, and the lanes together at least `count`. `None` when a lane
/// cannot hold even one job.
fn lanes_for(
    count: usize,
    jobs_per_lane: u32,
    fill_lanes: u32,
    lane_iterations: u32,
    job_bound: u32,
) -> Option<usize> {
    let capacity = (lane_iterations / job_bound.max(1)) as usize;
    if capacity == 0 {
        return None;
    }
    let per_lane = (jobs_per_lane.max(1) as usize).min(capacity);
    Some(count.div_ceil(per_lane).max(count.min(fill_lanes as usize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_always_lanes_enough_to_take_every_job() {
        for count in [0usize, 1, 7, 64, 65, 1000, 123_457, 1_000_000] {
            for per_lane in [0u32, 1, 3, 16, 1000] {
                for (iterations, bound) in [
                    (30_000u32, 1_660u32),
                    (1_660, 1_660),
                    (u32::MAX, (1 << 24) + 160),
                    (5_000, 1_000),
                ] {
                    let lanes = lanes_for(count, per_lane, 256, iterations, bound).unwrap();
                    let capacity = (iterations / bound) as usize;
                    assert!(
                        lanes * capacity >= count,
                        "{count} jobs, {lanes} lanes of {capacity}"
                    );
                    assert!(lanes >= count.min(256), "a small batch gets a lane per job");
                    assert!(lanes <= count.max(1), "never more lanes than jobs");
                }
            }
        }
        assert_eq!(
            lanes_for(10, 16, 256, 100, 1_660),
            None,
            "no room for one job"
        );
    }
}
