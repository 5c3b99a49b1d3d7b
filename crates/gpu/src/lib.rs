//! rankscope's GPU kernels, through wgpu: WGSL compute shaders for the products the forward
//! pass and the spectra spend their time in. Natively they run on Vulkan/Metal/DX12 (lavapipe
//! in CI), in the browser on WebGPU; the API is async so that both can wait for the device.
//!
//! Data stays on the GPU between kernels: weights are uploaded once as [`GpuMatrix`],
//! activations live in [`GpuTensor`] buffers, and nothing is read back until [`Gpu::read`]
//! (or a kernel that returns host data, such as [`Gpu::gram`]) asks for it. The CPU kernels
//! in `rankscope-core` stay the reference: `tests/parity.rs` compares against an f64 product.
//!
//! [`GpuModel`] runs the core's whole forward pass this way (`forward.rs`): weights uploaded
//! once, every step between the products a kernel of its own, logits or keys read back once;
//! `tests/forward_parity.rs` compares it with the CPU pass on the fixture checkpoints.
//! [`GpuModel`] is also the core's `ForwardBackend` (`backend.rs`): the core's activation
//! spectra, held-out loss and surgery sweep run their passes on it, with Grams summed and key
//! edits applied and the loss reduced on the GPU; `tests/activation_parity.rs` and
//! `tests/backend_parity.rs` compare them with the CPU's.

use std::fmt;

use wgpu::util::DeviceExt;

mod backend;
mod engine;
mod forward;
mod stream;

pub use engine::GpuEngine;
pub use forward::GpuModel;
pub use rankscope_core::analysis::gram_spectra::{HeadGram, SpectraRoutes};
pub use stream::streamed_activation_spectra;

/// Why no GPU could be used.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter found ({0}); natively, install a Vulkan driver (e.g. mesa-vulkan-drivers for lavapipe); in the browser, WebGPU must be enabled")]
    NoAdapter(String),
    #[error("the GPU adapter {adapter} refused a device: {reason}")]
    DeviceRequest { adapter: String, reason: String },
    #[error("reading a result back from the GPU failed: {0}")]
    ReadBack(String),
    #[error("the GPU adapter {adapter} could not compile rankscope's kernels: {reason}")]
    Compile { adapter: String, reason: String },
    #[error("{what} needs a buffer of {bytes} bytes; the GPU adapter allows at most {limit}")]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
    },
    #[error("token id {id} at position {position} is not below the vocabulary size {vocab}")]
    TokenOutOfVocab {
        id: u32,
        position: usize,
        vocab: usize,
    },
    #[error("an empty sequence has no logits")]
    EmptySequence,
    /// A key edit whose shape is not the model's (a caller's mistake, refused before a pass).
    #[error("{0}")]
    BadEdit(String),
    /// The model needs what only the CPU pass implements (`ModelView::extensions`); the
    /// engine runs it on the CPU instead, and its label says why.
    #[error("the GPU forward pass does not implement this {family} model's {needs}")]
    UnsupportedModel { family: &'static str, needs: String },
}

/// How [`Gpu::gram_with`] accumulates its sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GramAccumulation {
    /// Double-f32 (hi + lo) sums with exact products: about f64 accuracy, ~5× the arithmetic.
    Compensated,
    /// Naive f32 sums: a relative error near 1e-7 of Σ|x_ri||x_rj|, which loses eigenvalues
    /// below ~1e-7·λ_max (singular values below ~3e-4·σ_max). For comparison only.
    Plain,
}

/// A weight matrix on the GPU, row-major `[rows (out), cols (in)]`, uploaded once.
pub struct GpuMatrix {
    buffer: wgpu::Buffer,
    rows: usize,
    cols: usize,
}

/// An activation buffer on the GPU, row-major `[rows, cols]` (rows are tokens).
pub struct GpuTensor {
    buffer: wgpu::Buffer,
    rows: usize,
    cols: usize,
}

impl GpuMatrix {
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

impl GpuTensor {
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

/// A GPU device with the kernels compiled for it.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    max_groups_per_dimension: u32,
    matmul: wgpu::ComputePipeline,
    gram_compensated: wgpu::ComputePipeline,
    gram_plain: wgpu::ComputePipeline,
    forward: ForwardKernels,
}

/// The kernels between the forward pass's products (see `forward.rs`).
struct ForwardKernels {
    embed: wgpu::ComputePipeline,
    rms_norm: wgpu::ComputePipeline,
    rope: wgpu::ComputePipeline,
    attention: wgpu::ComputePipeline,
    relu_squared: wgpu::ComputePipeline,
    silu_mul: wgpu::ComputePipeline,
    /// Surgery's k ← k·P per kv-head.
    key_edit: wgpu::ComputePipeline,
    /// −log softmax at each row's target, and the sum that is read back.
    nll: wgpu::ComputePipeline,
    sum: wgpu::ComputePipeline,
}

impl fmt::Debug for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.adapter_summary())
            .finish()
    }
}

