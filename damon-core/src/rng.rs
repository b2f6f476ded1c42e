//! The seedable random source behind `damon_rand()`.
//!
//! Hand-written rather than taken from `rand`: it runs once per region per
//! sample (the hot path), and a recorded seed must reproduce the same split
//! points and sampling addresses forever, whatever version of a crate is
//! resolved. SplitMix64 is small, fast and statistically adequate here.

/// A deterministic 64-bit generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fully determined by `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator seeded from the clock and the thread, for production use.
    pub fn from_entropy() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let addr = &t as *const u64 as u64;
        Self::new(t ^ addr.rotate_left(32) ^ u64::from(std::process::id()))
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[l, r)`, like the kernel's `damon_rand(l, r)`; returns `l`
    /// when the range is empty.
    #[inline]
    pub fn range(&mut self, l: u64, r: u64) -> u64 {
        if r <= l {
            return l;
        }
        let span = r - l;
        // Lemire's multiply-shift: unbiased enough for sampling, no division.
        l + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
