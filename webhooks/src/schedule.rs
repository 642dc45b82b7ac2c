//! The retry schedule: how long to wait before each attempt, with jitter.

use std::time::Duration;

/// Delays before attempts 1, 2, … (the first is usually 0: deliver at once).
#[derive(Clone, Debug)]
pub struct Schedule(Vec<Duration>);

impl Schedule {
    pub fn new(delays: Vec<Duration>) -> Self {
        Schedule(delays)
    }

    /// Attempts in all.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// The delay before attempt number `next` (1-based), with ±10 % jitter from `unit`
    /// (a number in 0..1); `None` once the schedule is exhausted.
    pub fn delay_before(&self, next: u32, unit: f64) -> Option<Duration> {
        let base = *self.0.get(usize::try_from(next.checked_sub(1)?).ok()?)?;
        let factor = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
        Some(base.mul_f64(factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_schedule_with_bounded_jitter() {
        let s = Schedule::new(vec![
            Duration::ZERO,
            Duration::from_secs(5),
            Duration::from_secs(300),
        ]);
        assert_eq!(s.attempts(), 3);
        assert_eq!(s.delay_before(1, 0.5), Some(Duration::ZERO));
        let d = s.delay_before(2, 0.0).expect("2");
        assert_eq!(d, Duration::from_millis(4500));
        let d = s.delay_before(3, 1.0).expect("3");
        assert_eq!(d, Duration::from_secs(330));
        assert_eq!(s.delay_before(4, 0.5), None);
        assert_eq!(s.delay_before(0, 0.5), None);
    }
}
