//! Status lines in the user's terms: where the analysis ran (one line per
//! engine, with counts), failures grouped by their message, and the progress
//! of long jobs with an estimate of the time left. Plain data and pure
//! functions, so the components only render what these say.

use rankscope_core::analysis::pipeline::SpectraFailure;
use std::collections::BTreeMap;

/// Where one checkpoint's forward passes ran, in a browser user's terms.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Engine {
    /// On the GPU through WebGPU; the adapter as the engine named it.
    Gpu(String),
    /// On the CPU, and why not on the GPU.
    Cpu(CpuReason),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuReason {
    /// The user turned WebGPU off.
    Chosen,
    /// The browser has no `navigator.gpu`.
    NotOffered,
    /// WebGPU exists but gave no adapter (blocklisted GPU, flags off, …).
    NoAdapter,
    /// Anything else the engine said (a GPU that failed on a model, …).
    Other(String),
}

/// The engine labels of the core ("GPU: <adapter> (WebGPU)",
/// "CPU (WebAssembly)", "CPU (WebAssembly) (<why not the GPU>)") read as an
/// [`Engine`]. `gpu_asked`: whether the job asked for the GPU;
/// `webgpu_offered`: whether this browser has `navigator.gpu`.
pub fn classify_engine(label: &str, gpu_asked: bool, webgpu_offered: bool) -> Engine {
    if let Some(adapter) = label.strip_prefix("GPU: ") {
        return Engine::Gpu(adapter.to_string());
    }
    if !gpu_asked {
        return Engine::Cpu(CpuReason::Chosen);
    }
    if !webgpu_offered {
        return Engine::Cpu(CpuReason::NotOffered);
    }
    // "CPU (WebAssembly) (why)": the reason is what follows the first ") (".
    let why = label
        .split_once(") (")
        .map(|(_, w)| w.trim_end_matches(')'))
        .unwrap_or("");
    if why.starts_with("no GPU adapter found") {
        return Engine::Cpu(CpuReason::NoAdapter);
    }
    // The engine's messages also advise native users (a Vulkan driver): not
    // what a browser user can act on.
    let why = why.split("; natively,").next().unwrap_or(why).trim();
    Engine::Cpu(if why.is_empty() {
        CpuReason::Chosen
    } else {
        CpuReason::Other(why.to_string())
    })
}

/// One status line: `text`, then optionally a pointer to help (`how_to`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    /// Set when the line ends in "— how to enable it" with an explanation.
    pub how_to: Option<&'static str>,
}

/// How to get WebGPU, for a line that says it is missing.
pub const WEBGPU_HELP: &str = "WebGPU runs the forward passes on your GPU. Chrome and Edge (113 and later) offer it on \
    Windows, macOS and ChromeOS; on Linux and Android turn on chrome://flags/#enable-unsafe-webgpu (and \
    chrome://flags/#enable-vulkan on Linux) and restart. Recent Safari and Firefox offer it on some systems. A GPU on \
    the browser's blocklist gives no adapter: chrome://gpu says why. Without it the CPU computes the same numbers, \
    only more slowly.";

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line per engine with how many checkpoints ran there (the CPU lines
/// say why not the GPU), in a stable order: GPUs first.
pub fn engine_lines(counts: &BTreeMap<Engine, usize>) -> Vec<Line> {
    counts
        .iter()
        .map(|(engine, &n)| {
            let n = plural(n, "checkpoint", "checkpoints");
            match engine {
                Engine::Gpu(adapter) => Line {
                    text: format!("GPU {adapter}: {n}"),
                    how_to: None,
                },
                Engine::Cpu(why) => {
                    let (why, how_to) = match why {
                        CpuReason::Chosen => ("WebGPU turned off below".to_string(), None),
                        CpuReason::NotOffered => (
                            "WebGPU not offered by this browser".to_string(),
                            Some(WEBGPU_HELP),
                        ),
                        CpuReason::NoAdapter => (
                            "this browser offers WebGPU but gave no GPU adapter".to_string(),
                            Some(WEBGPU_HELP),
                        ),
                        CpuReason::Other(why) => (why.clone(), None),
                    };
                    Line {
                        text: format!("CPU (WebAssembly): {n}; {why}"),
                        how_to,
                    }
                }
            }
        })
        .collect()
}

/// How the last analysis ran: on how many workers (or the main thread),
/// how many checkpoints it computed and how many it reused.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunnerNote {
    /// `Some(n)`: n Web Workers; `None` with `main_thread_why`: the main thread.
    pub workers: Option<usize>,
    pub main_thread_why: Option<String>,
    pub computed: usize,
    pub reused: usize,
}

impl RunnerNote {
    /// "CPU (WebAssembly), 4 Web Workers: 12 checkpoints; 24 unchanged checkpoints' results reused".
    pub fn line(&self) -> String {
        let mut out = match (&self.workers, &self.main_thread_why) {
            (Some(n), _) => format!(
                "CPU (WebAssembly), {}: {}",
                plural(*n, "Web Worker", "Web Workers"),
                plural(self.computed, "checkpoint", "checkpoints")
            ),
            (None, Some(why)) => format!(
                "CPU (WebAssembly) on the main thread (workers did not start: {why}): {}",
                plural(self.computed, "checkpoint", "checkpoints")
            ),
            (None, None) => "nothing to recompute".to_string(),
        };
        match self.reused {
            0 => {}
            1 => out.push_str("; 1 unchanged checkpoint's results reused"),
            n => out.push_str(&format!("; {n} unchanged checkpoints' results reused")),
        }
        out
    }
}

