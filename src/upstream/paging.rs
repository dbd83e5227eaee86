//! Reads a whole paged list: page 1 first, then the remaining pages concurrently, into one
//! [`Fleet`] snapshot, and checks that the pages fit together. Any failed page fails the whole
//! read: partial counts would fire false alerts. Knows pages, not HTTP: any [`Pages`] will do.

use std::collections::BTreeMap;
use std::future::Future;
use tokio::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::fleet::{Fleet, Instance};
use crate::upstream::error::{ApiError, Progress};
use crate::upstream::settings::AccountSettings;
use crate::upstream::wire::Page;

/// A paged list: what [`read_fleet`] reads.
pub trait Pages: Sync {
    /// How far and how wide a read may go (`max_pages`, `max_instances`, `concurrency`), and
    /// the rate the pages are asked at, which the advice at the deadline weighs.
    fn settings(&self) -> &AccountSettings;
    /// Throttled answers so far, of every read: the advice at a deadline weighs them.
    fn throttled(&self) -> u64 {
        0
    }
    /// Page `page_no` (from 1), before `deadline`. Its failures are counted where it is fetched;
    /// a page the deadline cut off is [`ApiError::Deadline`], which the read fills in.
    fn page(
        &self,
        page_no: u64,
        deadline: Instant,
    ) -> impl Future<Output = Result<Page, ApiError>> + Send;
}

/// Reads the list before `deadline`. A list that changed while it was paged (its `total_count`
/// moved between pages, or the pages overlap or leave a gap) is read once more; if the second
/// read does not fit together either, the scrape fails with `list_changed` rather than export a
/// count that is silently wrong.
pub async fn read_fleet<P: Pages>(pages: &P, deadline: Instant) -> Result<Fleet, ApiError> {
    let reason = match read_list(pages, deadline).await? {
        Read::Whole(fleet) => return Ok(fleet),
        Read::Changed(reason) => reason,
    };
    tracing::info!(
        reason,
        "the list changed while it was paged; reading it again"
    );
    match read_list(pages, deadline).await? {
        Read::Whole(fleet) => Ok(fleet),
        Read::Changed(reason) => Err(ApiError::ListChanged { reason }),
    }
}

/// How a read is going: what the error says when its deadline passes. Measured on tokio's
/// clock, which tests pause.
struct ReadPace {
    started: tokio::time::Instant,
    /// The source's throttled answers when the read began.
    throttled_before: u64,
    /// Time spent on the pages read, each from when it was asked for.
    page_time: std::time::Duration,
    progress: Progress,
}

impl ReadPace {
    fn new(limits: &AccountSettings, throttled_before: u64) -> Self {
        ReadPace {
            started: tokio::time::Instant::now(),
            throttled_before,
            page_time: std::time::Duration::ZERO,
            progress: Progress {
                concurrency: limits.concurrency,
                requests_per_second: limits.requests_per_second,
                ..Progress::default()
            },
        }
    }

    /// Page `page_no`, asked for now, before `deadline`.
    async fn page<P: Pages>(
        &mut self,
        source: &P,
        page_no: u64,
        deadline: Instant,
    ) -> Result<Page, ApiError> {
        let asked = tokio::time::Instant::now();
        let read = tokio::time::timeout_at(deadline, source.page(page_no, deadline));
        let result = read.await.map_err(|_| self.deadline(source.throttled()))?;
        self.arrived(result, asked, source.throttled())
    }

    /// Counts a page that arrived; a page the deadline cut off becomes the read's deadline error.
    fn arrived(
        &mut self,
        result: Result<Page, ApiError>,
        asked: tokio::time::Instant,
        throttled_now: u64,
    ) -> Result<Page, ApiError> {
        match result {
            Ok(page) => {
                self.progress.pages_read += 1;
                self.page_time += asked.elapsed();
                Ok(page)
            }
            Err(ApiError::Deadline { progress }) => {
                self.progress.throttled |= progress.throttled;
                Err(self.deadline(throttled_now))
            }
            Err(error) => Err(error),
        }
    }

