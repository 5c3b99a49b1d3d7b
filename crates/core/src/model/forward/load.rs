//! [`ModelWeights`]: a checkpoint's weights, read layer by layer by byte range
//! (never the whole file at once), each fetched by name with a shape check.
//! Weight matrices of a bf16 checkpoint stay bf16 where the matrix product widens them as it
//! packs them ([`keeps_bf16`]); everything else is upcast to f32 once.

use super::kernels::{keeps_bf16, Matrix, Norm};
use super::ForwardError;
use crate::model::arch::{Architecture, BiasLoc, Family, LayerTensors, WeightLoc};
use crate::model::tensors::{Shards, WeightValues};
use crate::source::AsyncByteSource;

/// The MLP of one block.
#[derive(Debug, Clone)]
pub(super) enum Mlp {
    /// Reference: `down(relu(up(x))²)`.
    SquaredRelu { up: Matrix, down: Matrix },
    /// Llama: `down(act(gate(x)) · up(x))`, act = silu for SwiGLU.
    SwiGlu {
        gate: Matrix,
        up: Matrix,
        down: Matrix,
    },
    /// GPT-2: `proj(act(fc(x)))`.
    Plain { fc: Matrix, proj: Matrix },
}

/// One transformer block's weights (matrices f32 or kept bf16, see [`Matrix`]).
#[derive(Debug, Clone)]
pub(super) struct LayerSpectra {
    pub w_q: Matrix,
    pub w_k: Matrix,
    pub w_v: Matrix,
    pub w_o: Matrix,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub attn_norm: Option<Norm>,
    pub mlp_norm: Option<Norm>,
    pub mlp: Mlp,
    /// Sliding-window size ([`LayerTensors::window`]).
    pub window: Option<usize>,
}

/// A model ready to run: its [`Architecture`] and every weight, in f32 or, for the matrices
/// of a bf16 checkpoint where [`keeps_bf16`], as stored.
#[derive(Debug, Clone)]
pub struct ModelWeights {
    arch: Architecture,
    pub(super) embedding: Matrix,
    /// The output head when it is not the embedding.
    lm_head: Option<Matrix>,
    pub(super) final_norm: Option<Norm>,
    /// Learned positions `[n_positions, d_model]` (GPT-2), added to the token embedding.
    pub(super) position_embedding: Option<Matrix>,
    pub(super) layers: Vec<LayerSpectra>,
}

