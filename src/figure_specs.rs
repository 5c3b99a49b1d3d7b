//! The figures' current specs as a context of their own: each figure is built in one place (its
//! component registers the `Signal` that builds it), and the report button reads them all. Nothing
//! is built twice and nothing is copied until the report asks.

use leptos::prelude::*;
use rankscope_core::figures::spec::FigureSpec;
use rankscope_core::report::SurgerySection;

/// One figure's spec as its component builds it (`None`: not computed).
pub type SpecSlot = StoredValue<Option<Signal<Option<FigureSpec>>>>;

#[derive(Clone, Copy)]
pub struct FigureSpecs {
    /// Figures 1–5, in the report's order (registered by `figures.rs` and `study_panel.rs`).
    pub figures: [SpecSlot; 5],
    /// The surgery sweep shown under Figure 4 with the plan's verdict (`study_panel.rs`).
    pub surgery: StoredValue<Option<Signal<Option<SurgerySection>>>>,
}

impl FigureSpecs {
    pub fn new() -> Self {
        Self {
            figures: std::array::from_fn(|_| StoredValue::new(None)),
            surgery: StoredValue::new(None),
        }
    }

    pub fn use_context() -> Self {
        expect_context::<FigureSpecs>()
    }

    /// Registers Figure `n` (1–5).
    pub fn register(self, n: usize, spec: Signal<Option<FigureSpec>>) {
        if let Some(slot) = self.figures.get(n.wrapping_sub(1)) {
            slot.set_value(Some(spec));
        }
    }

    /// Figure `n`'s spec now (not tracked): `None` when not computed, or when its component is
    /// gone.
    pub fn current(self, n: usize) -> Option<FigureSpec> {
        let slot = self.figures.get(n.wrapping_sub(1))?;
        slot.get_value()?.try_get_untracked().flatten()
    }

    /// The surgery section now (not tracked), if Figure 4 was computed.
    pub fn current_surgery(self) -> Option<SurgerySection> {
        self.surgery.get_value()?.try_get_untracked().flatten()
    }
}
