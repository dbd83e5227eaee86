//! The request rate of one account. Every request the account sends (each page, each retry, for
//! every scrape and collection) takes its turn here, so that the exporter alone never goes past
//! the gateway's per-account limit (`--clouddevice.requests-per-second`). When the gateway
//! throttles all the same (`APIGW.0308`, HTTP 429), the account holds every request until the
//! `Retry-After` has passed (a second without one), not only the one that was refused, and a
//! limited rate halves, then climbs back a step with each answer that is not throttled.
//!
//! Time is tokio's, so tests pause and advance it. `governor` paces requests too, but its rate is
//! fixed once built and it cannot hold everyone after a 429; this is the little it takes.

use std::sync::Mutex;

use tokio::time::{Duration, Instant};

/// The most a throttled rate falls: a tenth of the one configured.
const FLOOR: f64 = 0.1;
/// A throttled rate climbs back this share of the configured rate with each answer.
const STEP: f64 = 0.025;
/// The hold after a throttled answer without `Retry-After` (Huawei's advice is 2-5 s before
/// trying again; the first retry's backoff adds to it).
const HOLD: Duration = Duration::from_secs(1);
/// The longest hold honoured, as for retries.
const MAX_HOLD: Duration = Duration::from_secs(60);

/// One account's turns.
#[derive(Debug)]
pub struct RateLimit {
    /// Requests a second at most (`None`: no limit, but throttling still holds everyone).
    limit: Option<f64>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The rate now: the limit, or less after a throttled answer.
    rate: Option<f64>,
    /// The earliest the next request may go.
    next: Instant,
    /// When the rate was last halved: answers to requests sent before then change nothing, so
    /// that a burst of 429s halves it once.
    cut_at: Option<Instant>,
    /// Throttled answers so far: a request whose turn was given before one takes a new turn.
    holds: u64,
}

/// What a request's turn cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateTurn {
    /// It may go now, after waiting this long.
    Go(Duration),
    /// Its turn comes after the deadline: it was not waited for.
    TooLate,
}

