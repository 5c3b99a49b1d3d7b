//! The model: what architecture a checkpoint holds, where each layer's
//! W_q, W_k and key-norm γ live among its tensors, and the forward pass.

pub mod arch;
pub mod forward;
pub mod names;
pub mod tensors;
