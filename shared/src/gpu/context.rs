//! Adapter and device setup, the pipeline cache, buffers and async readback.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use wgpu::util::DeviceExt;

use crate::error::{IndmError, Result};

/// Invocations per workgroup of every 1D kernel (`@workgroup_size(64)`).
pub const WORKGROUP: u32 = 64;

/// A WebGPU device with its queue, limits and compiled pipelines.
///
/// Not `Send`: on the web a device lives on one thread; natively each test or tool
/// makes its own.
pub struct GpuContext {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What the adapter reports (name, backend, device type).
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with (the adapter's own).
    pub limits: wgpu::Limits,
    pipelines: RefCell<HashMap<String, Rc<wgpu::ComputePipeline>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

impl GpuContext {
    /// Finds an adapter and opens a device with the adapter's limits.
    ///
    /// Natively honours `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF`.
    /// Returns [`IndmError::NoAdapter`] when there is no usable adapter, so the caller
    /// can fall back to the CPU path.
    pub async fn new() -> Result<Self> {
        Self::with_instance(wgpu::InstanceDescriptor::new_without_display_handle_from_env()).await
    }

    /// [`GpuContext::new`] restricted to `backends` (e.g. `wgpu::Backends::VULKAN`).
    /// With no backend at all it returns [`IndmError::NoAdapter`].
    pub async fn with_backends(backends: wgpu::Backends) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        Self::with_instance(desc).await
    }

    async fn with_instance(desc: wgpu::InstanceDescriptor) -> Result<Self> {
        if desc.backends.is_empty() {
            return Err(IndmError::NoAdapter("no graphics backend enabled".into()));
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = wgpu::util::initialize_adapter_from_env_or_default(&instance, None)
            .await
            .map_err(|e| IndmError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        if !adapter
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        {
            return Err(IndmError::NoAdapter(format!(
                "adapter '{}' ({:?}) has no compute shaders",
                info.name, info.backend
            )));
        }
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("indm"),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| IndmError::NoAdapter(format!("device request failed: {e}")))?;
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            pipelines: RefCell::new(HashMap::new()),
        })
    }

