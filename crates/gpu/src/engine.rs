//! [`GpuEngine`]: the core's [`ForwardEngine`] on the GPU, for checkpoint jobs. It opens
//! the adapter once; where there is none, or the GPU fails on a model, the job's forward
//! passes run on the CPU instead and the label says why, so a user always gets numbers
//! and always sees where they came from.

use rankscope_core::analysis::activations::Stage;
use rankscope_core::analysis::activations::{ActivationSpectra, KeyVariant, Progress};
use rankscope_core::analysis::jobs::{cpu_label, CpuEngine, ForwardEngine};
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::forward::{ModelWeights, StreamedModel};
use rankscope_core::source::AsyncByteSource;

use crate::{activation_spectra_gpu, Gpu, GpuActivationError};

/// Forward passes on the GPU when one opened, else on the CPU.
pub struct GpuEngine {
    gpu: Result<Gpu, String>,
}

impl GpuEngine {
    /// Opens the GPU; never fails (without one, jobs run on the CPU).
    pub async fn new() -> Self {
        Self {
            gpu: Gpu::new().await.map_err(|e| e.to_string()),
        }
    }

    /// The adapter in use, or why there is none.
    pub fn adapter(&self) -> Result<String, String> {
        self.gpu
            .as_ref()
            .map(Gpu::adapter_summary)
            .map_err(Clone::clone)
    }
}

/// Most bytes of f32 weights the GPU path holds: it uploads the whole model, read into memory
/// first, so a model past this (and past what a wasm worker's 4 GB can hold twice over) runs
/// its forward pass streamed on the CPU instead, one block at a time.
pub const GPU_WHOLE_MODEL_LIMIT: u64 = 1 << 30;

impl ForwardEngine for GpuEngine {
    async fn activation_spectra<S: AsyncByteSource>(
        &self,
        streamed: &StreamedModel<'_, '_, S>,
        eval: &TokenBatch,
        heldout: Option<&TokenBatch>,
        progress: &mut dyn FnMut(Progress),
    ) -> (Result<ActivationSpectra, String>, String) {
        let bytes = streamed.f32_bytes();
        let why_not = match &self.gpu {
            Ok(_) if bytes > GPU_WHOLE_MODEL_LIMIT => format!(
                "the GPU path uploads the whole model and its {:.1} GB of f32 weights are more than {:.1} GB; the forward pass was streamed block by block",
                bytes as f64 / 1e9,
                GPU_WHOLE_MODEL_LIMIT as f64 / 1e9
            ),
            Ok(gpu) => match load(streamed, progress).await {
                Err(e) => return (Err(e), format!("GPU: {}", gpu.adapter_summary())),
                Ok(model) => match activation_spectra_gpu(
                gpu,
                &model,
                eval,
                heldout,
                &KeyVariant::ALL,
                progress,
                &|| false,
            )
            .await
            {
                Ok(spectra) => return (Ok(spectra), format!("GPU: {}", gpu.adapter_summary())),
                // What the CPU would refuse too (a malformed batch): no second try.
                Err(GpuActivationError::Activation(e)) => {
                    return (
                        Err(e.to_string()),
                        format!("GPU: {}", gpu.adapter_summary()),
                    )
                }
                Err(GpuActivationError::Gpu(e)) => format!("the GPU failed: {e}"),
            },
            },
            Err(why) => why.clone(),
        };
        let (result, _) = CpuEngine
            .activation_spectra(streamed, eval, heldout, progress)
            .await;
        (result, format!("{} ({why_not})", cpu_label()))
    }
}

/// The whole model read into memory for its upload, reporting [`Stage::Loading`] per layer.
async fn load<S: AsyncByteSource>(
    streamed: &StreamedModel<'_, '_, S>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ModelWeights, String> {
    let total = streamed.arch().n_layers;
    streamed
        .load(&mut |f| {
            progress(Progress {
                stage: Stage::Loading,
                done: (f * total as f64).round() as usize,
                total,
            })
        })
        .await
        .map_err(|e| e.to_string())
}
