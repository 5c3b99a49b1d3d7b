//! [`GpuEngine`]: the core's [`ForwardEngine`] on the GPU, for checkpoint jobs. It opens
//! the adapter once; each job uploads its model and runs the core's analysis over
//! [`GpuModel`] (the core's `ForwardBackend`); the activation spectra of a model past
//! [`GPU_WHOLE_MODEL_LIMIT`] stream it through the GPU block by block instead
//! ([`streamed_activation_spectra`]). Where there is no adapter, the model is not one the GPU
//! pass runs, or the GPU fails on it, the job's forward passes run on the CPU instead and the
//! label says why, so a user always gets numbers and always sees where they came from.

use rankscope_core::analysis::activations::{
    activation_spectra_on, ActivationError, ActivationSpectra, KeyVariant, Progress, Stage,
    BLOCK_BUDGET_BYTES,
};
use rankscope_core::analysis::jobs::{
    study_on, CpuEngine, ForwardEngine, StudyOptions, StudyOutput,
};
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::backend::cpu_label;
use rankscope_core::model::forward::{ForwardError, ModelWeights, StreamedModel};
use rankscope_core::source::AsyncByteSource;

use crate::stream::check_streamable;
use crate::{streamed_activation_spectra, Gpu, GpuModel};

/// Forward passes on the GPU when one opened, else on the CPU.
pub struct GpuEngine {
    gpu: Result<Gpu, String>,
    /// Most bytes of f32 weights the activation spectra upload whole; past it they stream.
    whole_model_limit: u64,
}

impl GpuEngine {
    /// Opens the GPU; never fails (without one, jobs run on the CPU).
    pub async fn new() -> Self {
        Self {
            gpu: Gpu::new().await.map_err(|e| e.to_string()),
            whole_model_limit: GPU_WHOLE_MODEL_LIMIT,
        }
    }

    /// The engine with activation spectra streaming every model past `bytes` of f32 weights
    /// block by block through the GPU rather than [`GPU_WHOLE_MODEL_LIMIT`] (tests set it tiny).
    pub fn with_whole_model_limit(mut self, bytes: u64) -> Self {
        self.whole_model_limit = bytes;
        self
    }

    /// The adapter in use, or why there is none.
    pub fn adapter(&self) -> Result<String, String> {
        self.gpu
            .as_ref()
            .map(Gpu::adapter_summary)
            .map_err(Clone::clone)
    }

    /// The model uploaded to the GPU when it can run there with sequences of each of
    /// `lengths`, else why not (for the CPU label).
    fn upload(&self, model: &ModelWeights, lengths: &[usize]) -> Result<GpuModel<'_>, String> {
        let gpu = self.gpu.as_ref().map_err(Clone::clone)?;
        let uploaded = GpuModel::upload(gpu, model).map_err(|e| e.to_string())?;
        for &t in lengths {
            uploaded.fits(t).map_err(|e| e.to_string())?;
        }
        Ok(uploaded)
    }
}

/// Most bytes of f32 weights the activation spectra upload whole (read into memory first); a
/// model past this (and past what a wasm worker's 4 GB can hold twice over) streams through the
/// GPU one block at a time instead, holding one block on the host and on the GPU.
pub const GPU_WHOLE_MODEL_LIMIT: u64 = 1 << 30;

/// Why a model of `bytes` was streamed: more than `limit` bytes of f32 weights.
fn too_large(bytes: u64, limit: u64) -> String {
    format!(
        "its {} of f32 weights are more than the {} uploaded whole",
        size(bytes),
        size(limit)
    )
}

