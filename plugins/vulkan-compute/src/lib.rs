//! The vulkan-compute plugin: batches of FLUX stack-profile programs on any Vulkan
//! device (a data-centre GPU, a laptop iGPU, or Mesa's software driver lavapipe),
//! agreeing with flux-core bit for bit.

pub mod batch;
pub mod gpu;
mod plugin;
pub mod sample;

pub use plugin::VulkanCompute;
