//! The time token lifetimes and the reuse and stale windows are measured on: the system's, or in
//! tests one that is moved forward by hand, so that no test sleeps through a token's lifetime or
//! a window. Network waits and deadlines stay on real time: a moved clock never makes a request
//! time out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The system clock, or the system clock plus whatever a test has added ([`Clock::advance`]).
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Mutex<Duration>>>);

impl Clock {
    /// The system's time, as it passes.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that runs with the system's and also jumps forward when told to.
    pub fn manual() -> Self {
        Clock(Some(Arc::new(Mutex::new(Duration::ZERO))))
    }

    /// Moves a manual clock (and every copy of it) forward; the system clock cannot be moved,
    /// so this does nothing to it.
    pub fn advance(&self, by: Duration) {
        if let Some(offset) = &self.0 {
            *offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
        }
    }

    fn offset(&self) -> Duration {
        self.0.as_ref().map_or(Duration::ZERO, |o| {
            *o.lock().unwrap_or_else(|e| e.into_inner())
        })
    }

    /// Wall-clock time.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.offset()
    }

    /// Monotonic time, for how long ago something happened.
    pub fn instant(&self) -> Instant {
        Instant::now() + self.offset()
    }

    /// Time since `then` (an [`Clock::instant`] of this clock).
    pub fn since(&self, then: Instant) -> Duration {
        self.instant().saturating_duration_since(then)
    }
}

/// The simulator reads the same clock as the exporter under test: both see the same jumps.
impl clouddevice_simulator::TimeSource for Clock {
    fn now(&self) -> SystemTime {
        Clock::now(self)
    }
    fn instant(&self) -> Instant {
        Clock::instant(self)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system"),
            Some(_) => write!(f, "Clock::manual(+{:?})", self.offset()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_and_its_copies_move_together_and_the_system_one_does_not() {
        let manual = Clock::manual();
        let copy = manual.clone();
        let before = copy.instant();
        manual.advance(Duration::from_secs(3600));
        assert!(copy.since(before) >= Duration::from_secs(3600));
        assert!(copy.now() > SystemTime::now() + Duration::from_secs(3599));
        let system = Clock::system();
        system.advance(Duration::from_secs(3600));
        assert!(system.now() < SystemTime::now() + Duration::from_secs(60));
    }
}