/// `bytes` in GB, or in MB below 0.1 GB (a small model, or a test's limit).
fn size(bytes: u64) -> String {
    if bytes >= 100_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// "CPU (…) (why not the GPU)", as the page reads it.
fn cpu_because(why: &str) -> String {
    format!("{} ({why})", cpu_label())
}

impl ForwardEngine for GpuEngine {
    async fn activation_spectra<S: AsyncByteSource>(
        &self,
        streamed: &StreamedModel<'_, '_, S>,
        eval: &TokenBatch,
        heldout: Option<&TokenBatch>,
        variants: &[KeyVariant],
        progress: &mut dyn FnMut(Progress),
    ) -> (Result<ActivationSpectra, String>, String) {
        let bytes = streamed.f32_bytes();
        let why_not = match &self.gpu {
            Ok(gpu) if bytes > self.whole_model_limit => {
                let why = too_large(bytes, self.whole_model_limit);
                let run = stream(gpu, &why, streamed, eval, heldout, variants, progress);
                match run.await {
                    Ok(done) => return done,
                    Err(why_not) => {
                        format!(
                            "{why_not}; the forward pass was streamed block by block on the CPU"
                        )
                    }
                }
            }
            Ok(gpu) => match load(streamed, progress).await {
                Err(e) => return (Err(e), format!("GPU: {}", gpu.adapter_summary())),
                Ok(model) => match GpuModel::upload(gpu, &model) {
                    Err(e) => e.to_string(),
                    Ok(gpu_model) => {
                        let run = activation_spectra_on(
                            &gpu_model,
                            eval,
                            heldout,
                            variants,
                            BLOCK_BUDGET_BYTES,
                            progress,
                            &|| false,
                        );
                        match run.await {
                            Ok((spectra, _)) => {
                                return (Ok(spectra), format!("GPU: {}", gpu.adapter_summary()))
                            }
                            // The GPU failed: the CPU tries.
                            Err(ActivationError::Forward(ForwardError::Device(e))) => {
                                format!("the GPU failed: {e}")
                            }
                            // What the CPU would refuse too (a malformed batch): no second try.
                            Err(e) => {
                                return (
                                    Err(e.to_string()),
                                    format!("GPU: {}", gpu.adapter_summary()),
                                )
                            }
                        }
                    }
                },
            },
            Err(why) => why.clone(),
        };
        let (result, _) = CpuEngine
            .activation_spectra(streamed, eval, heldout, variants, progress)
            .await;
        (result, cpu_because(&why_not))
    }

    /// Figures 3–5 with the eval pass and every surgery pass on the GPU: the model uploaded
    /// once, each pass's key edit applied and its held-out loss reduced there.
    async fn study(
        &self,
        model: &ModelWeights,
        eval: &TokenBatch,
        heldout: &TokenBatch,
        options: &StudyOptions,
        progress: &mut dyn FnMut(&str, f64),
    ) -> StudyOutput {
        let why_not = match self.upload(model, &[eval.seq_len, heldout.seq_len]) {
            Ok(gpu_model) => {
                let out = study_on(model, &gpu_model, eval, heldout, options, progress).await;
                // A GPU that failed part-way (lost device, a read-back): the CPU does it all again.
                let gpu_failure = [out.layers.as_ref().err(), out.surgery.as_ref().err()]
                    .into_iter()
                    .flatten()
                    .find(|e| e.starts_with("GPU: "))
                    .cloned();
                match gpu_failure {
                    Some(e) => format!("the GPU failed: {e}"),
                    None => return out,
                }
            }
            Err(why) => why,
        };
        let mut out = study_on(model, model, eval, heldout, options, progress).await;
        out.engine = cpu_because(&why_not);
        out
    }
}

/// The activation spectra of a model too large to upload whole (`why`), streamed block by block
/// through `gpu`, with their label; or why not, for the CPU's label.
async fn stream<S: AsyncByteSource>(
    gpu: &Gpu,
    why: &str,
    streamed: &StreamedModel<'_, '_, S>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
) -> Result<(Result<ActivationSpectra, String>, String), String> {
    check_streamable(gpu, streamed, eval, heldout)
        .map_err(|e| format!("{why}, and the GPU cannot stream them block by block: {e}"))?;
    let label = format!(
        "GPU: {} (streamed block by block: {why})",
        gpu.adapter_summary()
    );
    let run =
        streamed_activation_spectra(gpu, streamed, eval, heldout, variants, progress, &|| false);
    match run.await {
        Ok((spectra, _)) => Ok((Ok(spectra), label)),
        // The GPU failed: the CPU tries.
        Err(ActivationError::Forward(ForwardError::Device(e))) => {
            Err(format!("{why}, and the GPU failed streaming them: {e}"))
        }
        // What the CPU would refuse too (a malformed batch): no second try.
        Err(e) => Ok((Err(e.to_string()), label)),
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