/// Failures with the same message, once: the message and every path it hit.
pub fn group_failures(failures: &[SpectraFailure]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for f in failures {
        match groups.iter_mut().find(|(m, _)| *m == f.message) {
            Some((_, paths)) => paths.push(f.path.clone()),
            None => groups.push((f.message.clone(), vec![f.path.clone()])),
        }
    }
    groups
}

/// A job running now: what it is, the stage it is in, and how far it got.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveJob {
    /// The checkpoint or run ("A1 · 81920 tokens").
    pub label: String,
    /// The worker's line ("forward pass on the eval batch: sequence 2 of 4").
    pub stage: String,
    /// 0..=1 of the whole job.
    pub fraction: f64,
    /// When it started (ms, `Date.now()`).
    pub started_ms: f64,
}

/// The progress of a batch of jobs (checkpoints, or Figures 3–5's runs).
#[derive(Clone, Debug, PartialEq)]
pub struct JobsProgress {
    /// What the batch computes ("Weight spectra and forward passes on the eval batch").
    pub title: String,
    /// What one job is ("checkpoint", "run").
    pub unit: (&'static str, &'static str),
    pub total: usize,
    pub finished: usize,
    pub started_ms: f64,
    /// Running jobs by their index in the batch.
    pub active: BTreeMap<usize, ActiveJob>,
}

/// Below this share done, or this soon after the start, a rate says too little to estimate from.
const MIN_FRACTION: f64 = 0.01;
const MIN_ELAPSED_MS: f64 = 1500.0;

/// Time left from the share done so far and the time it took: `None` until
/// there is enough to go on.
pub fn time_left_ms(fraction: f64, elapsed_ms: f64) -> Option<f64> {
    (fraction >= MIN_FRACTION && elapsed_ms >= MIN_ELAPSED_MS && fraction < 1.0)
        .then(|| elapsed_ms * (1.0 - fraction) / fraction)
}

/// "about 40 s left", "about 3 min left", "about 1 h 5 min left".
pub fn time_left_text(ms: Option<f64>) -> String {
    let Some(ms) = ms else {
        return "estimating the time left".into();
    };
    let s = (ms / 1000.0).ceil() as u64;
    match s {
        0..=4 => "a few seconds left".into(),
        5..=89 => format!("about {} s left", s.div_ceil(5) * 5),
        90..=3599 => format!("about {} min left", (s + 30) / 60),
        _ => format!("about {} h {} min left", s / 3600, (s % 3600 + 30) / 60),
    }
}

impl JobsProgress {
    pub fn new(
        title: impl Into<String>,
        unit: (&'static str, &'static str),
        total: usize,
        now_ms: f64,
    ) -> Self {
        Self {
            title: title.into(),
            unit,
            total,
            finished: 0,
            started_ms: now_ms,
            active: BTreeMap::new(),
        }
    }

    /// The share of the whole batch done: finished jobs plus the running ones' shares.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        let running: f64 = self
            .active
            .values()
            .map(|a| a.fraction.clamp(0.0, 1.0))
            .sum();
        ((self.finished as f64 + running) / self.total as f64).min(1.0)
    }

    /// Time left for the whole batch, at the rate so far (workers in parallel included).
    pub fn time_left_ms(&self, now_ms: f64) -> Option<f64> {
        time_left_ms(self.fraction(), now_ms - self.started_ms)
    }

    /// "3 of 36 checkpoints done".
    pub fn count_text(&self) -> String {
        format!(
            "{} of {} done",
            self.finished,
            plural(self.total, self.unit.0, self.unit.1)
        )
    }

    /// The stages running now, each once ("forward pass on the eval batch"):
    /// the part of each job's line before its count.
    pub fn stages_now(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in self.active.values() {
            let stage = a.stage.split(": ").next().unwrap_or(&a.stage).to_string();
            if !stage.is_empty() && !out.contains(&stage) {
                out.push(stage);
            }
        }
        out
    }

    /// A job reported progress (starting it when it is new).
    pub fn report(&mut self, i: usize, label: &str, stage: &str, fraction: f64, now_ms: f64) {
        let job = self.active.entry(i).or_insert_with(|| ActiveJob {
            label: label.to_string(),
            stage: String::new(),
            fraction: 0.0,
            started_ms: now_ms,
        });
        job.stage = stage.to_string();
        // A job's share only grows: a stage that restarts at 0 does not move the bar back.
        job.fraction = job.fraction.max(fraction);
    }

    /// A job finished (successfully or not).
    pub fn finish(&mut self, i: usize) {
        self.active.remove(&i);
        self.finished = (self.finished + 1).min(self.total);
    }
}

impl ActiveJob {
    pub fn time_left_ms(&self, now_ms: f64) -> Option<f64> {
        time_left_ms(self.fraction, now_ms - self.started_ms)
    }
}
