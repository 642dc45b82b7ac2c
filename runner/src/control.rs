//! Who controls a session's interactive live view: one controller at a time. A viewer asks for
//! control and gets it when nobody holds it; the controller keeps it until it releases it or
//! leaves, or until a takeover (the caller decides who may take over). Every viewer follows the
//! changes through a watch.

use tokio::sync::watch;

/// A live viewer holding (or asking for) control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controller {
    /// This viewer's connection (unique within the process).
    pub viewer: u64,
    /// Who it is, as other viewers see it (`usr_…`, `key_…`, `lvl_…`).
    pub label: String,
}

/// A session's control.
#[derive(Debug)]
pub struct Control {
    tx: watch::Sender<Option<Controller>>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            tx: watch::Sender::new(None),
        }
    }
}

/// A fresh id for a viewer's connection.
pub fn next_viewer() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Control {
    /// Gives control to `who` when nobody holds it (or it already does); otherwise answers the
    /// holder.
    pub fn request(&self, who: &Controller) -> Result<(), Controller> {
        let mut holder = None;
        self.tx.send_if_modified(|c| match c {
            Some(c) if c.viewer == who.viewer => false,
            Some(c) => {
                holder = Some(c.clone());
                false
            }
            None => {
                *c = Some(who.clone());
                true
            }
        });
        holder.map_or(Ok(()), Err)
    }

    /// Gives control to `who` whoever holds it; answers the previous controller.
    pub fn take_over(&self, who: &Controller) -> Option<Controller> {
        let previous = self.tx.send_replace(Some(who.clone()));
        previous.filter(|p| p.viewer != who.viewer)
    }

    /// Gives up control if `viewer` holds it; answers whether it did.
    pub fn release(&self, viewer: u64) -> bool {
        self.tx.send_if_modified(|c| {
            if c.as_ref().is_some_and(|c| c.viewer == viewer) {
                *c = None;
                true
            } else {
                false
            }
        })
    }

    pub fn holder(&self) -> Option<Controller> {
        self.tx.borrow().clone()
    }

    pub fn is_held_by(&self, viewer: u64) -> bool {
        self.tx
            .borrow()
            .as_ref()
            .is_some_and(|c| c.viewer == viewer)
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Controller>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(viewer: u64) -> Controller {
        Controller {
            viewer,
            label: format!("v{viewer}"),
        }
    }

    #[test]
    fn one_controller_until_release_or_takeover() {
        let c = Control::default();
        assert_eq!(c.request(&who(1)), Ok(()));
        assert_eq!(c.request(&who(1)), Ok(()), "asking again keeps it");
        assert_eq!(
            c.request(&who(2)),
            Err(who(1)),
            "a second viewer is refused"
        );
        assert!(!c.release(2), "only the holder releases");
        assert_eq!(c.take_over(&who(2)), Some(who(1)));
        assert!(c.is_held_by(2) && !c.is_held_by(1));
        assert!(c.release(2));
        assert_eq!(c.holder(), None);
        assert_eq!(c.request(&who(1)), Ok(()));
    }
}
