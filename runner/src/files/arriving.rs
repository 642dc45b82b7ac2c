//! Uploads still arriving, per session: their bytes count against the session's upload limit
//! together with the stored ones, so uploads sent in parallel cannot pass it between them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use common::ids::SessionId;

/// The bytes of every upload in progress on this node, by session.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<HashMap<SessionId, u64>>>);

/// One upload in progress: what it has counted is released when it is dropped (after the upload
/// was stored, or refused).
pub struct Arriving {
    all: Arrivals,
    session: SessionId,
    counted: u64,
}

impl Arrivals {
    pub fn begin(&self, session: &SessionId) -> Arriving {
        Arriving {
            all: self.clone(),
            session: session.clone(),
            counted: 0,
        }
    }
}

impl Arriving {
    /// Counts `n` more bytes of this upload; answers the bytes of all the session's uploads in
    /// progress, this one included.
    pub fn add(&mut self, n: u64) -> u64 {
        let mut all = self.all.0.lock().unwrap_or_else(PoisonError::into_inner);
        let total = all.entry(self.session.clone()).or_default();
        *total += n;
        self.counted += n;
        *total
    }
}

impl Drop for Arriving {
    fn drop(&mut self) {
        let mut all = self.all.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(total) = all.get_mut(&self.session) {
            *total = total.saturating_sub(self.counted);
            if *total == 0 {
                all.remove(&self.session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_uploads_of_a_session_add_up_and_are_released_when_done() {
        let all = Arrivals::default();
        let session = SessionId::generate();
        let other = SessionId::generate();
        let mut a = all.begin(&session);
        let mut b = all.begin(&session);
        assert_eq!(a.add(10), 10);
        assert_eq!(b.add(5), 15);
        assert_eq!(all.begin(&other).add(1), 1, "another session counts apart");
        drop(a);
        assert_eq!(b.add(0), 5);
        drop(b);
        assert!(all.0.lock().expect("lock").is_empty());
    }
}
