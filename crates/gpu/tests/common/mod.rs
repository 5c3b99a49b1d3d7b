//! What the GPU test files share: the adapter (opened once per test binary; none is a
//! failure, never a skip) and the fixture models and token batches.
#![allow(dead_code)] // each test binary uses its own part

use std::sync::OnceLock;

use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::source::{block_on, FileSource};
use rankscope_gpu::Gpu;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
/// The core's tiny transformers-made models of other families (`make_family_cases.py`).
pub const FAMILIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/data/families");

/// The GPU adapter; a machine without one fails the test that asks, naming the fix.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = pollster::block_on(Gpu::new()).unwrap_or_else(|e| {
            panic!("the GPU tests need a GPU adapter and found none: {e}. On Debian/Ubuntu `apt-get install mesa-vulkan-drivers libvulkan1` gives lavapipe (software Vulkan).")
        });
        eprintln!("adapter: {}", gpu.adapter_summary());
        gpu
    })
}

/// The model at `relative` (under the fixtures), recognised with `config` when given.
pub fn load(relative: &str, config: Option<&serde_json::Value>) -> ModelWeights {
    load_path(&format!("{FIXTURES}/{relative}"), config)
}

/// The model at `path`, recognised with `config` when given.
pub fn load_path(path: &str, config: Option<&serde_json::Value>) -> ModelWeights {
    let src = FileSource::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header = read_header(&src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, config) else {
        panic!("{path} not recognised")
    };
    block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("load weights")
}

/// The token batch `name` (under the fixtures).
pub fn tokens(name: &str) -> TokenBatch {
    parse_tokens_safetensors(&FileSource::open(format!("{FIXTURES}/{name}")).expect("open tokens"))
        .expect("tokens")
}
