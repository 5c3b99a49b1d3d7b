//! Min/max-preserving downsampling for long curves (loss curves of up to 10⁶
//! points): spikes and dips survive, nothing is random.

/// Downsamples `points` to at most `4 · buckets` points.
///
/// The x range is cut into `buckets` equal-width buckets; from each non-empty
/// bucket it keeps the first point, the point of minimum y, the point of maximum
/// y and the last point (in x order, each kept once). So the global minimum and
/// maximum, the first and the last point always survive, and the output is
/// sorted by x. Points with a non-finite x or y are dropped (count them before
/// calling if the figure should say so). Unsorted input is sorted by x first.
/// With `buckets == 0` the result is empty; if the finite points already fit in
/// `4 · buckets`, they are returned unchanged.
pub fn min_max_downsample(points: &[[f64; 2]], buckets: usize) -> Vec<[f64; 2]> {
    if buckets == 0 {
        return Vec::new();
    }
    let mut pts: Vec<[f64; 2]> = points
        .iter()
        .copied()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .collect();
    if !pts.windows(2).all(|w| w[0][0] <= w[1][0]) {
        pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
    }
    let cap = buckets.saturating_mul(4);
    if pts.len() <= cap {
        return pts;
    }
    let (x0, x1) = match (pts.first(), pts.last()) {
        (Some(a), Some(b)) => (a[0], b[0]),
        _ => return pts,
    };
    let width = x1 - x0;
    let bucket_of = |x: f64| -> usize {
        if width <= 0.0 || !width.is_finite() {
            return 0;
        }
        // `as` saturates; the min keeps x1 in the last bucket.
        (((x - x0) / width * buckets as f64) as usize).min(buckets - 1)
    };

    let mut out = Vec::with_capacity(cap);
    let mut start = 0;
    while start < pts.len() {
        let b = bucket_of(pts[start][0]);
        let mut end = start + 1;
        while end < pts.len() && bucket_of(pts[end][0]) == b {
            end += 1;
        }
        let run = &pts[start..end];
        let (mut imin, mut imax) = (0, 0);
        for (i, p) in run.iter().enumerate() {
            if p[1] < run[imin][1] {
                imin = i;
            }
            if p[1] > run[imax][1] {
                imax = i;
            }
        }
        let mut keep = [0, imin, imax, run.len() - 1];
        keep.sort_unstable();
        let mut last_kept = None;
        for i in keep {
            if last_kept != Some(i) {
                out.push(run[i]);
                last_kept = Some(i);
            }
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_input_is_unchanged_and_zero_buckets_is_empty() {
        let pts = vec![[0.0, 1.0], [1.0, 3.0], [2.0, 2.0]];
        assert_eq!(min_max_downsample(&pts, 1), pts);
        assert!(min_max_downsample(&pts, 0).is_empty());
    }

    #[test]
    fn drops_non_finite_and_sorts() {
        let pts = vec![
            [2.0, 1.0],
            [f64::NAN, 3.0],
            [0.0, f64::INFINITY],
            [1.0, 2.0],
        ];
        assert_eq!(min_max_downsample(&pts, 10), vec![[1.0, 2.0], [2.0, 1.0]]);
    }

    #[test]
    fn constant_x_collapses_to_one_bucket() {
        let pts: Vec<[f64; 2]> = (0..100).map(|i| [5.0, i as f64]).collect();
        let out = min_max_downsample(&pts, 3);
        assert_eq!(out, vec![[5.0, 0.0], [5.0, 99.0]]);
    }
}
