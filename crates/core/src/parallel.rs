//! Data parallelism where the platform has threads: with the `parallel` feature on a native
//! target, [`map`] spreads its items over rayon's current thread pool (the CLI sizes it with
//! `--threads`); otherwise — the page's wasm32 build, one thread per worker — it is a plain
//! sequential map. Either way the results come back in the items' order and each item is
//! computed by the same code on one thread, so the numbers do not depend on the thread count.

/// `items.iter().map(f)`, collected in order; in parallel where [`enabled`].
pub fn map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync + Send,
{
    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    {
        use rayon::prelude::*;
        items.par_iter().map(f).collect()
    }
    #[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
    {
        items.iter().map(f).collect()
    }
}

/// Whether [`map`] runs in parallel in this build.
pub const fn enabled() -> bool {
    cfg!(all(feature = "parallel", not(target_arch = "wasm32")))
}

/// How many items [`map`] works on at once: the current pool's threads, or 1. Callers that
/// must report progress or check for cancellation between items hand [`map`] this many at a time.
pub fn width() -> usize {
    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    {
        rayon::current_num_threads().max(1)
    }
    #[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
    {
        1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn map_keeps_the_order() {
        let items: Vec<u64> = (0..1000).collect();
        let squares = super::map(&items, |&i| i * i);
        assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        assert!(super::width() >= 1);
    }
}
