//! The inventory as a table: one row per file, in-progress files first with a
//! progress bar, then every inspected file with what it is and its status.

use super::human_size;
use super::sortable::{sort_rows, SortBy, SortHeader, SortKey};
use crate::state::{Pending, Workspace};
use leptos::prelude::*;
use rankscope_core::figures::format_number;
use rankscope_core::inventory::{FileEntry, Status};

/// The table's columns: header, and whether it holds numbers (sorted as numbers, right-aligned).
const COLUMNS: [(&str, bool); 10] = [
    ("file", false),
    ("kind", false),
    ("run", false),
    ("step", true),
    ("tokens", true),
    ("size", true),
    ("dtype", false),
    ("tensors", true),
    ("architecture / content", false),
    ("status", false),
];

/// What one inspected row shows (plain strings: cheap to compare and render), and the
/// numbers its numeric columns sort by.
#[derive(Clone, PartialEq)]
struct Row {
    path: String,
    kind: &'static str,
    run: String,
    step: String,
    tokens: String,
    size: String,
    dtype: String,
    tensors: String,
    about: String,
    status: &'static str,
    messages: Vec<String>,
    /// step, tokens, size in bytes, tensors.
    numbers: [Option<f64>; 4],
}

impl Row {
    /// What column `c` sorts by (see [`COLUMNS`]).
    fn key(&self, c: usize) -> SortKey {
        match c {
            0 => SortKey::text(&self.path),
            1 => SortKey::text(self.kind),
            2 => SortKey::text(&self.run),
            3 => SortKey::num(self.numbers[0]),
            4 => SortKey::num(self.numbers[1]),
            5 => SortKey::num(self.numbers[2]),
            6 => SortKey::text(&self.dtype),
            7 => SortKey::num(self.numbers[3]),
            8 => SortKey::text(&self.about),
            _ => SortKey::text(self.status),
        }
    }
}

fn row_of(f: &FileEntry) -> Row {
    let num = |v: Option<u64>| v.map(|x| format_number(x as f64)).unwrap_or_default();
    Row {
        path: f.path.clone(),
        kind: f.kind.label(),
        run: f.run.clone().unwrap_or_default(),
        step: num(f.step),
        tokens: num(f.tokens),
        size: human_size(f.size),
        dtype: f.dtype.clone().unwrap_or_default(),
        tensors: num(f.n_tensors.map(|n| n as u64)),
        about: f
            .architecture
            .clone()
            .or_else(|| f.detail.clone())
            .unwrap_or_default(),
        status: match f.overall_status() {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Error => "error",
        },
        messages: f.all_messages(),
        numbers: [
            f.step.map(|x| x as f64),
            f.tokens.map(|x| x as f64),
            Some(f.size as f64),
            f.n_tensors.map(|x| x as f64),
        ],
    }
}

#[component]
pub fn InventoryTable() -> impl IntoView {
    let workspace = Workspace::use_context();
    // Files in the order they came, until the reader sorts by a column.
    let sort = RwSignal::new(None::<SortBy>);
    let rows = move || {
        let mut rows = workspace
            .inventory
            .with(|inv| inv.files.iter().map(row_of).collect::<Vec<_>>());
        sort_rows(&mut rows, sort.get(), Row::key);
        rows
    };
    let counts = move || {
        workspace.inventory.with(|inv| {
            let n = inv.files.len();
            let errors = inv
                .files
                .iter()
                .filter(|f| f.overall_status() == Status::Error)
                .count();
            let warnings = inv
                .files
                .iter()
                .filter(|f| f.overall_status() == Status::Warning)
                .count();
            format!("{n} file(s) · {errors} with errors · {warnings} with warnings")
        })
    };
    view! {
        <section class="inventory">
            <h2>"Files" <span class="count" id="inventory-count">{counts}</span></h2>
            // Scrolls sideways inside itself on narrow windows; focusable so the keyboard can scroll it.
            <div class="table-scroll" tabindex="0" role="region" aria-label="files table">
            <table id="inventory">
                <thead>
                    <tr>
                        {COLUMNS.into_iter().enumerate().map(|(i, (label, numeric))| view! {
                            <SortHeader label=label column=i sort=sort numeric=numeric/>
                        }).collect_view()}
                    </tr>
                </thead>
                <tbody>
                    <For each=move || workspace.pending.get() key=|p| p.id let:p>
                        <PendingRow pending=p/>
                    </For>
                    <For each=rows key=|r| (r.path.clone(), r.run.clone(), r.status, r.messages.len(), r.about.clone()) let:r>
                        <FileRow row=r/>
                    </For>
                </tbody>
            </table>
            </div>
        </section>
    }
}

/// A file still being read.
#[component]
fn PendingRow(
    /// The queued file and its progress signal.
    pending: Pending,
) -> impl IntoView {
    let progress = pending.progress;
    view! {
        <tr class="pending" data-path=pending.path.clone() data-status="reading">
            <td class="path">{pending.path.clone()}</td>
            <td colspan="4"></td>
            <td class="num">{human_size(pending.size)}</td>
            <td colspan="3">
                <progress max="1" value=move || progress.get() aria-label=format!("reading {}", pending.path)></progress>
            </td>
            <td class="status">{move || format!("reading {:.0}%", progress.get() * 100.0)}</td>
        </tr>
    }
}

/// An inspected file.
#[component]
fn FileRow(
    /// What to show.
    row: Row,
) -> impl IntoView {
    let messages = row.messages.clone();
    view! {
        <tr class=format!("file {}", row.status) data-path=row.path.clone() data-status=row.status data-kind=row.kind>
            <td class="path">{row.path.clone()}</td>
            <td>{row.kind}</td>
            <td class="run">{row.run.clone()}</td>
            <td class="num">{row.step.clone()}</td>
            <td class="num">{row.tokens.clone()}</td>
            <td class="num">{row.size.clone()}</td>
            <td>{row.dtype.clone()}</td>
            <td class="num">{row.tensors.clone()}</td>
            <td class="about">{row.about.clone()}</td>
            <td class="status">
                <span class=format!("badge {}", row.status)>{row.status}</span>
                <ul class="messages">
                    {messages.into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}
                </ul>
            </td>
        </tr>
    }
}
