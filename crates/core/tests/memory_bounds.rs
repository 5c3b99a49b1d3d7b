//! Memory linear in the input (issue 19, item 5), measured: a counting
//! allocator records the peak bytes live while a reader runs. The inputs
//! are generated here (not committed) and kept small; the bounds are far
//! below what the old readers took (a 498 KB JSONL that adds a key per line
//! took 6.8 GB; a JSON token array took ~40× its size).

// A global allocator is `unsafe impl` by definition; it only forwards to `System`.
#![allow(unsafe_code)]

use rankscope_core::formats::logs;
use rankscope_core::formats::tokens::parse_tokens_json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measurement at a time (tests run on threads of one process).
static SERIAL: Mutex<()> = Mutex::new(());

/// Peak bytes allocated beyond what was live before `f` ran.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

const MB: usize = 1 << 20;

/// 20 000 lines, each with a key no other line has, in JSONL, text and
/// TensorBoard form: the reader keeps the log within its cell budget.
#[test]
fn sparse_logs_stay_small() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = 20_000;
    let jsonl: String = (0..n)
        .map(|i| format!("{{\"step\": {i}, \"k{i}\": 1.5}}\n"))
        .collect();
    let text: String = (0..n).map(|i| format!("step:{i} k{i}:1.5\n")).collect();
    let mut events = Vec::new();
    for i in 0..n {
        use prost::Message;
        use rankscope_core::formats::logs::tfevents::{write_record, Event, Summary, SummaryValue};
        let value = SummaryValue {
            tag: format!("k{i}"),
            simple_value: Some(1.5),
            tensor: None,
        };
        let e = Event {
            wall_time: 0.0,
            step: i as i64,
            file_version: None,
            summary: Some(Summary { value: vec![value] }),
        };
        write_record(&mut events, &e.encode_to_vec());
    }
    for (name, bytes) in [
        ("metrics.jsonl", jsonl.as_bytes()),
        ("train.log", text.as_bytes()),
        ("events.out.tfevents.1", &events[..]),
    ] {
        let (parsed, peak) = peak_of(|| logs::parse(name, bytes));
        let series = parsed.unwrap_or_else(|e| panic!("{name}: {e}")).remove(0);
        let cells: usize = series.metrics.values().map(Vec::len).sum();
        eprintln!(
            "{name}: {} bytes, {} columns kept, {cells} cells, peak {:.1} MB",
            bytes.len(),
            series.metrics.len(),
            peak as f64 / MB as f64
        );
        assert!(peak < 160 * MB, "{name}: peak {peak} bytes");
        assert!(
            cells <= logs::MIN_CELL_BUDGET.max(bytes.len() * logs::CELLS_PER_BYTE) + n,
            "{name}: {cells} cells"
        );
        assert!(
            series
                .warnings
                .iter()
                .any(|w| w.contains("columns left out")),
            "{name}: {:?}",
            series.warnings
        );
    }
}

/// A JSON token array is read as a stream: the peak is the ids (4 bytes
/// each, with the vector's growth) and never a tree of the document.
#[test]
fn token_json_is_a_stream() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (rows, cols) = (64, 16_384);
    let row = vec!["1234"; cols].join(",");
    let json = format!("[{}]", vec![format!("[{row}]"); rows].join(","));
    let (batch, peak) = peak_of(|| parse_tokens_json(json.as_bytes()));
    let batch = batch.expect("parses");
    assert_eq!((batch.batch, batch.seq_len), (rows, cols));
    let ids_bytes = rows * cols * 4;
    eprintln!(
        "token JSON of {} bytes: peak {:.1} MB for {:.1} MB of ids",
        json.len(),
        peak as f64 / MB as f64,
        ids_bytes as f64 / MB as f64
    );
    // A serde_json::Value tree of it would take over 30 bytes an id.
    assert!(
        peak <= 3 * ids_bytes,
        "peak {peak} bytes for {ids_bytes} bytes of ids"
    );
}