/// Output tile edge of the product kernel (matmul_nt.wgsl: 16×16 invocations, 4×4 outputs each).
const MATMUL_TILE: usize = 64;
/// Output tile edge of the Gram kernel (gram.wgsl: one output per invocation).
const GRAM_TILE: usize = 16;
/// Rows summed by one Gram workgroup before its partial goes to the CPU's f64 total.
const GRAM_CHUNK_ROWS: usize = 256;

/// `Params` of matmul_nt.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    scale: f32,
    masked: f32,
    pad: [u32; 2],
}

const ACCUMULATE: u32 = 1;
const CAUSAL: u32 = 2;

/// `Params` of gram.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GramParams {
    rows: u32,
    cols: u32,
    chunk_rows: u32,
    zero: u32,
    stride: u32,
    blocks: u32,
    accumulate: u32,
    pad: u32,
}

/// Per-head Gram matrices `XᵀX` (and column sums) of a token-major `[t, heads·cols]` activation,
/// summed on the GPU over any number of passes ([`Gpu::accumulate_gram`]) and read back once
/// ([`Gpu::read_grams`]). Holds `chunks × heads × (cols² + cols)` (hi, lo) pairs, where a chunk
/// is [`GRAM_CHUNK_ROWS`] rows of one pass.
pub struct GramAccumulator {
    partial: GpuTensor,
    sums: GpuTensor,
    rows_per_pass: usize,
    heads: usize,
    cols: usize,
    chunks: usize,
    accumulation: GramAccumulation,
    /// Rows summed so far (passes × rows_per_pass).
    rows: usize,
}

impl GramAccumulator {
    /// Rows summed so far: `n` of the centring `G − s sᵀ/n`.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

fn to_u32(n: usize, what: &str) -> u32 {
    u32::try_from(n)
        .unwrap_or_else(|_| panic!("{what} = {n} does not fit the kernels' u32 indices"))
}

impl Gpu {
    /// Opens the high-performance adapter and compiles the kernels.
    pub async fn new() -> Result<Self, GpuError> {
        // In a browser without WebGPU (or with it turned off), say so instead of creating an
        // instance the backend cannot serve.
        #[cfg(target_arch = "wasm32")]
        if !wgpu::util::is_browser_webgpu_supported().await {
            return Err(GpuError::NoAdapter(
                "this browser offers no WebGPU adapter".into(),
            ));
        }
        // WGPU_BACKEND etc. in the environment may narrow the choice (natively).
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        // The adapter's own limits: the defaults cap storage buffers at 128 MiB, less than a
        // large model's embedding matrix.
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("rankscope"),
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::DeviceRequest {
                adapter: summary(&info),
                reason: e.to_string(),
            })?;
        let pipeline = |source: &str, entry: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(entry),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let matmul_source = include_str!("shaders/matmul_nt.wgsl");
        let gram_source = include_str!("shaders/gram.wgsl");
        // A shader the browser's compiler rejects does not throw: its kernels would just not
        // run and read back zeros. Catch that here, once, as an error naming the adapter.
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let (matmul, gram_compensated, gram_plain) = (
            pipeline(matmul_source, "main"),
            pipeline(gram_source, "gram_compensated"),
            pipeline(gram_source, "gram_plain"),
        );
        let elementwise_source = include_str!("shaders/elementwise.wgsl");
        let forward = ForwardKernels {
            embed: pipeline(include_str!("shaders/embed.wgsl"), "main"),
            rms_norm: pipeline(include_str!("shaders/rms_norm.wgsl"), "main"),
            rope: pipeline(include_str!("shaders/rope.wgsl"), "main"),
            attention: pipeline(include_str!("shaders/attention.wgsl"), "main"),
            relu_squared: pipeline(elementwise_source, "relu_squared"),
            silu_mul: pipeline(elementwise_source, "silu_mul"),
            key_edit: pipeline(include_str!("shaders/key_edit.wgsl"), "main"),
            nll: pipeline(include_str!("shaders/nll.wgsl"), "main"),
            sum: pipeline(include_str!("shaders/sum.wgsl"), "main"),
        };
        if let Some(e) = scope.pop().await {
            return Err(GpuError::Compile {
                adapter: summary(&info),
                reason: e.to_string(),
            });
        }
        Ok(Self {
            max_groups_per_dimension: device.limits().max_compute_workgroups_per_dimension,
            matmul,
            gram_compensated,
            gram_plain,
            forward,
            device,
            queue,
            info,
        })
    }

