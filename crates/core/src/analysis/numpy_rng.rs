//! numpy's `default_rng(seed)` (SeedSequence → PCG64) and `Generator.permutation(n)`,
//! bit for bit, so the surgery's random strategy and the permutation p-value
//! draw exactly the sets the reference script drew (fixtures README,
//! `final.surgery.random` and `gamma_vs_svd`).
//!
//! Sources: numpy `bit_generator.pyx` (`SeedSequence.mix_entropy`,
//! `generate_state`), `pcg64.c` (XSL-RR 128/64, `pcg64_next32` buffering),
//! `distributions.c` (`random_interval`), `_generator.pyx` (`_shuffle_raw`).

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL_SIZE: usize = 4;
const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) | 4_865_540_595_714_422_341u128;

/// numpy's `SeedSequence(seed).generate_state(n_words, np.uint32)` pool for a
/// non-negative integer seed (no spawn key).
fn seed_sequence_pool(seed: u64) -> [u32; POOL_SIZE] {
    let mut entropy: Vec<u32> = Vec::new();
    let mut n = seed;
    if n == 0 {
        entropy.push(0);
    }
    while n > 0 {
        entropy.push(n as u32);
        n >>= 32;
    }
    let mut hash_const = INIT_A;
    let mut hashmix = |value: u32| {
        let mut v = value ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash_const);
        v ^ (v >> XSHIFT)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_MULT_L
            .wrapping_mul(x)
            .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
        r ^ (r >> XSHIFT)
    };
    let mut pool = [0u32; POOL_SIZE];
    for (i, p) in pool.iter_mut().enumerate() {
        *p = hashmix(entropy.get(i).copied().unwrap_or(0));
    }
    for src in 0..POOL_SIZE {
        for dst in 0..POOL_SIZE {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    for &e in entropy.iter().skip(POOL_SIZE) {
        for p in pool.iter_mut() {
            let h = hashmix(e);
            *p = mix(*p, h);
        }
    }
    pool
}

/// `generate_state(n_words32, uint32)`.
fn generate_state(pool: &[u32; POOL_SIZE], n_words32: usize) -> Vec<u32> {
    let mut hash_const = INIT_B;
    (0..n_words32)
        .map(|i| {
            let mut v = pool[i % POOL_SIZE] ^ hash_const;
            hash_const = hash_const.wrapping_mul(MULT_B);
            v = v.wrapping_mul(hash_const);
            v ^ (v >> XSHIFT)
        })
        .collect()
}

/// numpy's `np.random.default_rng(seed)`: PCG64 seeded through SeedSequence.
#[derive(Clone, Debug)]
pub struct NumpyRng {
    state: u128,
    inc: u128,
    spare: Option<u32>,
}

impl NumpyRng {
    /// `np.random.default_rng(seed)`.
    pub fn new(seed: u64) -> Self {
        let words = generate_state(&seed_sequence_pool(seed), 8);
        // view as uint64, little-endian: word i = lo | hi << 32
        let w64: Vec<u64> = words
            .chunks_exact(2)
            .map(|c| u64::from(c[0]) | (u64::from(c[1]) << 32))
            .collect();
        let init_state = (u128::from(w64[0]) << 64) | u128::from(w64[1]);
        let init_seq = (u128::from(w64[2]) << 64) | u128::from(w64[3]);
        let mut rng = Self {
            state: 0,
            inc: (init_seq << 1) | 1,
            spare: None,
        };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// `pcg64_next64`: advance, then XSL-RR output.
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        (((s >> 64) as u64) ^ (s as u64)).rotate_right((s >> 122) as u32)
    }

    /// `pcg64_next32`: low half of a fresh 64-bit draw, high half kept for the next call.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let next = self.next_u64();
        self.spare = Some((next >> 32) as u32);
        next as u32
    }

    /// `random_interval(max)`: uniform in `0..=max` by masked rejection.
    pub fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for s in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> s;
        }
        if max <= u64::from(u32::MAX) {
            loop {
                let v = u64::from(self.next_u32()) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `Generator.shuffle` of a 1-d array (Fisher–Yates from the end).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u64) as usize;
            items.swap(i, j);
        }
    }

    /// `Generator.permutation(n)`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `np.random.default_rng(0).permutation(16)` and the next one
    /// (the fixtures' `random.perms["0"]["0"]`, `["0"]["1"]`).
    #[test]
    fn default_rng_zero_permutes_like_numpy() {
        let mut rng = NumpyRng::new(0);
        assert_eq!(
            rng.permutation(16),
            [2, 11, 3, 10, 0, 4, 7, 5, 14, 12, 6, 9, 13, 8, 1, 15]
        );
        assert_eq!(
            rng.permutation(16),
            [2, 11, 14, 5, 12, 4, 1, 0, 8, 10, 13, 6, 7, 9, 3, 15]
        );
    }
}
