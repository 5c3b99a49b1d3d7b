//! The model: what architecture a checkpoint holds, where each layer's
//! W_q, W_k and key-norm γ live among its tensors, the forward pass, and the
//! backend trait the analysis runs passes through ([`backend::ForwardBackend`]).

pub mod arch;
pub mod backend;
pub mod capture;
pub mod forward;
mod gram_kernel;
pub mod names;
pub mod tensors;
