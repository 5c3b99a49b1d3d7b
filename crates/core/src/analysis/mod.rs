//! Analysis of what the readers decoded: spectra of attention keys and weights.
//!
//! Every quantity follows `shared/METRICS.md` ("Spectral metrics of a matrix M").
//! [`spectrum`] turns matrices into singular values and singular values into the
//! rank-collapse metrics; [`powerlaw`] fits the heavy-tail exponent α that
//! WeightWatcher reports for weight matrices.

pub mod activations;
pub mod collapse;
pub mod collapse_figure;
pub mod compare;
pub mod conditions;
pub mod eigenvalues;
pub mod esd;
pub mod figure_runs;
pub mod gram_spectra;
pub mod importance;
pub mod jobs;
pub mod losscurve;
pub mod numpy_rng;
pub mod pipeline;
pub mod powerlaw;
pub mod replicate_figures;
pub mod results;
pub mod shard;
pub mod spectrum;
pub mod stats;
pub mod study_figures;
pub mod surgery;
pub mod surgery_verdict;
pub mod trajectory;
pub mod weights;
