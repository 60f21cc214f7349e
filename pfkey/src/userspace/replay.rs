//! Anti-replay window with Extended Sequence Number reconstruction
//! ([RFC 4303 §3.4.3], [Appendix A]).
//!
//! The window remembers which of the last `W` sequence numbers (64-bit, ESN
//! or not) have been accepted, in a ring of `W` bits indexed by `seq mod W`.
//! Checking and updating are separate steps, as RFC 4303 §3.4.3 orders them:
//! "the receiver MUST perform a preliminary check" before the ICV, and "the
//! receive window is updated only if the integrity verification succeeds".
//!
//! [RFC 4303 §3.4.3]: https://www.rfc-editor.org/rfc/rfc4303#section-3.4.3
//! [Appendix A]: https://www.rfc-editor.org/rfc/rfc4303#appendix-A

#![deny(clippy::unwrap_used)]

/// Why [`ReplayWindow::check`] rejected a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Sequence number 0 is never sent (RFC 4303 §3.3.3: the first packet
    /// carries 1), or the reconstructed ESN would be negative.
    #[error("sequence number 0 or before the start of the ESN space")]
    Invalid,
    /// Left of the window: older than the last `W` accepted numbers.
    #[error("sequence number left of the replay window")]
    TooOld,
    /// Inside the window and already accepted.
    #[error("duplicate sequence number")]
    Duplicate,
}

/// The receive window of one inbound SA: `64 * WORDS` bits.
///
/// racoon3 uses [`Window`] (1024 bits); tests instantiate small windows to
/// check every case exhaustively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow<const WORDS: usize> {
    /// Highest accepted (authenticated) sequence number, 0 before the first.
    top: u64,
    /// Bit `seq % W` is set when `seq` (within the window) was accepted.
    bits: [u64; WORDS],
}

/// The window size racoon3 uses: 1024 packets (RFC 4303 §3.4.3 asks for at
/// least 32 and recommends 64; reordering on fast links needs more).
pub type Window = ReplayWindow<16>;

impl<const WORDS: usize> Default for ReplayWindow<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> ReplayWindow<WORDS> {
    /// Window size in packets.
    pub const SIZE: u64 = 64 * WORDS as u64;