impl ModelWeights {
    /// Reads every weight `arch` names from `shards`, one layer at a time;
    /// `progress` gets 0..=1 after each layer. A model whose
    /// [`Architecture::no_forward_pass`] says why it cannot run is
    /// [`ForwardError::Unsupported`] before anything is read.
    pub async fn load<S: AsyncByteSource>(
        shards: &Shards<'_, S>,
        arch: &Architecture,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Self, ForwardError> {
        if let Some(why) = &arch.no_forward_pass {
            return Err(ForwardError::Unsupported {
                family: arch.family.label(),
                why: why.clone(),
            });
        }
        let d = arch.d_model;
        let embedding = matrix(shards, &whole(&arch.embedding), [arch.vocab, d]).await?;
        let lm_head = if has_own_lm_head(arch) {
            Some(matrix(shards, &whole(&arch.lm_head), [arch.vocab, d]).await?)
        } else {
            None
        };
        let final_norm = final_norm(shards, arch).await?;
        let position_embedding = position_embedding(shards, arch).await?;

        let mut layers = Vec::with_capacity(arch.n_layers);
        for l in 0..arch.n_layers {
            layers.push(read_layer(shards, arch, l).await?);
            progress((l + 1) as f64 / arch.n_layers.max(1) as f64);
        }
        Ok(Self {
            arch: arch.clone(),
            embedding,
            lm_head,
            final_norm,
            position_embedding,
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

/// Reads block `l`'s weights (checked against `arch`'s shapes): what
/// [`ModelWeights::load`] keeps for every block and a streamed pass holds for one.
pub(super) async fn read_layer<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    arch: &Architecture,
    l: usize,
) -> Result<LayerSpectra, ForwardError> {
    let (d, d_k, d_ff) = (arch.d_model, arch.d_k, arch.d_ff);
    let q_rows = arch.n_heads * d_k;
    let kv_rows = arch.n_kv_heads * d_k;
    let t = arch
        .layers
        .get(l)
        .ok_or_else(|| ForwardError::MissingTensor(format!("layer {l}")))?;
    let mlp_name = |i: usize| {
        t.mlp
            .get(i)
            .ok_or_else(|| ForwardError::MissingTensor(format!("layer {l} MLP weight #{i}")))
    };
    let mlp = match arch.family {
        Family::Reference => Mlp::SquaredRelu {
            up: matrix(shards, &whole(mlp_name(0)?), [d_ff, d]).await?,
            down: matrix(shards, &whole(mlp_name(1)?), [d, d_ff]).await?,
        },
        // Meta's `[w1, w3, w2]` are gate, up and down.
        Family::Llama | Family::MetaLlama => Mlp::SwiGlu {
            gate: matrix(shards, &whole(mlp_name(0)?), [d_ff, d]).await?,
            up: matrix(shards, &whole(mlp_name(1)?), [d_ff, d]).await?,
            down: matrix(shards, &whole(mlp_name(2)?), [d, d_ff]).await?,
        },
        // Conv1D `[in, out]`: the `[out, in]` matrix is the transpose of all its columns.
        Family::Gpt2 => Mlp::Plain {
            fc: matrix(shards, &all_cols(mlp_name(0)?, d_ff), [d_ff, d]).await?,
            proj: matrix(shards, &all_cols(mlp_name(1)?, d), [d, d_ff]).await?,
        },
    };
    let mlp = with_mlp_biases(shards, t, mlp).await?;
    let b = &t.biases;
    Ok(LayerSpectra {
        w_q: biased(shards, matrix(shards, &t.w_q, [q_rows, d]).await?, &b.q).await?,
        w_k: biased(shards, matrix(shards, &t.w_k, [kv_rows, d]).await?, &b.k).await?,
        w_v: biased(shards, matrix(shards, &t.w_v, [kv_rows, d]).await?, &b.v).await?,
        w_o: biased(shards, matrix(shards, &t.w_o, [d, q_rows]).await?, &b.o).await?,
        q_norm: optional_vector(shards, t.q_norm.as_deref(), d_k).await?,
        k_norm: optional_vector(shards, t.k_norm.as_deref(), d_k).await?,
        attn_norm: norm(
            shards,
            arch,
            t.attn_norm.as_deref(),
            b.attn_norm.as_deref(),
            d,
        )
        .await?,
        mlp_norm: norm(
            shards,
            arch,
            t.mlp_norm.as_deref(),
            b.mlp_norm.as_deref(),
            d,
        )
        .await?,
        mlp,
        window: t.window,
    })
}

/// The final norm (γ and, for LayerNorm, β), when the architecture names one.
async fn final_norm<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    arch: &Architecture,
) -> Result<Option<Norm>, ForwardError> {
    norm(
        shards,
        arch,
        arch.final_norm.as_deref(),
        arch.final_norm_bias.as_deref(),
        arch.d_model,
    )
    .await
}

/// The learned position table (GPT-2), when the architecture has one; small
/// (`n_positions × d_model`), so a streamed pass reads it whole too.
pub(super) async fn position_embedding<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    arch: &Architecture,
) -> Result<Option<Matrix>, ForwardError> {
    match &arch.position_embedding {
        Some(name) => Ok(Some(position_table(shards, name, arch.d_model).await?)),
        None => Ok(None),
    }
}

/// Whether the output head is a tensor of its own (else it is the embedding).
fn has_own_lm_head(arch: &Architecture) -> bool {
    arch.lm_head != arch.embedding && !arch.tied_lm_head
}

/// The final norm and the output head `[vocab, d_model]` (the embedding when tied):
/// what a streamed pass reads after the last block, only when it needs logits.
pub(super) async fn read_head<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    arch: &Architecture,
) -> Result<(Option<Norm>, Matrix), ForwardError> {
    let d = arch.d_model;
    let name = if has_own_lm_head(arch) {
        &arch.lm_head
    } else {
        &arch.embedding
    };
    let head = matrix(shards, &whole(name), [arch.vocab, d]).await?;
    Ok((final_norm(shards, arch).await?, head))
}

/// The embedding rows of some token ids, f32: all a streamed pass needs of the embedding
/// (4 KB a token at d_model 1024, where the whole table is 64 MB–1 GB).
#[derive(Debug, Default)]
pub struct EmbeddingRows {
    /// Sorted, distinct.
    ids: Vec<u32>,
    /// `[ids.len(), d_model]`.
    data: Vec<f32>,
    d: usize,
}

impl EmbeddingRows {
    /// Reads the rows of `ids` (checked below the vocabulary) in runs of nearby ids (at most
    /// [`EMBEDDING_GAP_ROWS`] apart), each run one byte range of at most
    /// [`EMBEDDING_CHUNK_BYTES`] (as f32): few reads for a batch touching most of the
    /// vocabulary, little read besides the rows for a short batch, never more than a chunk
    /// held besides the rows.
    pub async fn read<S: AsyncByteSource>(
        shards: &Shards<'_, S>,
        arch: &Architecture,
        ids: impl IntoIterator<Item = u32>,
    ) -> Result<Self, ForwardError> {
        let d = arch.d_model;
        let shape = shards.shape(&arch.embedding)?;
        if shape != [arch.vocab, d] {
            return Err(ForwardError::ShapeMismatch {
                tensor: arch.embedding.clone(),
                expected: vec![arch.vocab, d],
                found: shape,
            });
        }
        let mut ids: Vec<u32> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let per_chunk = (EMBEDDING_CHUNK_BYTES / (4 * d.max(1))).max(1);
        let mut data = Vec::with_capacity(ids.len() * d);
        let mut i = 0;
        while i < ids.len() {
            let first = ids[i] as usize;
            let run = 1 + ids[i..]
                .windows(2)
                .take_while(|w| {
                    (w[1] - w[0]) as usize <= EMBEDDING_GAP_ROWS
                        && (w[1] as usize) < first + per_chunk
                })
                .count();
            let last = ids[i + run - 1] as usize;
            let loc = WeightLoc::Rows {
                tensor: arch.embedding.clone(),
                start: first,
                end: last + 1,
            };
            let block = matrix(shards, &loc, [last + 1 - first, d]).await?;
            for &id in &ids[i..i + run] {
                let at = (id as usize - first) * d;
                data.resize(data.len() + d, 0.0);
                let end = data.len();
                block.values.widen_into(at..at + d, &mut data[end - d..]);
            }
            i += run;
        }
        Ok(Self { ids, data, d })
    }