    /// The adapter in use and its backend, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)".
    pub fn adapter_summary(&self) -> String {
        summary(&self.info)
    }

    /// Bytes of the largest buffer a kernel can bind on this device (storage binding and buffer
    /// size limits both): what every weight and activation must fit.
    pub fn max_buffer_bytes(&self) -> u64 {
        let limits = self.device.limits();
        limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
    }

    fn storage(&self, label: &str, data: &[f32], extra: wgpu::BufferUsages) -> wgpu::Buffer {
        // wgpu refuses zero-sized bindings: an empty tensor still gets one element.
        let contents: &[f32] = if data.is_empty() { &[0.0] } else { data };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(contents),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | extra,
            })
    }

    /// Uploads a row-major `[rows, cols]` weight matrix; it stays on the GPU.
    pub fn upload_matrix(&self, data: &[f32], rows: usize, cols: usize) -> GpuMatrix {
        assert_eq!(data.len(), rows * cols, "matrix data is not {rows}×{cols}");
        GpuMatrix {
            buffer: self.storage("matrix", data, wgpu::BufferUsages::empty()),
            rows,
            cols,
        }
    }

    /// Uploads a row-major `[rows, cols]` activation tensor.
    pub fn upload_tensor(&self, data: &[f32], rows: usize, cols: usize) -> GpuTensor {
        assert_eq!(data.len(), rows * cols, "tensor data is not {rows}×{cols}");
        GpuTensor {
            buffer: self.storage("tensor", data, wgpu::BufferUsages::COPY_DST),
            rows,
            cols,
        }
    }

    /// A zero-filled `[rows, cols]` tensor, e.g. the output of a kernel.
    pub fn zeros(&self, rows: usize, cols: usize) -> GpuTensor {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tensor"),
            size: (4 * (rows * cols).max(1)) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        GpuTensor { buffer, rows, cols }
    }

    /// `y [t, rows] = x [t, cols] · Wᵀ` (+ `y` when `accumulate`), W row-major `[rows, cols]`:
    /// `Matrix::apply` of the core, queued on the GPU; nothing is read back.
    ///
    /// # Panics
    /// If the shapes do not match.
    pub fn linear(&self, x: &GpuTensor, w: &GpuMatrix, y: &mut GpuTensor, accumulate: bool) {
        assert!(
            x.cols == w.cols && y.rows == x.rows && y.cols == w.rows,
            "linear: x {}×{} · W({}×{})ᵀ does not fit y {}×{}",
            x.rows,
            x.cols,
            w.rows,
            w.cols,
            y.rows,
            y.cols
        );
        let flags = if accumulate { ACCUMULATE } else { 0 };
        self.matmul_nt(
            (x.rows, x.cols, w.rows),
            &x.buffer,
            &w.buffer,
            &y.buffer,
            flags,
            1.0,
        );
    }

    /// Attention scores of one head: `S [t, t] = scale · Q Kᵀ` for Q, K `[t, d_k]`, with the
    /// causal mask applied (key j > query i gets -inf), i.e. the CPU path's scaled scores
    /// before softmax. Tiles wholly above the diagonal skip their products.
    ///
    /// # Panics
    /// If the shapes do not match.
    pub fn attention_scores(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        scale: f32,
        scores: &mut GpuTensor,
    ) {
        assert!(
            q.rows == k.rows && q.cols == k.cols && scores.rows == q.rows && scores.cols == q.rows,
            "attention_scores: Q {}×{}, K {}×{} and S {}×{} do not fit",
            q.rows,
            q.cols,
            k.rows,
            k.cols,
            scores.rows,
            scores.cols
        );
        self.matmul_nt(
            (q.rows, q.cols, k.rows),
            &q.buffer,
            &k.buffer,
            &scores.buffer,
            CAUSAL,
            scale,
        );
    }

    fn matmul_nt(
        &self,
        (m, k, n): (usize, usize, usize),
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        y: &wgpu::Buffer,
        flags: u32,
        scale: f32,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        let params = MatmulParams {
            m: to_u32(m, "rows"),
            n: to_u32(n, "output columns"),
            k: to_u32(k, "inner dimension"),
            flags,
            scale,
            // What softmax expects of a masked score (exp → 0).
            masked: f32::NEG_INFINITY,
            pad: [0; 2],
        };
        let col_tiles = to_u32(n.div_ceil(MATMUL_TILE), "column tiles");
        assert!(
            col_tiles <= self.max_groups_per_dimension,
            "{n} output columns exceed the device's dispatch limit"
        );
        let (y_groups, z_groups) = self.fold_row_tiles(m.div_ceil(MATMUL_TILE));
        self.dispatch(
            &self.matmul,
            bytemuck::bytes_of(&params),
            &[x, w, y],
            (col_tiles, y_groups, z_groups),
        );
    }

    /// Spreads `tiles` row tiles over the y and z dispatch dimensions (y · z ≥ tiles; the
    /// shader skips the excess), as one dimension holds at most max_compute_workgroups_per_dimension.
    fn fold_row_tiles(&self, tiles: usize) -> (u32, u32) {
        let max = self.max_groups_per_dimension as usize;
        let z = tiles.div_ceil(max).max(1);
        let y = tiles.div_ceil(z);
        assert!(
            z <= max,
            "{tiles} row tiles exceed the device's dispatch limit"
        );
        (y as u32, z as u32)
    }

    /// Spreads `groups` workgroups over the x and y dispatch dimensions (x · y ≥ groups; the
    /// shaders skip the excess, indexing by `group.x + group.y · groups.x`).
    fn fold_groups(&self, groups: usize) -> (u32, u32, u32) {
        let max = self.max_groups_per_dimension as usize;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x).max(1);
        assert!(
            y <= max,
            "{groups} workgroups exceed the device's dispatch limit"
        );
        (x as u32, y as u32, 1)
    }

    fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        params: &[u8],
        buffers: &[&wgpu::Buffer],
        (gx, gy, gz): (u32, u32, u32),
    ) {
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: params,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (i, buffer) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: buffer.as_entire_binding(),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(gx, gy, gz);
        }
        self.queue.submit([encoder.finish()]);
    }

    /// Queues `dst = src` (same shape) on the GPU.
    fn copy(&self, src: &GpuTensor, dst: &GpuTensor) {
        assert_eq!(
            src.shape(),
            dst.shape(),
            "copy between tensors of different shapes"
        );
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(
            &src.buffer,
            0,
            &dst.buffer,
            0,
            (4 * src.rows * src.cols) as u64,
        );
        self.queue.submit([encoder.finish()]);
    }

    /// Queues `dst = src[row0 .. row0 + dst.rows]` (same width) on the GPU.
    fn copy_rows(&self, src: &GpuTensor, row0: usize, dst: &GpuTensor) {
        assert!(
            src.cols == dst.cols && row0 + dst.rows <= src.rows,
            "copy_rows: rows out of range"
        );
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let (offset, len) = (4 * row0 * src.cols, 4 * dst.rows * dst.cols);
        encoder.copy_buffer_to_buffer(&src.buffer, offset as u64, &dst.buffer, 0, len as u64);
        self.queue.submit([encoder.finish()]);
    }

    /// Copies a tensor back to the host (waits for every kernel queued before it).
    pub async fn read(&self, tensor: &GpuTensor) -> Result<Vec<f32>, GpuError> {
        self.read_buffer(&tensor.buffer, tensor.rows * tensor.cols)
            .await
    }

    /// Copies several tensors back in one transfer: one staging buffer, one map, one wait (each
    /// read-back waits for the whole queue, so a pass's results are cheaper read together).
    pub async fn read_all(&self, tensors: &[&GpuTensor]) -> Result<Vec<Vec<f32>>, GpuError> {
        let parts: Vec<_> = tensors
            .iter()
            .map(|t| (&t.buffer, t.rows * t.cols))
            .collect();
        self.read_buffers(&parts).await
    }

    async fn read_buffer(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
        Ok(self
            .read_buffers(&[(buffer, len)])
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// The first `len` f32 of each buffer, through one staging buffer.
    async fn read_buffers(
        &self,
        parts: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let total: usize = parts.iter().map(|(_, len)| len).sum();
        if total == 0 {
            return Ok(parts.iter().map(|_| Vec::new()).collect());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: (4 * total) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let mut at = 0;
        for &(buffer, len) in parts {
            if len > 0 {
                encoder.copy_buffer_to_buffer(
                    buffer,
                    0,
                    &staging,
                    (4 * at) as u64,
                    (4 * len) as u64,
                );
            }
            at += len;
        }
        self.queue.submit([encoder.finish()]);
        let (sender, receiver) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = sender.send(result);
        });
        // Natively the callback only runs when the device is polled; in the browser the
        // promise resolves by itself and poll is a no-op.
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| GpuError::ReadBack(e.to_string()))?;
        receiver
            .await
            .map_err(|_| GpuError::ReadBack("the map callback was dropped".into()))?
            .map_err(|e| GpuError::ReadBack(e.to_string()))?;
        let data = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| GpuError::ReadBack(e.to_string()))?;
            let all = bytemuck::cast_slice::<u8, f32>(&view);
            let mut at = 0;
            parts
                .iter()
                .map(|&(_, len)| {
                    at += len;
                    all[at - len..at].to_vec()
                })
                .collect()
        };
        staging.unmap();
        Ok(data)
    }

    /// `A [m, k] · Bᵀ` for B row-major `[n, k]` (the weights' layout): uploads, runs the
    /// linear kernel, reads back. A convenience for tests and one-off products.
    pub async fn matmul(
        &self,
        a: &[f32],
        b: &[f32],
        (m, k, n): (usize, usize, usize),
    ) -> Result<Vec<f32>, GpuError> {
        let x = self.upload_tensor(a, m, k);
        let w = self.upload_matrix(b, n, k);
        let mut y = self.zeros(m, n);
        self.linear(&x, &w, &mut y, false);
        self.read(&y).await
    }

    /// `G = XᵀX` (`[cols, cols]`, row-major f64) of X `[rows, cols]`, with compensated sums:
    /// see [`Gpu::gram_with`].
    pub async fn gram(&self, x: &GpuTensor) -> Result<Vec<f64>, GpuError> {
        self.gram_with(x, GramAccumulation::Compensated).await
    }

    /// `G = XᵀX` of X `[rows, cols]` for eigen solvers, as f64. The GPU sums chunks of
    /// 256 rows, each as an f32 (hi, lo) pair; the CPU adds hi + lo over chunks in f64.
    ///
    /// Measured on lavapipe (Mesa 22.3.6, llvmpipe, `tests/parity.rs`), max |G − G_f64| relative
    /// to Σ_r |x_ri||x_rj|: 300×64 uniform X: 1.3e-13 compensated, 5.1e-7 plain. X 512×64 with
    /// singular values log-spaced over κ = 1e4 (λ_min = 1e-8·λ_max): max entry error / max |G|
    /// 9.4e-14 compensated vs 3.0e-7 plain, and the smallest eigenvalue comes out with a
    /// relative error of 2.7e-10 compensated vs 0.99 plain (lost in f32 rounding). The
    /// compensation only survives because the shader hides its intermediates from the
    /// compiler's float rewrites (see `opaque` in gram.wgsl); without that lavapipe fused and
    /// reassociated it back to plain-f32 accuracy.
    pub async fn gram_with(
        &self,
        x: &GpuTensor,
        accumulation: GramAccumulation,
    ) -> Result<Vec<f64>, GpuError> {
        let mut accumulator = self.gram_accumulator(x.rows, 1, x.cols, accumulation);
        self.accumulate_gram(x, &mut accumulator);
        let mut heads = self.read_grams(&[&accumulator]).await?;
        Ok(heads
            .pop()
            .and_then(|mut h| h.pop())
            .map(|h| h.gram)
            .unwrap_or_default())
    }

    /// An empty accumulator for the per-head Grams of `[rows_per_pass, heads·cols]` activations.
    pub fn gram_accumulator(
        &self,
        rows_per_pass: usize,
        heads: usize,
        cols: usize,
        accumulation: GramAccumulation,
    ) -> GramAccumulator {
        let chunks = rows_per_pass.div_ceil(GRAM_CHUNK_ROWS).max(1);
        GramAccumulator {
            partial: self.zeros(chunks * heads * cols * cols * 2, 1),
            sums: self.zeros(chunks * heads * cols * 2, 1),
            rows_per_pass,
            heads,
            cols,
            chunks,
            accumulation,
            rows: 0,
        }
    }

    /// Queues `accumulator += per-head XᵀX and column sums of x` (x token-major
    /// `[rows_per_pass, heads·cols]`); nothing is read back.
    ///
    /// # Panics
    /// If x's shape is not the accumulator's, or the dispatch exceeds the device's limits.
    pub fn accumulate_gram(&self, x: &GpuTensor, accumulator: &mut GramAccumulator) {
        let GramAccumulator {
            rows_per_pass,
            heads,
            cols,
            chunks,
            ..
        } = *accumulator;
        assert!(
            x.rows == rows_per_pass && x.cols == heads * cols,
            "accumulate_gram: x is {}×{}, the accumulator takes {rows_per_pass}×({heads}·{cols})",
            x.rows,
            x.cols
        );
        let first = accumulator.rows == 0;
        accumulator.rows += rows_per_pass;
        if rows_per_pass == 0 || cols == 0 || heads == 0 {
            return;
        }
        let tiles = to_u32(cols.div_ceil(GRAM_TILE), "column tiles");
        let blocks = to_u32(chunks * heads, "row chunks × heads");
        assert!(
            tiles <= self.max_groups_per_dimension && blocks <= self.max_groups_per_dimension,
            "gram of {rows_per_pass}×({heads}·{cols}) exceeds the device's dispatch limit"
        );
        let params = GramParams {
            rows: to_u32(rows_per_pass, "rows"),
            cols: to_u32(cols, "columns"),
            chunk_rows: GRAM_CHUNK_ROWS as u32,
            zero: 0,
            stride: to_u32(heads * cols, "row length"),
            blocks: to_u32(heads, "heads"),
            accumulate: u32::from(!first),
            pad: 0,
        };
        let pipeline = match accumulator.accumulation {
            GramAccumulation::Compensated => &self.gram_compensated,
            GramAccumulation::Plain => &self.gram_plain,
        };
        let buffers = [
            &x.buffer,
            &accumulator.partial.buffer,
            &accumulator.sums.buffer,
        ];
        self.dispatch(
            pipeline,
            bytemuck::bytes_of(&params),
            &buffers,
            (tiles, tiles, blocks),
        );
    }

    /// Reads every accumulator back in one transfer and sums its chunks in f64:
    /// `result[a][h]` is head h of `accumulators[a]`.
    pub async fn read_grams(
        &self,
        accumulators: &[&GramAccumulator],
    ) -> Result<Vec<Vec<HeadGram>>, GpuError> {
        let tensors: Vec<&GpuTensor> = accumulators
            .iter()
            .flat_map(|a| [&a.partial, &a.sums])
            .collect();
        let mut data = self.read_all(&tensors).await?.into_iter();
        let mut out = Vec::with_capacity(accumulators.len());
        for accumulator in accumulators {
            let (partial, sums) = (
                data.next().unwrap_or_default(),
                data.next().unwrap_or_default(),
            );
            out.push(head_grams(accumulator, &partial, &sums));
        }
        Ok(out)
    }
}

