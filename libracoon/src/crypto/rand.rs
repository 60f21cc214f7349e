//! Randomness as an input: the [`Random`] trait, the OS source and a seeded
//! generator for tests and the simulator.

use ring::rand::{SecureRandom, SystemRandom};

use super::CryptoError;

/// Randomness is an input of every protocol core (SPIs, nonces, IVs, private
/// keys).
///
/// Protocol code never reaches for the OS source itself: the driver passes
/// `&mut dyn Random`, [`OsRandom`] in the daemons and [`SeededRandom`] in
/// tests and the simulator, so a run can be replayed from its seed.
pub trait Random {
    /// Fills `buf` entirely with random bytes.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the source failed; `buf` is then unspecified.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CryptoError>;
}

impl<R: Random + ?Sized> Random for &mut R {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CryptoError> {
        (**self).fill(buf)
    }
}

impl<R: Random + ?Sized> Random for Box<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CryptoError> {
        (**self).fill(buf)
    }
}

/// The operating system's cryptographically secure source (ring's
/// `SystemRandom`: `getrandom(2)` on Linux).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CryptoError> {
        SystemRandom::new()
            .fill(buf)
            .map_err(|_| CryptoError::Random)
    }
}

/// A deterministic generator for tests and the simulator only.
///
/// **NOT secure**: the output is SplitMix64 (Steele, Lea and Flood, "Fast
/// Splittable Pseudorandom Number Generators", 2014) and is fully determined by
/// the 64-bit seed. Never use it for real keys.
///
/// Each 64-bit output is emitted little-endian; a request that is not a
/// multiple of 8 bytes uses the first bytes of one more output and drops the
/// rest, so the byte stream depends on how it was requested.
#[derive(Debug, Clone)]
pub struct SeededRandom {
    state: u64,
}

impl SeededRandom {
    /// A generator whose whole output is determined by `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64-bit output of SplitMix64.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CryptoError> {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    // Reference outputs of Vigna's splitmix64.c (prng.di.unimi.it) for seed
    // 1234567, also reproduced by Java's SplittableRandom mixing function.
    #[test]
    fn seeded_random_matches_splitmix64_reference() {
        let mut rng = SeededRandom::new(1_234_567);
        let expected: [u64; 5] = [
            6_457_827_717_110_365_317,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
            4_593_380_528_125_082_431,
            16_408_922_859_458_223_821,
        ];
        for want in expected {
            let mut buf = [0u8; 8];
            rng.fill(&mut buf).unwrap();
            assert_eq!(u64::from_le_bytes(buf), want);
        }
    }

    #[test]
    fn seeded_random_is_reproducible_and_seed_dependent() {
        let draw = |seed| {
            let mut buf = [0u8; 37];
            SeededRandom::new(seed).fill(&mut buf).unwrap();
            buf
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn seeded_random_fills_partial_words_from_a_fresh_output() {
        let mut rng = SeededRandom::new(0);
        let mut buf = [0u8; 3];
        rng.fill(&mut buf).unwrap();
        // First SplitMix64 output for seed 0 is 0xe220a8397b1dcdaf.
        assert_eq!(buf, [0xaf, 0xcd, 0x1d]);
        let mut next = [0u8; 8];
        rng.fill(&mut next).unwrap();
        assert_eq!(u64::from_le_bytes(next), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn os_random_fills_and_works_through_dyn() {
        let mut os = OsRandom;
        let rng: &mut dyn Random = &mut os;
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        rng.fill(&mut a).unwrap();
        rng.fill(&mut b).unwrap();
        assert_ne!(a, b, "two 256-bit OS draws collided");
        rng.fill(&mut []).unwrap();
    }

    #[test]
    fn boxed_and_borrowed_sources_delegate() {
        fn draw<R: Random>(mut rng: R) -> [u8; 16] {
            let mut buf = [0u8; 16];
            rng.fill(&mut buf).unwrap();
            buf
        }
        let boxed: Box<dyn Random> = Box::new(SeededRandom::new(9));
        let mut direct = SeededRandom::new(9);
        assert_eq!(draw(boxed), draw(&mut direct));
    }
}