impl RateLimit {
    /// `limit` requests a second at most, or none.
    pub fn new(limit: Option<f64>) -> Self {
        RateLimit {
            limit,
            state: Mutex::new(State {
                rate: limit,
                next: Instant::now(),
                cut_at: None,
                holds: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for this request's turn, unless it comes after `deadline`. A turn given before a
    /// throttled answer is given again after the hold, at the lowered rate: the requests already
    /// waiting must not hit the same wall.
    pub async fn turn(&self, deadline: Instant) -> RateTurn {
        let asked = Instant::now();
        let mut now = asked;
        loop {
            let (slot, holds) = {
                let mut state = self.lock();
                let slot = state.next.max(now);
                if slot > deadline {
                    return RateTurn::TooLate;
                }
                if let Some(rate) = state.rate {
                    state.next = slot + Duration::from_secs_f64(1.0 / rate);
                }
                (slot, state.holds)
            };
            if slot > now {
                tokio::time::sleep_until(slot).await;
            }
            if self.lock().holds == holds {
                return RateTurn::Go(slot - asked);
            }
            now = Instant::now();
        }
    }

    /// A request sent at `sent` was throttled: hold every request of the account until
    /// `retry_after` (or [`HOLD`]) has passed, and halve a limited rate, once for all the
    /// requests already on their way.
    pub fn throttled(&self, sent: Instant, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut state = self.lock();
        state.next = state
            .next
            .max(now + retry_after.unwrap_or(HOLD).min(MAX_HOLD));
        state.holds += 1;
        if state.cut_at.is_some_and(|cut| sent <= cut) {
            return;
        }
        state.cut_at = Some(now);
        if let (Some(rate), Some(limit)) = (state.rate, self.limit) {
            state.rate = Some((rate / 2.0).max(limit * FLOOR));
        }
    }

    /// An answer that was not throttled: a lowered rate climbs back a step.
    pub fn answered(&self) {
        let mut state = self.lock();
        if let (Some(rate), Some(limit)) = (state.rate, self.limit) {
            state.rate = Some((rate + limit * STEP).min(limit));
        }
    }

    /// The rate allowed now, when limited.
    pub fn rate(&self) -> Option<f64> {
        self.lock().rate
    }

    /// The configured limit.
    pub fn limit(&self) -> Option<f64> {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// The times, from `start`, at which `n` requests taken together get their turns.
    async fn turns(limit: &RateLimit, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..n {
            assert!(matches!(limit.turn(far()).await, RateTurn::Go(_)));
            at.push(Instant::now() - start);
        }
        at
    }

    /// `n` requests that take their turns at once, each ending with the time from now it went.
    fn together(
        limit: &std::sync::Arc<RateLimit>,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<Duration>> {
        let started = Instant::now();
        (0..n)
            .map(|_| {
                let limit = limit.clone();
                tokio::spawn(async move {
                    limit.turn(far()).await;
                    Instant::now() - started
                })
            })
            .collect()
    }

    /// When each of `tasks` went, in order.
    async fn ended(tasks: Vec<tokio::task::JoinHandle<Duration>>) -> Vec<Duration> {
        let mut at = Vec::new();
        for task in tasks {
            at.push(task.await.unwrap());
        }
        at.sort();
        at
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn requests_go_at_the_rate_and_no_faster() {
        let limit = RateLimit::new(Some(10.0));
        assert_eq!(turns(&limit, 5).await, ms(&[0, 100, 200, 300, 400]));
        // Concurrent requests share the same turns.
        let limit = std::sync::Arc::new(RateLimit::new(Some(4.0)));
        let tasks = together(&limit, 4);
        assert_eq!(ended(tasks).await, ms(&[0, 250, 500, 750]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_after_the_deadline_is_not_waited_for() {
        let limit = RateLimit::new(Some(1.0));
        let deadline = Instant::now() + Duration::from_millis(1500);
        assert_eq!(limit.turn(deadline).await, RateTurn::Go(Duration::ZERO));
        assert_eq!(
            limit.turn(deadline).await,
            RateTurn::Go(Duration::from_secs(1))
        );
        let before = Instant::now();
        assert_eq!(limit.turn(deadline).await, RateTurn::TooLate);
        assert_eq!(Instant::now(), before, "no time passed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_answer_holds_everyone_and_halves_the_rate_once() {
        let limit = RateLimit::new(Some(10.0));
        let sent = Instant::now();
        limit.turn(far()).await;
        // Three answers to requests sent before the first 429 came back: one cut.
        for _ in 0..3 {
            limit.throttled(sent, Some(Duration::from_secs(2)));
        }
        assert_eq!(limit.rate(), Some(5.0));
        // Nobody goes before the Retry-After has passed; then at the halved rate.
        assert_eq!(turns(&limit, 3).await, ms(&[2000, 2200, 2400]));
        // A 429 to a request sent after the cut halves it again, down to the floor at most.
        for _ in 0..10 {
            limit.throttled(Instant::now(), None);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(limit.rate(), Some(1.0));
        // Each answer that is not throttled climbs back a step of 0.25 a second.
        for _ in 0..4 {
            limit.answered();
        }
        assert_eq!(limit.rate(), Some(2.0));
        for _ in 0..100 {
            limit.answered();
        }
        assert_eq!(limit.rate(), Some(10.0));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_only_throttling_holds_requests() {
        let limit = RateLimit::new(None);
        assert_eq!(turns(&limit, 3).await, ms(&[0, 0, 0]));
        limit.throttled(Instant::now(), None);
        assert_eq!(turns(&limit, 2).await, ms(&[1000, 1000]));
        assert_eq!(limit.rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_already_waiting_when_one_is_throttled_wait_for_the_hold_too() {
        let limit = std::sync::Arc::new(RateLimit::new(Some(10.0)));
        let started = Instant::now();
        // Five requests take turns at 0, 100, 200, 300 and 400 ms.
        let tasks = together(&limit, 5);
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(150)).await;
        tokio::task::yield_now().await;
        // The first is answered 429 at 150 ms: those not gone yet wait for the hold (one
        // second) and then go at the halved rate.
        limit.throttled(started, None);
        // The second's turn came at 100 ms; it ran when the test let it, at 150 ms, before the 429.
        assert_eq!(ended(tasks).await, ms(&[0, 150, 1150, 1350, 1550]));
    }
}
