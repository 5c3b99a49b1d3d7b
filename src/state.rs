//! The page's shared state (a Leptos context) and the one action that changes
//! it: inspecting picked files, one after another, into the inventory.

use crate::web::blob_source::BlobSource;
use crate::web::files::PickedFile;
use leptos::prelude::*;
use leptos::task::spawn_local;
use rankscope_core::analysis::collect::{collect_weight_spectra, SpectraFailure};
use rankscope_core::analysis::study::RunSpectra;
use rankscope_core::inventory::{inspect_file, Inventory};
use std::collections::{BTreeMap, HashMap};

/// A file waiting for, or under, inspection.
#[derive(Clone, PartialEq)]
pub struct Pending {
    pub id: u64,
    pub path: String,
    pub size: u64,
    /// 0..=1 while reading; shown as the row's progress bar.
    pub progress: RwSignal<f64>,
}

#[derive(Clone, Copy)]
pub struct AppState {
    pub inventory: RwSignal<Inventory>,
    pub pending: RwSignal<Vec<Pending>>,
    /// Run renames the user made, applied to files that arrive later too.
    pub renames: RwSignal<BTreeMap<String, String>>,
    /// Set by the Cancel button; the queue stops before its next file.
    pub cancel: RwSignal<bool>,
    /// A one-line message above the table (errors of the drop itself, cancels).
    pub notice: RwSignal<Option<String>>,
    /// Weight spectra of every recognised checkpoint, per run (Figures 1–2).
    pub spectra: RwSignal<Vec<RunSpectra>>,
    pub spectra_failures: RwSignal<Vec<SpectraFailure>>,
    /// "computing spectra: 12 of 36 checkpoints" while it runs.
    pub spectra_progress: RwSignal<Option<String>>,
    /// The dropped files by path: handles only (a `File` is not its bytes),
    /// so tensors can be read again by byte range.
    blobs: StoredValue<HashMap<String, web_sys::Blob>, LocalStorage>,
    next_id: StoredValue<u64>,
    /// Bumped on every new batch; a spectra run that sees a newer one stops.
    generation: StoredValue<u64>,
}

impl AppState {
    pub fn new() -> Self {
        Self {
            inventory: RwSignal::new(Inventory::default()),
            pending: RwSignal::new(Vec::new()),
            renames: RwSignal::new(BTreeMap::new()),
            cancel: RwSignal::new(false),
            notice: RwSignal::new(None),
            spectra: RwSignal::new(Vec::new()),
            spectra_failures: RwSignal::new(Vec::new()),
            spectra_progress: RwSignal::new(None),
            blobs: StoredValue::new_local(HashMap::new()),
            next_id: StoredValue::new(0),
            generation: StoredValue::new(0),
        }
    }

    pub fn use_context() -> Self {
        expect_context::<AppState>()
    }

    /// Queues files for inspection and inspects them in order. A file with
    /// the same path as one already shown replaces it.
    pub fn add_files(self, files: Vec<PickedFile>) {
        if files.is_empty() {
            self.notice.set(Some("nothing to read: the drop held no files".into()));
            return;
        }
        self.cancel.set(false);
        let queued: Vec<(Pending, PickedFile)> = files
            .into_iter()
            .map(|f| {
                let id = self.next_id.get_value();
                self.next_id.set_value(id + 1);
                let pending = Pending { id, path: f.path.clone(), size: f.file.size() as u64, progress: RwSignal::new(0.0) };
                (pending, f)
            })
            .collect();
        self.pending.update(|p| p.extend(queued.iter().map(|(q, _)| q.clone())));
        spawn_local(async move {
            let mut skipped = 0;
            for (pending, file) in queued {
                if self.cancel.get_untracked() {
                    skipped += 1;
                    self.pending.update(|p| p.retain(|q| q.id != pending.id));
                    continue;
                }
                self.blobs.update_value(|b| {
                    b.insert(file.path.clone(), file.file.clone());
                });
                let src = BlobSource::new(file.file);
                let progress = pending.progress;
                let mut entry = inspect_file(&file.path, &src, &mut |x| progress.set(x)).await;
                if let Some(new) = entry.run.as_ref().and_then(|r| self.renames.with_untracked(|m| m.get(r).cloned())) {
                    entry.run = Some(new);
                }
                self.inventory.update(|inv| {
                    let mut files = std::mem::take(&mut inv.files);
                    files.retain(|f| f.path != entry.path);
                    files.push(entry);
                    *inv = Inventory::link(files);
                });
                self.pending.update(|p| p.retain(|q| q.id != pending.id));
            }
            if skipped > 0 {
                self.notice.set(Some(format!("cancelled: {skipped} file(s) were not read")));
            }
            if self.pending.with_untracked(Vec::is_empty) {
                self.compute_spectra().await;
            }
        });
    }

    /// Weight spectra of every recognised checkpoint (after each batch of
    /// files). Reads only the W_k/W_q blocks and norms' γ, by byte range.
    pub async fn compute_spectra(self) {
        let generation = self.generation.get_value() + 1;
        self.generation.set_value(generation);
        let inventory = self.inventory.get_untracked();
        let paths: Vec<String> = inventory.files.iter().map(|f| f.path.clone()).collect();
        let blobs = self.blobs;
        let open = move |i: usize| {
            let path = paths.get(i)?;
            blobs.with_value(|b| b.get(path).cloned()).map(BlobSource::new)
        };
        let progress = self.spectra_progress;
        let (runs, failures) = collect_weight_spectra(&inventory, &open, &mut |done, total| {
            progress.set(Some(format!("computing weight spectra: {done} of {total} checkpoints")));
        })
        .await;
        if self.generation.get_value() != generation {
            return; // a newer batch superseded this one
        }
        self.spectra.set(runs);
        self.spectra_failures.set(failures);
        self.spectra_progress.set(None);
    }

    /// Renames a run everywhere, now and for files dropped later.
    pub fn rename_run(self, from: String, to: String) {
        let to = to.trim().to_string();
        if to.is_empty() || to == from {
            return;
        }
        self.renames.update(|m| {
            // Keep chains short: anything that pointed at `from` now points at `to`.
            for v in m.values_mut() {
                if *v == from {
                    v.clone_from(&to);
                }
            }
            m.insert(from.clone(), to.clone());
        });
        self.inventory.update(|inv| *inv = std::mem::take(inv).rename_run(&from, &to));
        self.spectra.update(|runs| {
            for r in runs.iter_mut().filter(|r| r.run == from) {
                r.run.clone_from(&to);
            }
        });
    }

    pub fn clear(self) {
        self.cancel.set(true);
        self.inventory.set(Inventory::default());
        self.notice.set(None);
        self.spectra.set(Vec::new());
        self.spectra_failures.set(Vec::new());
        self.blobs.update_value(HashMap::clear);
        self.generation.set_value(self.generation.get_value() + 1);
    }
}
