//! Retry delays that grow and are jittered, for every retry loop in the
//! daemon, the front-ends' reconnects and the link to the server. The core is
//! pure ([`Backoff::next_delay`] takes the randomness, so tests pin the
//! sequence); [`Backoff::wait`] draws it.

use std::time::Duration;

/// Exponential back-off with "equal jitter": each delay is half the current
/// step plus a random part of the other half, so retries from many clients
/// spread out while none retries sooner than half the step.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Starts at `min`; the step doubles after each delay up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.min(max);
        Self {
            min,
            max,
            step: min,
        }
    }

    /// The next delay, with `random` choosing the jitter; then the step grows.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let half = self.step / 2;
        let span = (self.step - half).as_nanos() as u64;
        let jitter = if span == 0 { 0 } else { random % (span + 1) };
        let delay = half + Duration::from_nanos(jitter);
        self.step = (self.step * 2).min(self.max);
        delay
    }

    /// The next delay, jittered with fresh randomness.
    pub fn wait(&mut self) -> Duration {
        self.next_delay(rand::random())
    }

    /// The step the next delay is drawn from (for messages: "retrying in …").
    pub fn step(&self) -> Duration {
        self.step
    }

    /// Whether the step has reached its maximum (the peer has been away long).
    pub fn at_max(&self) -> bool {
        self.step >= self.max
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_maximum_and_stay_within_their_step() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let mut steps = Vec::new();
        for r in [0, u64::MAX, 7, 0, u64::MAX] {
            let step = b.step();
            let d = b.next_delay(r);
            assert!(
                d >= step / 2 && d <= step,
                "{d:?} within [{:?}, {step:?}]",
                step / 2
            );
            steps.push(step.as_millis());
        }
        assert_eq!(steps, [100, 200, 400, 800, 800]);
        assert!(b.at_max());
        b.reset();
        assert_eq!(b.step(), Duration::from_millis(100));
        // The extremes of the jitter.
        assert_eq!(b.next_delay(0), Duration::from_millis(50));
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut seen = std::collections::BTreeSet::new();
        for r in 0..64u64 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            seen.insert(b.next_delay(r.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        }
        assert!(seen.len() > 32, "{} distinct delays of 64", seen.len());
    }

    #[test]
    fn a_minimum_above_the_maximum_is_capped() {
        let mut b = Backoff::new(Duration::from_secs(9), Duration::from_secs(1));
        assert!(b.next_delay(u64::MAX) <= Duration::from_secs(1));
    }
}
