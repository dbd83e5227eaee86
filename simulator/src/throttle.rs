//! The API gateway's per-account rate limit, as Huawei's APIG applies it: at most `limit`
//! requests an account in each second; past it, HTTP 429 with `APIGW.0308` ("policy user over
//! ratelimit, limit:N, time:1 second") and a `Retry-After` until the next second. A refused
//! request does not count against the limit. The per-second counts are what the simulator's
//! stats report. Seconds are read from the simulator's clock, which tests move.

use std::collections::VecDeque;

/// Seconds of counts kept for the stats.
const KEPT: usize = 600;

/// One account's requests, second by second.
#[derive(Debug, Default)]
pub struct Throttle {
    /// (Unix second, requests let through, requests refused), oldest first.
    seconds: VecDeque<(u64, u32, u32)>,
}

/// What the gateway does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Refused: try again in this many seconds.
    Throttled {
        retry_after: u64,
    },
}

/// Requests seen over the kept seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub passed: u64,
    pub throttled: u64,
    /// The most requests let through in one second.
    pub busiest_second: u32,
}

impl Throttle {
    /// Counts a request arriving in Unix second `second`, against `limit` a second (none
    /// without one).
    pub fn arrive(&mut self, second: u64, limit: Option<u32>) -> Verdict {
        if self.seconds.back().is_none_or(|(s, _, _)| *s != second) {
            self.seconds.push_back((second, 0, 0));
            if self.seconds.len() > KEPT {
                self.seconds.pop_front();
            }
        }
        let Some(now) = self.seconds.back_mut() else {
            return Verdict::Pass;
        };
        if limit.is_some_and(|limit| now.1 >= limit) {
            now.2 += 1;
            return Verdict::Throttled { retry_after: 1 };
        }
        now.1 += 1;
        Verdict::Pass
    }

    /// The counts of the seconds since Unix second `since`.
    pub fn stats(&self, since: u64) -> Stats {
        self.seconds.iter().filter(|(s, _, _)| *s >= since).fold(
            Stats::default(),
            |acc, (_, passed, throttled)| Stats {
                passed: acc.passed + u64::from(*passed),
                throttled: acc.throttled + u64::from(*throttled),
                busiest_second: acc.busiest_second.max(*passed),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_a_second_is_throttled_until_the_next() {
        let mut throttle = Throttle::default();
        let verdicts: Vec<Verdict> = (0..4).map(|_| throttle.arrive(100, Some(3))).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Throttled { retry_after: 1 }
            ]
        );
        assert_eq!(throttle.arrive(101, Some(3)), Verdict::Pass);
        assert_eq!(throttle.arrive(101, None), Verdict::Pass);
        assert_eq!(
            throttle.stats(0),
            Stats {
                passed: 5,
                throttled: 1,
                busiest_second: 3
            }
        );
        assert_eq!(throttle.stats(101).passed, 2);
    }
}