    /// The read's deadline error, given the source's throttled answers now.
    fn deadline(&self, throttled_now: u64) -> ApiError {
        let read = self.progress.pages_read;
        ApiError::Deadline {
            progress: Progress {
                elapsed: self.started.elapsed(),
                page_time: (read > 0).then(|| self.page_time / read as u32),
                throttled: self.progress.throttled || throttled_now > self.throttled_before,
                ..self.progress.clone()
            },
        }
    }
}

enum Read {
    /// Every instance, each once.
    Whole(Fleet),
    /// The pages did not fit together; why.
    Changed(String),
}

/// One pass over the list. The page size is what page 1 actually held, not what was asked for:
/// the service may cap it. With `total_count` the number of pages is known; without it, paging
/// ends at the first short page. Either way an empty page ends the list early. A page is kept
/// only where it fits the list ([`misfit`]): pages asked for before the end was known, which
/// arrive after it, must hold nothing, so rows without an id (which cannot be told apart) can
/// never be counted twice.
async fn read_list<P: Pages>(source: &P, deadline: Instant) -> Result<Read, ApiError> {
    let limits = source.settings();
    let max_pages = u64::from(limits.max_pages);
    let mut pace = ReadPace::new(limits, source.throttled());
    let first = pace.page(source, 1, deadline).await?;
    if let Some(echo) = first.page_no.filter(|n| *n != 1) {
        return Ok(Read::Changed(format!("page 1 was answered as page {echo}")));
    }
    let total = first.total_count;
    let per_page = first.instances.len() as u64;
    let max_instances = u64::from(limits.max_instances);
    if let Some(total) = total.filter(|t| *t > max_instances) {
        return Err(ApiError::TooManyInstances {
            max: limits.max_instances,
            seen: Some(total),
        });
    }
    let mut held = per_page;
    let mut pages: BTreeMap<u64, Vec<Instance>> = BTreeMap::new();
    let mut totals_seen = vec![total];
    pages.insert(1, first.instances);

    // Inclusive: the last page of the list, as far as is known.
    let mut last = 1;
    let done_after_first = per_page == 0 || total.is_some_and(|t| per_page >= t);
    if !done_after_first {
        let too_many = ApiError::TooManyPages {
            max: limits.max_pages,
            per_page,
        };
        let known_last = total.map(|t| t.div_ceil(per_page));
        if known_last.is_some_and(|last| last > max_pages) {
            return Err(too_many);
        }
        pace.progress.pages = known_last;
        // Lowered when a page shows the list ends sooner.
        last = known_last.unwrap_or(max_pages);
        let mut next = 2;
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < limits.concurrency && next <= last {
                let page_no = next;
                in_flight.push(async move {
                    let asked = tokio::time::Instant::now();
                    (page_no, source.page(page_no, deadline).await, asked)
                });
                next += 1;
            }
            let arrived = tokio::time::timeout_at(deadline, in_flight.next());
            let Some((page_no, result, asked)) = arrived
                .await
                .map_err(|_| pace.deadline(source.throttled()))?
            else {
                break;
            };
            // Returning drops the pages still in flight, which cancels their requests.
            let page = pace.arrived(result, asked, source.throttled())?;
            // An empty page past the end may say anything: it adds nothing.
            let echo = page.page_no.filter(|_| !page.instances.is_empty());
            if let Some(echo) = echo.filter(|n| *n != page_no) {
                return Ok(Read::Changed(format!(
                    "page {page_no} was answered as page {echo}"
                )));
            }
            let len = page.instances.len() as u64;
            held += len;
            if held > max_instances {
                // A list that does not say its length, or pages that hold more than it said.
                return Err(ApiError::TooManyInstances {
                    max: limits.max_instances,
                    seen: None,
                });
            }
            if len == 0 || (total.is_none() && len < per_page) {
                let end = if len == 0 { page_no - 1 } else { page_no };
                last = last.min(end);
            }
            totals_seen.push(page.total_count);
            pages.insert(page_no, page.instances);
        }
        let ended_at_limit = pages
            .get(&max_pages)
            .is_some_and(|p| p.len() as u64 == per_page);
        if total.is_none() && last == max_pages && ended_at_limit {
            return Err(too_many);
        }
    }

    if let Some(moved) = totals_seen.iter().flatten().find(|t| Some(**t) != total) {
        return Ok(Read::Changed(format!(
            "total_count went from {} to {moved} between pages",
            total.unwrap_or_default()
        )));
    }
    if let Some(reason) = misfit(&pages, last, per_page, total) {
        return Ok(Read::Changed(reason));
    }
    // Pages past the end were asked for before it was known; they hold nothing (checked above).
    let within = pages
        .into_iter()
        .filter(|(n, _)| *n <= last)
        .map(|(_, p)| p);
    // In page order, so which copy of a duplicate is kept does not depend on arrival order.
    let (fleet, duplicates) = Fleet::from_pages(within);
    if duplicates > 0 {
        tracing::debug!(
            duplicates,
            "instances seen on more than one page were counted once"
        );
    }
    if let Some(total) = total.filter(|t| *t != fleet.len() as u64) {
        return Ok(Read::Changed(format!(
            "the pages held {} distinct instances, total_count says {total}",
            fleet.len()
        )));
    }
    Ok(Read::Whole(fleet))
}

