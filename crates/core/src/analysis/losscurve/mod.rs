//! Loss-curve diagnostics: what the run logs alone say about a run.
//!
//! Every quantity follows `shared/METRICS.md` ("Loss-curve diagnostics") and
//! issue 6:
//!
//! | module | what |
//! | --- | --- |
//! | [`axes`] | x-axes (step, tokens, progress t̂, cumulative lr) and the debiased EMA |
//! | [`residual`] | collapse residual against a reference curve (Early-Align, closed-form S) and its four patterns |
//! | [`consolidation`] | consolidation ratio C(t) = ‖∇L‖² / (2·D·d), its regimes and alerts |
//! | [`health`] | user-editable threshold rules (the RLAN set built in, by its metric names), healthy ranges, where rules fire |
//! | [`geometry`] | gradient-geometry metrics of DEQ/EP runs (cosines, penalty share, non-normality) and their rules |
//! | [`transitions`] | sudden drops (phase transitions) in a PR trajectory |
//! | [`figures`] | figure builders (loss curves, residual, C(t), health timeline, rank vs loss) |
//!
//! Nothing here reads files: everything takes a parsed
//! [`Series`](crate::formats::logs::Series) or plain `(x, y)` points.

pub mod axes;
pub mod consolidation;
pub mod figures;
pub mod geometry;
pub mod health;
pub mod residual;
pub mod transitions;