    /// The row of `id`, which [`EmbeddingRows::read`] was given.
    pub fn row(&self, id: u32) -> &[f32] {
        match self.ids.binary_search(&id) {
            Ok(i) => &self.data[i * self.d..(i + 1) * self.d],
            Err(_) => &[],
        }
    }
}

/// Most bytes (as f32) of embedding rows read at once by [`EmbeddingRows::read`].
const EMBEDDING_CHUNK_BYTES: usize = 16 << 20;

/// Rows between two ids read in one range rather than two (a read's own cost is worth a few
/// rows, more for a Blob or an HTTP range request than for a file).
const EMBEDDING_GAP_ROWS: usize = 16;

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
    let (values, r, c) = shards.read_block_values(loc, keeps_bf16()).await?;
    if (r, c) != (rows, cols) {
        return Err(ForwardError::ShapeMismatch {
            tensor: describe(loc),
            expected: vec![rows, cols],
            found: vec![r, c],
        });
    }
    Ok(Matrix {
        values,
        rows,
        cols,
        bias: None,
    })
}

/// All columns `0..out` of a Conv1D tensor stored `[in, out]`.
fn all_cols(name: &str, out: usize) -> WeightLoc {
    WeightLoc::Cols {
        tensor: name.to_string(),
        start: 0,
        end: out,
    }
}

