//! The cap on requests in flight to the API over all accounts
//! (`--clouddevice.max-requests-in-flight`), shared so that accounts cannot starve each other:
//! one account holds at most half of the shared slots, and each account's first request in
//! flight has a slot of its own that no other account can take. However many accounts are
//! slow, silent or held by their gateway, a healthy one always has a request on its way.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots every account shares: made once, handed to each account's reader.
#[derive(Debug, Clone)]
pub struct RequestSlots {
    shared: Arc<Semaphore>,
    /// The most shared slots one account holds.
    share: usize,
}

impl RequestSlots {
    /// `cap` slots shared by every account (at least one).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        RequestSlots {
            shared: Arc::new(Semaphore::new(cap)),
            share: cap.div_ceil(2),
        }
    }

    /// The slots of one more account.
    pub fn for_account(&self) -> AccountSlots {
        AccountSlots {
            shared: self.shared.clone(),
            share: Arc::new(Semaphore::new(self.share)),
            own: Arc::new(Semaphore::new(1)),
        }
    }
}

/// One account's way to the shared slots.
#[derive(Debug)]
pub struct AccountSlots {
    shared: Arc<Semaphore>,
    /// Bounds this account's hold on `shared`.
    share: Arc<Semaphore>,
    /// The slot no other account can take.
    own: Arc<Semaphore>,
}

/// A request's place in flight; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    /// The account's own slot, or its share and a shared slot.
    _held: Vec<OwnedSemaphorePermit>,
    own: bool,
}

impl Slot {
    /// Whether this is the account's own slot.
    pub fn is_own(&self) -> bool {
        self.own
    }
}

impl AccountSlots {
    /// Waits for a place in flight: the account's own slot if it is free, else a shared one
    /// within the account's share, whichever comes first. Cancelled with the read that waits.
    pub async fn acquire(&self) -> Option<Slot> {
        let own = |permit: OwnedSemaphorePermit| Slot {
            _held: vec![permit],
            own: true,
        };
        if let Ok(permit) = self.own.clone().try_acquire_owned() {
            return Some(own(permit));
        }
        let shared = async {
            let share = self.share.clone().acquire_owned().await.ok()?;
            let slot = self.shared.clone().acquire_owned().await.ok()?;
            Some(Slot {
                _held: vec![share, slot],
                own: false,
            })
        };
        tokio::select! {
            permit = self.own.clone().acquire_owned() => permit.ok().map(own),
            shared = shared => shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_account_takes_at_most_half_the_shared_slots_and_always_has_its_own() {
        let slots = RequestSlots::new(4);
        let greedy = slots.for_account();
        // Its own slot, then two of the four shared ones: the third waits.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(greedy.acquire().await.unwrap());
        }
        let waits = tokio::time::timeout(std::time::Duration::from_millis(50), greedy.acquire());
        assert!(waits.await.is_err(), "past its share");
        // Sixteen accounts each holding all they may: another still gets its own slot at once.
        let others: Vec<AccountSlots> = (0..16).map(|_| slots.for_account()).collect();
        for other in &others {
            for _ in 0..3 {
                let ms = std::time::Duration::from_millis(5);
                if let Ok(Some(slot)) = tokio::time::timeout(ms, other.acquire()).await {
                    held.push(slot);
                }
            }
        }
        assert_eq!(held.len(), 3 + 16 + 2, "every slot is taken");
        let healthy = slots.for_account();
        let now = tokio::time::timeout(std::time::Duration::from_millis(50), healthy.acquire());
        assert!(now.await.unwrap().unwrap().is_own());
    }

    #[tokio::test]
    async fn a_freed_own_slot_is_taken_by_a_request_waiting_for_a_shared_one() {
        let slots = RequestSlots::new(1);
        let hog = slots.for_account();
        let _shared = hog.acquire().await.unwrap();
        let _hog_shared = hog.acquire().await.unwrap();
        let account = slots.for_account();
        let first = account.acquire().await.unwrap();
        let second = tokio::spawn(async move {
            let slot = account.acquire().await;
            (slot, account)
        });
        tokio::task::yield_now().await;
        drop(first);
        let (slot, _) = second.await.unwrap();
        assert!(slot.unwrap().is_own());
    }
}