/// Why the pages read do not make one list ending at page `last`, of `per_page` rows a page
/// (and `total` rows in all, when the service said), if they do not: rows on a page past the
/// end, or, when some row has no id, a page before the last that is not full or a last page
/// of another size than `total` leaves for it. Rows with ids need no more: a repeated id is
/// counted once and the distinct ids must make `total`, so an instance seen on two pages of a
/// list that moved is counted once. Rows without one cannot be told apart, so there every row
/// must have its own place in the list.
fn misfit(
    pages: &BTreeMap<u64, Vec<Instance>>,
    last: u64,
    per_page: u64,
    total: Option<u64>,
) -> Option<String> {
    let anonymous = pages.values().flatten().any(|i| i.instance_id().is_empty());
    for (&page_no, rows) in pages {
        let len = rows.len() as u64;
        let expected = match (page_no.cmp(&last), total) {
            (std::cmp::Ordering::Greater, _) => 0,
            _ if !anonymous => continue,
            (std::cmp::Ordering::Less, _) => per_page,
            (std::cmp::Ordering::Equal, Some(total)) => {
                total.saturating_sub((last - 1) * per_page).min(per_page)
            }
            // Without total_count the last page is whatever short page ended the list.
            (std::cmp::Ordering::Equal, None) => continue,
        };
        if len != expected {
            return Some(if page_no > last {
                format!("page {page_no} held {len} rows after the list ended at page {last}")
            } else {
                format!("page {page_no} held {len} rows where the list has {expected} there")
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Identity;
    use crate::upstream::error::RequestFailure;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A list of `ids`, served `per_page` at a time, with its `total_count` on every page (or
    /// none); with `moving_total`, every page after the first counts one more.
    struct FakeList {
        ids: Vec<String>,
        per_page: usize,
        total: bool,
        settings: AccountSettings,
        fail_page: Option<u64>,
        asked: Mutex<Vec<u64>>,
        moving_total: bool,
        /// How long each page takes.
        latency: Duration,
    }

    /// Concurrency 3, with these limits.
    fn settings(max_pages: u32, max_instances: u32) -> AccountSettings {
        AccountSettings {
            max_pages,
            max_instances,
            concurrency: 3,
            ..AccountSettings::example()
        }
    }

    impl FakeList {
        fn new(n: usize, per_page: usize) -> Self {
            FakeList {
                ids: (0..n).map(|i| format!("id-{i}")).collect(),
                per_page,
                total: true,
                settings: settings(100, 100_000),
                fail_page: None,
                asked: Mutex::new(Vec::new()),
                moving_total: false,
                latency: Duration::ZERO,
            }
        }

        fn asked(&self) -> Vec<u64> {
            let mut asked = self.asked.lock().unwrap().clone();
            asked.sort();
            asked
        }
    }

    impl Pages for FakeList {
        fn settings(&self) -> &AccountSettings {
            &self.settings
        }

        async fn page(&self, page_no: u64, _deadline: Instant) -> Result<Page, ApiError> {
            self.asked.lock().unwrap().push(page_no);
            tokio::time::sleep(self.latency).await;
            if self.fail_page == Some(page_no) {
                let timeout = RequestFailure::Timeout(Duration::from_secs(1));
                return Err(ApiError::request(page_no, "r", timeout));
            }
            let from = (page_no as usize - 1) * self.per_page;
            let instances = self
                .ids
                .iter()
                .skip(from)
                .take(self.per_page)
                .map(|id| Instance {
                    identity: Identity::new(id, "", ""),
                    ..Instance::default()
                })
                .collect();
            let moved = u64::from(self.moving_total && page_no > 1);
            Ok(Page {
                instances,
                total_count: self.total.then_some(self.ids.len() as u64 + moved),
                ..Page::default()
            })
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test]
    async fn every_page_is_read_once_into_one_fleet() {
        let list = FakeList::new(250, 100);
        let fleet = read_fleet(&list, soon()).await.unwrap();
        assert_eq!(fleet.len(), 250);
        assert_eq!(list.asked(), [1, 2, 3]);
    }

    #[tokio::test]
    async fn without_total_count_the_list_ends_at_the_first_short_page() {
        let list = FakeList {
            total: false,
            ..FakeList::new(250, 100)
        };
        assert_eq!(read_fleet(&list, soon()).await.unwrap().len(), 250);
        // Pages are asked three at a time; none past the short one is needed, but some may
        // already be on their way when it arrives.
        assert!(list.asked().starts_with(&[1, 2, 3]));
    }

    #[tokio::test]
    async fn a_list_longer_than_max_pages_fails_before_reading_it() {
        let list = FakeList {
            settings: settings(2, 100_000),
            ..FakeList::new(250, 100)
        };
        let error = read_fleet(&list, soon()).await.unwrap_err();
        assert!(matches!(
            error,
            ApiError::TooManyPages {
                max: 2,
                per_page: 100
            }
        ));
        assert_eq!(list.asked(), [1]);
    }

    #[tokio::test]
    async fn a_list_longer_than_max_instances_is_refused_before_or_as_it_is_read() {
        let list = FakeList {
            settings: settings(100, 200),
            ..FakeList::new(250, 100)
        };
        let error = read_fleet(&list, soon()).await.unwrap_err();
        assert!(matches!(
            error,
            ApiError::TooManyInstances {
                max: 200,
                seen: Some(250)
            }
        ));
        assert_eq!(list.asked(), [1], "refused on total_count alone");
        assert!(error
            .to_string()
            .contains("more than 200 instances (250 by total_count)"));
        // Without total_count, as the rows arrive.
        let list = FakeList {
            settings: settings(100, 200),
            total: false,
            ..FakeList::new(1_000, 100)
        };
        let error = read_fleet(&list, soon()).await.unwrap_err();
        assert!(matches!(
            error,
            ApiError::TooManyInstances {
                max: 200,
                seen: None
            }
        ));
    }

    #[tokio::test]
    async fn a_moving_total_count_is_read_twice_then_refused() {
        let list = FakeList {
            moving_total: true,
            ..FakeList::new(250, 100)
        };
        let error = read_fleet(&list, soon()).await.unwrap_err();
        assert!(matches!(error, ApiError::ListChanged { .. }), "{error}");
        assert_eq!(list.asked(), [1, 1, 2, 2, 3, 3]);
    }

    #[tokio::test]
    async fn one_failed_page_fails_the_whole_read() {
        let list = FakeList {
            fail_page: Some(2),
            ..FakeList::new(250, 100)
        };
        let error = read_fleet(&list, soon()).await.unwrap_err();
        assert!(matches!(
            error,
            ApiError::Request {
                page: 2,
                failure: RequestFailure::Timeout(_),
                ..
            }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_deadline_the_error_says_how_far_the_read_got_and_what_would_help() {
        // 1,000 pages of 300 ms, three at a time, against a 10 s deadline.
        let list = FakeList {
            latency: Duration::from_millis(300),
            settings: settings(1_000, 100_000),
            ..FakeList::new(100_000, 100)
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let error = read_fleet(&list, deadline).await.unwrap_err();
        let ApiError::Deadline { progress } = &error else {
            panic!("{error}")
        };
        // Page 1 alone, then three every 300 ms: 1 + 3 × 32 pages by 9.9 s.
        assert_eq!(progress.pages_read, 97);
        assert_eq!(progress.pages, Some(1_000));
        assert_eq!(progress.page_time, Some(Duration::from_millis(300)));
        assert_eq!(
            error.to_string(),
            "the deadline passed after 10.0 s with 97 of 1000 pages read (0.30 s a page, 3 at once); \
             the whole list needs about 100 s at that pace"
        );
        // Under a rate limit that is slower than the pace, the limit is what bounds the read.
        let limited = Progress {
            requests_per_second: Some(5.0),
            ..progress.clone()
        };
        assert_eq!(limited.whole_list_needs(), Some(Duration::from_secs(200)));
        assert!(limited.rate_bound() && !progress.rate_bound());
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_before_the_first_page_says_so() {
        let list = FakeList {
            latency: Duration::from_secs(20),
            ..FakeList::new(10, 100)
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let error = read_fleet(&list, deadline).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "the deadline passed after 10.0 s, before a page was read whole"
        );
    }

    /// What a hostile pager answers for one page number, instead of the page.
    #[derive(Debug, Clone)]
    enum Answer {
        Right,
        /// The rows of another page.
        RepeatOf(u64),
        /// The rows this many places further on (or back).
        Shifted(i64),
        /// Only the first rows.
        Short(usize),
        Empty,
        /// Every row twice.
        Doubled,
        /// Answered as another page number.
        EchoOf(u64),
    }

    /// A list of `n` rows served by a pager that answers `answers[page]` where it has one,
    /// each page after `latency_ms[page]`, with the list's true `total_count` or none.
    struct Hostile {
        rows: Vec<Instance>,
        per_page: usize,
        total: bool,
        answers: std::collections::HashMap<u64, (Answer, bool)>,
        latency_ms: Vec<u64>,
    }

    impl Pages for Hostile {
        fn settings(&self) -> &AccountSettings {
            static SETTINGS: std::sync::LazyLock<AccountSettings> =
                std::sync::LazyLock::new(|| AccountSettings {
                    max_pages: 50,
                    max_instances: 100_000,
                    concurrency: 4,
                    ..AccountSettings::example()
                });
            &SETTINGS
        }

        async fn page(&self, page_no: u64, _deadline: Instant) -> Result<Page, ApiError> {
            let ms = self.latency_ms[page_no as usize % self.latency_ms.len()];
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let slice = |from: i64| -> Vec<Instance> {
                let from = from.max(0) as usize;
                self.rows
                    .iter()
                    .skip(from)
                    .take(self.per_page)
                    .cloned()
                    .collect()
            };
            let at = (page_no as i64 - 1) * self.per_page as i64;
            let (answer, strip) = self
                .answers
                .get(&page_no)
                .cloned()
                .unwrap_or((Answer::Right, false));
            let mut echo = page_no;
            let mut instances = match answer {
                Answer::Right => slice(at),
                Answer::RepeatOf(k) => slice((k as i64 - 1) * self.per_page as i64),
                Answer::Shifted(d) => slice(at + d),
                Answer::Short(m) => slice(at).into_iter().take(m).collect(),
                Answer::Empty => Vec::new(),
                Answer::Doubled => slice(at).into_iter().flat_map(|i| [i.clone(), i]).collect(),
                Answer::EchoOf(k) => {
                    echo = k;
                    slice((k as i64 - 1) * self.per_page as i64)
                }
            };
            if strip {
                for i in &mut instances {
                    i.identity = Identity::new("", i.instance_name(), "");
                }
            }
            Ok(Page {
                instances,
                page_no: Some(echo),
                total_count: self.total.then_some(self.rows.len() as u64),
                ..Page::default()
            })
        }
    }

    fn answer() -> impl proptest::strategy::Strategy<Value = (Answer, bool)> {
        use proptest::prelude::*;
        let answer = prop_oneof![
            Just(Answer::Right),
            (1..12u64).prop_map(Answer::RepeatOf),
            (-150..150i64).prop_map(Answer::Shifted),
            (0..100usize).prop_map(Answer::Short),
            Just(Answer::Empty),
            Just(Answer::Doubled),
            (1..12u64).prop_map(Answer::EchoOf),
        ];
        (answer, any::<bool>())
    }

    /// Runs `read_fleet` over `pager` on paused time.
    fn read(pager: &Hostile) -> Result<Fleet, ApiError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(read_fleet(pager, soon()))
    }

    fn rows(n: usize, with_ids: bool) -> Vec<Instance> {
        (0..n)
            .map(|i| Instance {
                identity: Identity::new(
                    &if with_ids {
                        format!("id-{i}")
                    } else {
                        String::new()
                    },
                    &format!("phone-{i}"),
                    "",
                ),
                ..Instance::default()
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// With the true `total_count` on every page, any page may lie in any way: the read is
        /// exact (every row once, whatever carries an id) or it fails.
        #[test]
        fn with_total_count_a_hostile_pager_gets_an_exact_count_or_a_failure(
            n in 1..1_000usize,
            with_ids in proptest::prelude::any::<bool>(),
            answers in proptest::collection::hash_map(1..12u64, answer(), 0..4),
            latency_ms in proptest::collection::vec(0..50u64, 1..8),
        ) {
            let pager = Hostile { rows: rows(n, with_ids), per_page: 100, total: true, answers, latency_ms };
            if let Ok(fleet) = read(&pager) {
                proptest::prop_assert_eq!(fleet.len(), n);
                let lied_with_ids = pager.answers.values().any(|(_, strip)| !strip);
                if with_ids && (lied_with_ids || pager.answers.is_empty()) {
                    let ids: std::collections::BTreeSet<&str> =
                        fleet.instances().map(|i| i.instance_id()).collect();
                    // Ids that came with every row read are those of the list, each once.
                    if ids.iter().all(|id| !id.is_empty()) {
                        proptest::prop_assert_eq!(ids.len(), n);
                    }
                }
            }
        }

        /// Without `total_count`, the list ends where a page first shows its end (a short or
        /// empty page, answered truly); pages asked for past it may answer anything, rows with
        /// ids or without: they never add to the count.
        #[test]
        fn without_total_count_pages_past_the_end_never_add_rows(
            n in 1..1_000usize,
            with_ids in proptest::prelude::any::<bool>(),
            past in proptest::collection::vec(answer(), 1..5),
            latency_ms in proptest::collection::vec(0..50u64, 1..8),
        ) {
            // The first short or empty page; a short page 1 reads as the page size the service
            // chose, so there the empty page 2 ends the list.
            let end = ((n / 100) as u64 + 1).max(2);
            let answers = past
                .into_iter()
                .enumerate()
                .map(|(k, answer)| (end + 1 + k as u64, answer))
                .collect();
            let pager = Hostile { rows: rows(n, with_ids), per_page: 100, total: false, answers, latency_ms };
            if let Ok(fleet) = read(&pager) {
                proptest::prop_assert_eq!(fleet.len(), n);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pages_in_flight_past_a_short_page_that_repeat_it_are_not_added() {
        // 250 rows without ids; page 3 is short; pages 4 and 5, asked before it arrived,
        // repeat it (as the review's upstream did): 350 were exported with up 1.
        let answers = [4, 5]
            .into_iter()
            .map(|p| (p, (Answer::RepeatOf(3), false)))
            .collect();
        let pager = Hostile {
            rows: rows(250, false),
            per_page: 100,
            total: false,
            answers,
            latency_ms: vec![50, 0, 0, 50, 0, 0],
        };
        let error = read_fleet(&pager, soon()).await.unwrap_err();
        assert!(matches!(error, ApiError::ListChanged { .. }), "{error}");
        assert!(
            error.to_string().contains("after the list ended at page 3"),
            "{error}"
        );
    }
}
