//! [`ModelWeights`]: a checkpoint's weights, read layer by layer by byte range
//! (never the whole file at once), each fetched by name with a shape check
//! and upcast to f32 once.

use super::kernels::Matrix;
use super::ForwardError;
use crate::model::arch::{Architecture, Family, WeightLoc};
use crate::model::tensors::Shards;
use crate::source::AsyncByteSource;

/// The MLP of one block.
#[derive(Debug, Clone)]
pub(super) enum Mlp {
    /// Reference: `down(relu(up(x))²)`.
    SquaredRelu { up: Matrix, down: Matrix },
    /// Llama: `down(silu(gate(x)) · up(x))`.
    SwiGlu {
        gate: Matrix,
        up: Matrix,
        down: Matrix,
    },
}

/// One transformer block's weights, f32.
#[derive(Debug, Clone)]
pub(super) struct LayerWeights {
    pub w_q: Matrix,
    pub w_k: Matrix,
    pub w_v: Matrix,
    pub w_o: Matrix,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub attn_norm: Option<Vec<f32>>,
    pub mlp_norm: Option<Vec<f32>>,
    pub mlp: Mlp,
}

/// A model ready to run: its [`Architecture`] and every weight in f32.
#[derive(Debug, Clone)]
pub struct ModelWeights {
    arch: Architecture,
    pub(super) embedding: Matrix,
    /// The output head when it is not the embedding.
    lm_head: Option<Matrix>,
    pub(super) final_norm: Option<Vec<f32>>,
    pub(super) layers: Vec<LayerWeights>,
}

impl ModelWeights {
    /// Reads every weight `arch` names from `shards`, one layer at a time;
    /// `progress` gets 0..=1 after each layer. GPT-2 is
    /// [`ForwardError::Unsupported`] for now.
    pub async fn load<S: AsyncByteSource>(
        shards: &Shards<'_, S>,
        arch: &Architecture,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Self, ForwardError> {
        if arch.family == Family::Gpt2 {
            return Err(ForwardError::Unsupported(arch.family.label()));
        }
        let (d, d_k, d_ff) = (arch.d_model, arch.d_k, arch.d_ff);
        let q_rows = arch.n_heads * d_k;
        let kv_rows = arch.n_kv_heads * d_k;
        let embedding = matrix(shards, &whole(&arch.embedding), [arch.vocab, d]).await?;
        let lm_head = if arch.lm_head != arch.embedding && !arch.tied_lm_head {
            Some(matrix(shards, &whole(&arch.lm_head), [arch.vocab, d]).await?)
        } else {
            None
        };
        let final_norm = optional_vector(shards, arch.final_norm.as_deref(), d).await?;

        let mut layers = Vec::with_capacity(arch.n_layers);
        for (l, t) in arch.layers.iter().enumerate() {
            let mlp_name = |i: usize| {
                t.mlp.get(i).ok_or_else(|| {
                    ForwardError::MissingTensor(format!("layer {l} MLP weight #{i}"))
                })
            };
            let mlp = match arch.family {
                Family::Reference => Mlp::SquaredRelu {
                    up: matrix(shards, &whole(mlp_name(0)?), [d_ff, d]).await?,
                    down: matrix(shards, &whole(mlp_name(1)?), [d, d_ff]).await?,
                },
                Family::Llama => Mlp::SwiGlu {
                    gate: matrix(shards, &whole(mlp_name(0)?), [d_ff, d]).await?,
                    up: matrix(shards, &whole(mlp_name(1)?), [d_ff, d]).await?,
                    down: matrix(shards, &whole(mlp_name(2)?), [d, d_ff]).await?,
                },
                Family::Gpt2 => return Err(ForwardError::Unsupported(arch.family.label())),
            };
            layers.push(LayerWeights {
                w_q: matrix(shards, &t.w_q, [q_rows, d]).await?,
                w_k: matrix(shards, &t.w_k, [kv_rows, d]).await?,
                w_v: matrix(shards, &t.w_v, [kv_rows, d]).await?,
                w_o: matrix(shards, &t.w_o, [d, q_rows]).await?,
                q_norm: optional_vector(shards, t.q_norm.as_deref(), d_k).await?,
                k_norm: optional_vector(shards, t.k_norm.as_deref(), d_k).await?,
                attn_norm: optional_vector(shards, t.attn_norm.as_deref(), d).await?,
                mlp_norm: optional_vector(shards, t.mlp_norm.as_deref(), d).await?,
                mlp,
            });
            progress((l + 1) as f64 / arch.n_layers.max(1) as f64);
        }
        Ok(Self {
            arch: arch.clone(),
            embedding,
            lm_head,
            final_norm,
            layers,
        })
    }

    /// The architecture the weights were loaded for.
    pub fn arch(&self) -> &Architecture {
        &self.arch
    }

    /// The key norm's weight γ of `layer` (length d_k), `None` without a key norm.
    pub fn key_norm_weight(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer)?.k_norm.as_deref()
    }

    /// The output head `[vocab, d_model]`: its own tensor, or the embedding when tied.
    pub(super) fn lm_head(&self) -> &Matrix {
        self.lm_head.as_ref().unwrap_or(&self.embedding)
    }
}

fn whole(name: &str) -> WeightLoc {
    WeightLoc::Whole {
        tensor: name.to_string(),
    }
}

/// A weight block read and checked against `[rows, cols]`.
async fn matrix<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    loc: &WeightLoc,
    [rows, cols]: [usize; 2],
) -> Result<Matrix, ForwardError> {
    let (data, r, c) = shards.read_block(loc).await?;
    if (r, c) != (rows, cols) {
        return Err(ForwardError::ShapeMismatch {
            tensor: describe(loc),
            expected: vec![rows, cols],
            found: vec![r, c],
        });
    }
    Ok(Matrix { data, rows, cols })
}

/// A norm weight `[len]`, when the architecture names one.
async fn optional_vector<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    name: Option<&str>,
    len: usize,
) -> Result<Option<Vec<f32>>, ForwardError> {
    let Some(name) = name else { return Ok(None) };
    let (data, shape) = shards.read_tensor_f32(name).await?;
    if shape != [len] {
        return Err(ForwardError::ShapeMismatch {
            tensor: name.to_string(),
            expected: vec![len],
            found: shape,
        });
    }
    Ok(Some(data))
}

/// A tensor name, with the block when only part of it is used.
fn describe(loc: &WeightLoc) -> String {
    match loc {
        WeightLoc::Whole { tensor } => tensor.clone(),
        WeightLoc::Rows { tensor, start, end } => format!("{tensor} rows {start}..{end}"),
        WeightLoc::Cols { tensor, start, end } => format!("{tensor} columns {start}..{end}"),
    }
}
