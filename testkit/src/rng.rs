//! A seeded pseudo-random stream for tests (xorshift64*): reproducible on every machine from
//! the seed a test prints, and incompressible bytes where a test needs data no filesystem or
//! transport can shrink.

/// xorshift64*. Not for anything that needs unpredictability.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The stream of `seed`: the state is splitmix64 of the seed, a bijection, so distinct
    /// seeds start distinct streams (a zero state, which xorshift cannot leave, is moved off).
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fill `buf` with the stream's bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// `len` bytes of the stream.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.fill(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_stream_depends_on_the_seed_only() {
        assert_eq!(Rng::new(7).bytes(100), Rng::new(7).bytes(100));
        assert_ne!(Rng::new(7).bytes(100), Rng::new(8).bytes(100));
        assert_ne!(Rng::new(0).next_u64(), 0);
        // Neighbouring seeds give different streams.
        let firsts: std::collections::HashSet<u64> =
            (0..10_000).map(|s| Rng::new(s).next_u64()).collect();
        assert_eq!(firsts.len(), 10_000);
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(10) < 10));
        // Odd lengths are filled to the last byte.
        let b = Rng::new(3).bytes(13);
        assert_eq!(&b[..8], &Rng::new(3).bytes(8)[..]);
    }
}