/// `m` with its bias, when the architecture names one (`[m.rows]`, a range of a stored vector).
async fn biased<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    mut m: Matrix,
    bias: &Option<BiasLoc>,
) -> Result<Matrix, ForwardError> {
    if let Some(loc) = bias {
        let (data, shape) = shards.read_tensor_f32(&loc.tensor).await?;
        let block = data
            .get(loc.start..loc.end)
            .filter(|b| b.len() == m.rows && shape.len() == 1)
            .ok_or_else(|| ForwardError::ShapeMismatch {
                tensor: format!("{} [{}..{}]", loc.tensor, loc.start, loc.end),
                expected: vec![m.rows],
                found: shape.clone(),
            })?;
        m.bias = Some(block.to_vec());
    }
    Ok(m)
}

/// The MLP with the biases of [`LayerTensors::biases`] (one per MLP tensor, same order).
async fn with_mlp_biases<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    t: &LayerTensors,
    mlp: Mlp,
) -> Result<Mlp, ForwardError> {
    let b = |i: usize| t.biases.mlp.get(i).cloned().flatten();
    Ok(match mlp {
        Mlp::SquaredRelu { up, down } => Mlp::SquaredRelu {
            up: biased(shards, up, &b(0)).await?,
            down: biased(shards, down, &b(1)).await?,
        },
        Mlp::SwiGlu { gate, up, down } => Mlp::SwiGlu {
            gate: biased(shards, gate, &b(0)).await?,
            up: biased(shards, up, &b(1)).await?,
            down: biased(shards, down, &b(2)).await?,
        },
        Mlp::Plain { fc, proj } => Mlp::Plain {
            fc: biased(shards, fc, &b(0)).await?,
            proj: biased(shards, proj, &b(1)).await?,
        },
    })
}

/// A pre-norm / final norm of the architecture's kind: γ `[len]` and an optional β `[len]`.
async fn norm<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    arch: &Architecture,
    gamma: Option<&str>,
    beta: Option<&str>,
    len: usize,
) -> Result<Option<Norm>, ForwardError> {
    let Some(gamma) = optional_vector(shards, gamma, len).await? else {
        return Ok(None);
    };
    Ok(Some(Norm {
        kind: arch.norm,
        gamma,
        beta: optional_vector(shards, beta, len).await?,
    }))
}