    /// An empty window: nothing accepted yet.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            top: 0,
            bits: [0; WORDS],
        }
    }

    /// The highest sequence number accepted so far (0 before the first).
    #[must_use]
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The preliminary check of a received packet: reconstructs the full
    /// 64-bit sequence number from the transmitted low 32 bits (`esn`) or
    /// takes them as is, and rejects numbers left of the window or seen.
    ///
    /// Changes nothing; call [`update`](Self::update) with the returned
    /// number once the ICV has verified.
    ///
    /// # Errors
    /// [`ReplayError`] says why the packet must be dropped.
    pub fn check(&self, seq_low: u32, esn: bool) -> Result<u64, ReplayError> {
        let seq = if esn {
            self.reconstruct(seq_low)?
        } else {
            u64::from(seq_low)
        };
        if seq == 0 {
            return Err(ReplayError::Invalid);
        }
        if seq > self.top {
            return Ok(seq);
        }
        if self.top - seq >= Self::SIZE {
            return Err(ReplayError::TooOld);
        }
        if self.is_set(seq) {
            return Err(ReplayError::Duplicate);
        }
        Ok(seq)
    }

    /// Records `seq` (as returned by [`check`](Self::check), after the ICV
    /// verified) and slides the window when it is new on the right.
    pub fn update(&mut self, seq: u64) {
        if seq > self.top {
            self.slide_to(seq);
        }
        if self.top - seq < Self::SIZE {
            let (word, bit) = Self::index(seq);
            self.bits[word] |= bit;
        }
    }

    /// RFC 4303 Appendix A2.2: the high 32 bits for `seql`, relative to the
    /// window `[T - W + 1, T]` with `T = Th:Tl`.
    fn reconstruct(&self, seql: u32) -> Result<u64, ReplayError> {
        let w = Self::SIZE;
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        // `W - 1` fits in 32 bits: WORDS is small (checked in a const test).
        let w1 = (w - 1) as u32;
        let seqh = if tl >= w1 {
            // Case A: the window lies within one sequence-number subspace.
            if seql >= tl - w1 {
                Some(th)
            } else {
                th.checked_add(1)
            }
        } else if seql >= tl.wrapping_sub(w1) {
            // Case B, and `seql` is in the previous subspace.
            th.checked_sub(1)
        } else {
            Some(th)
        };
        let seqh = seqh.ok_or(ReplayError::Invalid)?;
        Ok((u64::from(seqh) << 32) | u64::from(seql))
    }

    /// Moves the right edge to `seq`, forgetting the numbers that leave.
    fn slide_to(&mut self, seq: u64) {
        let diff = seq - self.top;
        if diff >= Self::SIZE {
            self.bits = [0; WORDS];
        } else {
            // Each new number reuses the bit of the number `W` below it,
            // which has just left the window.
            for s in self.top + 1..=seq {
                let (word, bit) = Self::index(s);
                self.bits[word] &= !bit;
            }
        }
        self.top = seq;
    }

    fn is_set(&self, seq: u64) -> bool {
        let (word, bit) = Self::index(seq);
        self.bits[word] & bit != 0
    }

    fn index(seq: u64) -> (usize, u64) {
        let i = seq % Self::SIZE;
        ((i / 64) as usize, 1 << (i % 64))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    type Small = ReplayWindow<1>;
    const W: u64 = Small::SIZE;

    /// The obvious model: a set of accepted numbers and the highest one.
    #[derive(Default)]
    struct Model {
        seen: BTreeSet<u64>,
        top: u64,
    }

    impl Model {
        fn accepts(&self, s: u64) -> bool {
            s != 0 && (s > self.top || (self.top - s < W && !self.seen.contains(&s)))
        }
        fn accept(&mut self, s: u64) {
            self.seen.insert(s);
            self.top = self.top.max(s);
        }
    }

    #[test]
    fn window_size_fits_the_esn_arithmetic() {
        const { assert!(Window::SIZE <= 1 << 31) };
        assert_eq!(Window::SIZE, 1024);
    }

    #[test]
    fn every_pair_history_then_every_probe_matches_the_model_without_esn() {
        // Exhaustive over a small domain: two accepted packets in any order,
        // then a probe; the window must agree with the set-based model.
        let domain = 0..=(2 * W + 8);
        for a in domain.clone() {
            for b in domain.clone() {
                let mut win = Small::new();
                let mut model = Model::default();
                for s in [a, b] {
                    let got = win.check(s as u32, false);
                    assert_eq!(got.is_ok(), model.accepts(s), "history {a},{b} at {s}");
                    if let Ok(seq) = got {
                        win.update(seq);
                        model.accept(s);
                    }
                }
                for probe in domain.clone() {
                    assert_eq!(
                        win.check(probe as u32, false).is_ok(),
                        model.accepts(probe),
                        "history {a},{b} probe {probe}"
                    );
                }
            }
        }
    }

    #[test]
    fn check_without_update_changes_nothing() {
        let mut win = Small::new();
        win.update(10);
        let before = win.clone();
        assert_eq!(win.check(11, false), Ok(11));
        assert_eq!(win.check(11, false), Ok(11));
        assert_eq!(win, before);
    }

    #[test]
    fn rejection_reasons_are_distinguished() {
        let mut win = Small::new();
        assert_eq!(win.check(0, false), Err(ReplayError::Invalid));
        win.update(100);
        assert_eq!(win.check(100, false), Err(ReplayError::Duplicate));
        assert_eq!(win.check(100 - W as u32, false), Err(ReplayError::TooOld));
        assert_eq!(win.check(101 - W as u32, false), Ok(101 - W));
    }

    #[test]
    fn esn_reconstruction_is_exact_for_every_offset_around_subspace_edges() {
        // RFC 4303 App. A2.2: with only T accepted, every s in
        // [T - W + 1, T + 2^32 - W] other than T is recovered from its low
        // 32 bits. Anything left of the window is never taken for itself:
        // it is refused, or read as a number far ahead (whose ICV then
        // fails, since the guessed high bits are wrong).
        let edges = [
            1,
            W - 2,
            W - 1,
            W,
            W + 1,
            (1 << 32) - W - 1,
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 1,
            (1 << 32) + W - 2,
            (1 << 32) + W - 1,
            (1 << 32) + W,
            (5 << 32) + 17,
            u64::MAX - 4 * W,
        ];
        for t in edges {
            let mut win = Small::new();
            win.update(t);
            let lo = t.saturating_sub(3 * W);
            for s in lo..=t + 3 * W {
                let got = win.check(s as u32, true);
                if s == t {
                    assert_eq!(got, Err(ReplayError::Duplicate), "T={t:#x}");
                } else if s > t || (t - s < W && s != 0) {
                    assert_eq!(got, Ok(s), "T={t:#x} s={s:#x}");
                } else {
                    assert_ne!(got, Ok(s), "T={t:#x} s={s:#x} accepted");
                }
            }
            // The far end of the forward range still maps forward.
            if let Some(far) = t.checked_add((1 << 32) - W) {
                assert_eq!(win.check(far as u32, true), Ok(far), "T={t:#x} far");
            }
        }
    }

    #[test]
    fn esn_space_start_is_not_wrapped_backwards() {
        let mut win = Small::new();
        win.update(5);
        // Case B with Th = 0: "previous subspace" does not exist.
        assert_eq!(win.check(u32::MAX, true), Err(ReplayError::Invalid));
    }

    #[test]
    fn reordered_stream_across_the_32_bit_wrap_is_accepted_once_each() {
        // A sender crossing 2^32 with ESN; packets arrive in blocks of 7,
        // each block reversed (reordering well within W). Every packet is
        // accepted exactly once, then every replay is refused.
        let start = (1u64 << 32) - 3 * W;
        let sent: Vec<u64> = (start..start + 6 * W).collect();
        let mut win = Small::new();
        win.update(start - 1);
        let mut order = Vec::new();
        for chunk in sent.chunks(7) {
            order.extend(chunk.iter().rev().copied());
        }
        for &s in &order {
            let seq = win.check(s as u32, true).expect("fresh packet");
            assert_eq!(seq, s);
            win.update(seq);
        }
        let top = win.top();
        for &s in order.iter().filter(|&&s| top - s < W) {
            assert_eq!(win.check(s as u32, true), Err(ReplayError::Duplicate));
        }
    }

    #[test]
    fn large_window_remembers_1024_packets() {
        let mut win = Window::new();
        for s in 1..=2000 {
            win.update(s);
        }
        assert_eq!(win.check(2000 - 1023, false), Err(ReplayError::Duplicate));
        assert_eq!(win.check(2000 - 1024, false), Err(ReplayError::TooOld));
        win.update(5000);
        assert_eq!(win.check(4000, false), Ok(4000));
    }
}
