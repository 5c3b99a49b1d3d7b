//! The model: what architecture a checkpoint holds, and where each layer's
//! W_q, W_k and key-norm γ live among its tensors.

pub mod arch;
pub mod names;