    /// [`GpuContext::new`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::new())
    }

    /// One line for logs and the demo's readout: adapter name, backend and type.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            if self.info.name.is_empty() {
                "unnamed adapter"
            } else {
                &self.info.name
            },
            self.info.backend,
            self.info.device_type
        )
    }

    /// The compute pipeline for `entry` of the WGSL module `source`, compiled once per
    /// `key` (the key must identify the source, e.g. its shader name plus its header).
    pub fn pipeline(
        &self,
        key: &str,
        source: &str,
        entry: &str,
        layout: &wgpu::PipelineLayout,
    ) -> Result<Rc<wgpu::ComputePipeline>> {
        let full_key = format!("{key}::{entry}");
        if let Some(p) = self.pipelines.borrow().get(&full_key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(key),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&full_key),
                layout: Some(layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster_free_pop(scope) {
            return Err(IndmError::Gpu(format!("pipeline '{full_key}': {e}")));
        }
        let p = Rc::new(pipeline);
        self.pipelines.borrow_mut().insert(full_key, p.clone());
        Ok(p)
    }

    /// A bind group layout of compute-stage buffers: `(binding, kind)` in order.
    pub fn layout(&self, label: &str, entries: &[BindingKind]) -> wgpu::BindGroupLayout {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = entries
            .iter()
            .enumerate()
            .map(|(i, kind)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match kind {
                        BindingKind::Uniform | BindingKind::DynamicUniform => {
                            wgpu::BufferBindingType::Uniform
                        }
                        BindingKind::ReadOnly => {
                            wgpu::BufferBindingType::Storage { read_only: true }
                        }
                        BindingKind::ReadWrite => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                    },
                    has_dynamic_offset: matches!(kind, BindingKind::DynamicUniform),
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        self.device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &entries,
            })
    }

    /// A pipeline layout with one bind group.
    pub fn pipeline_layout(&self, bgl: &wgpu::BindGroupLayout) -> wgpu::PipelineLayout {
        self.device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(bgl)],
                immediate_size: 0,
            })
    }

    /// A bind group over whole buffers (`sizes[i]`, when given, limits binding `i` to
    /// that many bytes, as dynamic uniform bindings need).
    pub fn bind_group(
        &self,
        layout: &wgpu::BindGroupLayout,
        buffers: &[(&wgpu::Buffer, Option<u64>)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, (b, size))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset: 0,
                    size: size.and_then(wgpu::BufferSize::new),
                }),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout,
            entries: &entries,
        })
    }

    /// Refuses a storage buffer of `bytes` bytes that the adapter cannot bind.
    pub fn check_storage(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if bytes > limit {
            return Err(IndmError::GpuLimit {
                what: format!("{what} (bytes)"),
                requested: bytes,
                limit,
            });
        }
        Ok(())
    }

    /// A storage buffer holding `data` (at least 4 bytes, as WebGPU needs).
    pub fn storage_f32(&self, label: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        self.check_storage(label, (data.len() * 4) as u64)?;
        let padded;
        let contents: &[f32] = if data.is_empty() {
            padded = [0.0f32];
            &padded
        } else {
            data
        };
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(contents),
                usage: storage_usage(),
            }))
    }

    /// A zeroed storage buffer of `len` 32-bit values (at least one).
    pub fn storage_zeroed(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let bytes = (len.max(1) * 4) as u64;
        self.check_storage(label, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: storage_usage(),
            mapped_at_creation: false,
        }))
    }

    /// A uniform buffer holding `bytes`.
    pub fn uniform_bytes(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Workgroup grid for `n` invocations of a 64-wide 1D kernel (wrapped into a 2D
    /// grid past the per-dimension limit), or a typed error if even that is too small.
    pub fn grid(&self, what: &str, n: u32) -> Result<(u32, u32)> {
        let groups = n.div_ceil(WORKGROUP).max(1);
        let max = self.limits.max_compute_workgroups_per_dimension.max(1);
        if groups <= max {
            return Ok((groups, 1));
        }
        let rows = groups.div_ceil(max);
        if rows > max {
            return Err(IndmError::GpuLimit {
                what: format!("{what} (workgroups)"),
                requested: groups as u64,
                limit: max as u64 * max as u64,
            });
        }
        Ok((max, rows))
    }

    /// Reads `len` 32-bit floats from `buffer` (which must have `COPY_SRC`).
    pub async fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(buffer, (len * 4) as u64).await?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    /// Reads `len` 32-bit unsigned integers from `buffer`.
    pub async fn read_u32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<u32>> {
        let bytes = self.read_bytes(buffer, (len * 4) as u64).await?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    /// Copies the first `size` bytes of `buffer` to a staging buffer and maps it.
    pub async fn read_bytes(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        if size == 0 {
            return Ok(Vec::new());
        }
        if size > buffer.size() {
            return Err(IndmError::invalid(
                "readback size",
                size,
                format!("at most the buffer's {} bytes", buffer.size()),
            ));
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| IndmError::Gpu(format!("waiting for the device: {e}")))?;
        rx.await
            .map_err(|_| IndmError::Gpu("buffer mapping was cancelled".into()))?
            .map_err(|e| IndmError::Gpu(format!("buffer mapping failed: {e}")))?;
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| IndmError::Gpu(format!("mapped range: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    /// Waits until the queue is idle (native; a no-op on the web, where readback awaits).
    pub fn wait(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| IndmError::Gpu(format!("waiting for the device: {e}")))?;
        Ok(())
    }
}

/// What a binding of a bind group layout holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// A uniform buffer.
    Uniform,
    /// A uniform buffer bound with a dynamic offset (one slot per step).
    DynamicUniform,
    /// A read-only storage buffer.
    ReadOnly,
    /// A read-write storage buffer.
    ReadWrite,
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE
        | wgpu::BufferUsages::COPY_SRC
        | wgpu::BufferUsages::COPY_DST
        | wgpu::BufferUsages::VERTEX
}

/// Pops a validation scope. Natively wgpu reports validation errors synchronously,
/// so the future is ready at once; on the web the error surfaces asynchronously and
/// is reported through the device's uncaptured-error handler instead.
fn pollster_free_pop(scope: wgpu::ErrorScopeGuard) -> Option<wgpu::Error> {
    let fut = scope.pop();
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(fut)
    }
    #[cfg(target_arch = "wasm32")]
    {
        drop(fut);
        None
    }
}

/// Round `x` up to a multiple of `align`.
pub fn align_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}
