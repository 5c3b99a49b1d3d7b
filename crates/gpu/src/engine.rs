//! [`GpuEngine`]: the core's [`ForwardEngine`] on the GPU, for checkpoint jobs. It opens
//! the adapter once; where there is none, or the GPU fails on a model, the job's forward
//! passes run on the CPU instead and the label says why, so a user always gets numbers
//! and always sees where they came from.

use rankscope_core::analysis::activations::{ActivationSpectra, KeyVariant, Progress};
use rankscope_core::analysis::jobs::{cpu_label, CpuEngine, ForwardEngine};
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::forward::ModelWeights;

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

impl ForwardEngine for GpuEngine {
    async fn activation_spectra(
        &self,
        model: &ModelWeights,
        eval: &TokenBatch,
        heldout: Option<&TokenBatch>,
        progress: &mut dyn FnMut(Progress),
    ) -> (Result<ActivationSpectra, String>, String) {
        let why_not = match &self.gpu {
            Ok(gpu) => match activation_spectra_gpu(
                gpu,
                model,
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
            Err(why) => why.clone(),
        };
        let (result, _) = CpuEngine
            .activation_spectra(model, eval, heldout, progress)
            .await;
        (result, format!("{} ({why_not})", cpu_label()))
    }
}