/// Sums an accumulator's read-back chunks into one [`HeadGram`] per head, in f64.
fn head_grams(accumulator: &GramAccumulator, partial: &[f32], sums: &[f32]) -> Vec<HeadGram> {
    let GramAccumulator {
        heads,
        cols,
        chunks,
        rows,
        ..
    } = *accumulator;
    let pair = |data: &[f32], at: usize| data[at] as f64 + data[at + 1] as f64;
    (0..heads)
        .map(|h| {
            let mut gram = vec![0.0f64; cols * cols];
            let mut column_sums = vec![0.0f64; cols];
            if rows > 0 {
                for chunk in 0..chunks {
                    let block = chunk * heads + h;
                    for i in 0..cols {
                        // Only j ≥ i was computed; the lower triangle mirrors it.
                        for j in i..cols {
                            gram[i * cols + j] +=
                                pair(partial, ((block * cols + i) * cols + j) * 2);
                        }
                        column_sums[i] += pair(sums, (block * cols + i) * 2);
                    }
                }
            }
            for i in 0..cols {
                for j in 0..i {
                    gram[i * cols + j] = gram[j * cols + i];
                }
            }
            HeadGram {
                gram,
                sums: column_sums,
                rows,
            }
        })
        .collect()
}

fn summary(info: &wgpu::AdapterInfo) -> String {
    let backend = match info.backend {
        wgpu::Backend::Vulkan => "Vulkan",
        wgpu::Backend::Metal => "Metal",
        wgpu::Backend::Dx12 => "DX12",
        wgpu::Backend::Gl => "OpenGL",
        wgpu::Backend::BrowserWebGpu => "WebGPU",
        wgpu::Backend::Noop => "no-op",
    };
    let name = if info.name.is_empty() {
        "unnamed adapter"
    } else {
        &info.name
    };
    format!("{name} ({backend})")
}