/// The learned position table `[n_positions, d_model]`.
async fn position_table<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    name: &str,
    d: usize,
) -> Result<Matrix, ForwardError> {
    let (data, shape) = shards.read_tensor_f32(name).await?;
    match shape[..] {
        [rows, cols] if cols == d => Ok(Matrix {
            values: WeightValues::F32(data),
            rows,
            cols,
            bias: None,
        }),
        _ => Err(ForwardError::ShapeMismatch {
            tensor: name.to_string(),
            expected: vec![0, d],
            found: shape,
        }),
    }
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

// Reads the families' test models from files.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::formats::safetensors::read_header;
    use crate::formats::tokens::TokenBatch;
    use crate::model::arch::{recognise, Recognition};
    use crate::model::forward::KeyCollector;
    use crate::source::{block_on, FileSource};

    fn widened(m: &Matrix) -> Matrix {
        Matrix {
            values: WeightValues::F32(m.values.to_f32().into_owned()),
            ..m.clone()
        }
    }

    /// The same model with every weight widened to f32 when loaded.
    fn all_f32(model: &ModelWeights) -> ModelWeights {
        let mut out = model.clone();
        out.embedding = widened(&model.embedding);
        out.lm_head = model.lm_head.as_ref().map(widened);
        for layer in &mut out.layers {
            for m in [
                &mut layer.w_q,
                &mut layer.w_k,
                &mut layer.w_v,
                &mut layer.w_o,
            ] {
                *m = widened(m);
            }
            layer.mlp = match &layer.mlp {
                Mlp::SquaredRelu { up, down } => Mlp::SquaredRelu {
                    up: widened(up),
                    down: widened(down),
                },
                Mlp::SwiGlu { gate, up, down } => Mlp::SwiGlu {
                    gate: widened(gate),
                    up: widened(up),
                    down: widened(down),
                },
                Mlp::Plain { fc, proj } => Mlp::Plain {
                    fc: widened(fc),
                    proj: widened(proj),
                },
            };
        }
        out
    }

    fn same_keys(a: &KeyCollector, b: &KeyCollector, arch: &Architecture, case: &str) {
        for l in 0..arch.n_layers {
            for h in 0..arch.n_kv_heads {
                for (what, x, y) in [
                    ("K", a.keys(l, h), b.keys(l, h)),
                    ("raw K", a.raw_keys(l, h), b.raw_keys(l, h)),
                    (
                        "K after RoPE",
                        a.post_rope_keys(l, h),
                        b.post_rope_keys(l, h),
                    ),
                ] {
                    assert!(!x.is_empty(), "{case}: no {what} at layer {l} head {h}");
                    assert!(
                        x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
                        "{case}: {what} of layer {l} kv-head {h} differs"
                    );
                }
            }
            for h in 0..arch.n_heads {
                let (x, y) = (a.queries(l, h), b.queries(l, h));
                assert!(
                    x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{case}: Q of layer {l} head {h} differs"
                );
            }
        }
    }

    /// BF16 checkpoints (the families' test models: biases, q/k norms, a sliding window, GPT-2's
    /// Conv1D columns and learned positions) loaded as they are kept — bf16 where the product
    /// widens as it packs — give the logits, keys and queries of the same weights widened to f32
    /// when loaded, bit for bit.
    #[test]
    fn bf16_weights_kept_as_stored_compute_what_their_f32_widening_computes() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/families");
        for case in ["qwen3", "qwen2", "mistral", "gpt2"] {
            let config: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(format!("{data}/{case}/config.json")).unwrap(),
            )
            .unwrap();
            let src = FileSource::open(format!("{data}/{case}/model.safetensors")).unwrap();
            let header = read_header(&src).unwrap();
            let tensors: Vec<_> = header
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect();
            let Recognition::Known(arch) = recognise(&tensors, &header.metadata, Some(&config))
            else {
                panic!("{case}: not recognised")
            };
            let kept = block_on(ModelWeights::load(
                &Shards::single(&header, &src),
                &arch,
                &mut |_| {},
            ))
            .unwrap();
            // GPT-2's attention weights are columns of its Conv1D `c_attn`, gathered as f32;
            // its embedding is a whole tensor, kept like every other model's.
            let bf16 = |m: &Matrix| matches!(m.values, WeightValues::Bf16(_));
            assert_eq!(bf16(&kept.embedding), keeps_bf16(), "{case}: the embedding");
            assert_eq!(
                bf16(&kept.layers[0].w_q),
                keeps_bf16() && case != "gpt2",
                "{case}: W_q"
            );
            let f32s = all_f32(&kept);
            assert!(!bf16(&f32s.embedding) && !bf16(&f32s.layers[0].w_q));
            let t = 12;
            let ids: Vec<u32> = (0..2 * t)
                .map(|i| ((i * 7919 + 13) % arch.vocab) as u32)
                .collect();
            let (a, b) = (
                kept.forward(&ids[..t], &mut super::super::NoProbe, None)
                    .unwrap(),
                f32s.forward(&ids[..t], &mut super::super::NoProbe, None)
                    .unwrap(),
            );
            assert!(
                a.data
                    .iter()
                    .zip(&b.data)
                    .all(|(p, q)| p.to_bits() == q.to_bits()),
                "{case}: logits differ"
            );
            let batch = TokenBatch {
                batch: 2,
                seq_len: t,
                ids,
            };
            same_keys(
                &kept.collect_keys(&batch, None).unwrap(),
                &f32s.collect_keys(&batch, None).unwrap(),
                &arch,
                case,
            );
        }
    }
}
