//! Per-credential rate limits: a token bucket (governor's GCRA) per API key or dashboard user,
//! with the sustained rate and burst of the account's tier. Buckets live in this process, so a
//! limit is per API node: behind a load balancer spreading traffic over N nodes, a credential
//! gets up to N times its tier's rate (divide the tier's numbers by N in `DRIFTSTACK_TIERS_FILE`
//! to keep the total).

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::{InMemoryState, NotKeyed},
};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

const MAX_BUCKETS: usize = 100_000;

/// What a request may do, and what to tell the client.
#[derive(Debug, Clone, Copy)]
pub struct Verdict {
    pub allowed: bool,
    /// The bucket size (burst).
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again (allowed) or until the next request is (refused).
    pub reset_seconds: u64,
}

#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
    clock: DefaultClock,
}

impl Limiter {
    /// Takes one request from the bucket of `credential` (whose tier allows `per_second`
    /// sustained and `burst` at once).
    pub fn check(&self, credential: &str, per_second: u32, burst: u32) -> Verdict {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let bucket = {
            let mut buckets = match self.buckets.lock() {
                Ok(b) => b,
                Err(p) => p.into_inner(),
            };
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
            // A tier change gives the credential a new bucket with the new numbers.
            let key = format!("{credential}:{per_second}:{burst}");
            buckets
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(
                        RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))
                            .with_middleware::<StateInformationMiddleware>(),
                    )
                })
                .clone()
        };
        let interval = Duration::from_secs(1) / per_second.get();
        match bucket.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = burst.get().saturating_sub(remaining);
                Verdict {
                    allowed: true,
                    limit: burst.get(),
                    remaining,
                    reset_seconds: (interval * missing).as_secs_f64().ceil() as u64,
                }
            }
            Err(not_until) => Verdict {
                allowed: false,
                limit: burst.get(),
                remaining: 0,
                reset_seconds: not_until
                    .wait_time_from(self.clock.now())
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal() {
        let l = Limiter::default();
        for i in 0..5 {
            let v = l.check("key_a", 1, 5);
            assert!(v.allowed, "request {i}");
            assert_eq!(v.remaining, 4 - i);
        }
        let v = l.check("key_a", 1, 5);
        assert!(!v.allowed);
        assert!(v.reset_seconds >= 1);
        // Another credential has its own bucket.
        assert!(l.check("key_b", 1, 5).allowed);
    }
}
