//! Group commit: the one batching mechanism of the spool and the logger.
//!
//! Work accumulates in a pending batch while one job is in flight; when the job ends,
//! the next job takes everything that accumulated meanwhile, at once. So one `fsync`
//! serves every request that arrived during the previous one, and the batch size adapts
//! to the load by itself (Postfix's and every database's group commit).
//!
//! A job that failed hands its work back with [`Batcher::fail`]: it goes in front of
//! what arrived since (order is kept) and no job starts before the back-off ends.
//!
//! A lane that nobody waits on with a client in front (done marks, log records) may
//! *linger* ([`Batcher::with_linger`]): its next job starts no sooner than the linger after
//! the first piece of work of the batch arrived, so under load one `fsync` serves a few
//! milliseconds' worth of work instead of whatever arrived during one `fsync` (PostgreSQL's
//! `commit_delay`). The store lane, which a client's `250` waits for, does not linger.

use std::time::{Duration, Instant};

/// A batch of pending work: something that can be empty and can absorb another batch.
pub trait Pending: Default {
    fn is_empty(&self) -> bool;
    /// Put `later` after `self`.
    fn append(&mut self, later: Self);
}

impl<T> Pending for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
    fn append(&mut self, mut later: Self) {
        Vec::append(self, &mut later)
    }
}

/// The pending batch, whether a job is in flight, and the back-off after a failure.
#[derive(Debug, Default)]
pub struct Batcher<B: Pending> {
    pending: B,
    busy: bool,
    not_before: Option<Instant>,
    /// A wake-up for the end of the back-off (or the linger) is already scheduled.
    timer_armed: bool,
    /// How long a batch waits for company after its first work arrived.
    linger: Duration,
    /// When the first work of the pending batch was seen (lingering batchers only).
    first_at: Option<Instant>,
}

impl<B: Pending> Batcher<B> {
    /// A batcher whose jobs start at least `linger` after their batch's first work.
    pub fn with_linger(linger: Duration) -> Batcher<B> {
        Batcher {
            linger,
            ..Batcher::default()
        }
    }

    /// Remember when the pending batch's first work was seen; the end of its linger.
    fn linger_until(&mut self, now: Instant) -> Option<Instant> {
        if self.linger.is_zero() || self.pending.is_empty() {
            return None;
        }
        Some(*self.first_at.get_or_insert(now) + self.linger)
    }

    /// The batch being accumulated, to add work to.
    pub fn pending(&mut self) -> &mut B {
        &mut self.pending
    }

    /// Peek at the pending batch.
    pub fn peek(&self) -> &B {
        &self.pending
    }

    /// Take the pending batch for a job, if there is work, no job in flight and no
    /// back-off running; the batcher is then busy until [`done`](Self::done) or
    /// [`fail`](Self::fail).
    pub fn start(&mut self, now: Instant) -> Option<B> {
        let lingering = self.linger_until(now).is_some_and(|t| now < t);
        if self.busy
            || self.pending.is_empty()
            || lingering
            || self.not_before.is_some_and(|t| now < t)
        {
            return None;
        }
        self.not_before = None;
        self.first_at = None;
        self.busy = true;
        Some(std::mem::take(&mut self.pending))
    }

    /// The job in flight ended well.
    pub fn done(&mut self) {
        self.busy = false;
    }

    /// The job in flight failed: `work` goes back in front, nothing starts for `backoff`.
    pub fn fail(&mut self, work: B, now: Instant, backoff: Duration) {
        self.busy = false;
        let later = std::mem::replace(&mut self.pending, work);
        self.pending.append(later);
        self.not_before = Some(now + backoff);
    }

    /// When a job may start again after a failure, if one is waiting for that.
    pub fn backoff_until(&self) -> Option<Instant> {
        self.not_before
    }

    /// While a back-off or a linger runs and no wake-up is scheduled yet: how long until
    /// it ends (the caller schedules a wake-up that calls [`retry_due`](Self::retry_due)
    /// and tries [`start`](Self::start) again). `None` otherwise, so one timer at a time.
    pub fn arm_retry(&mut self, now: Instant) -> Option<Duration> {
        if self.timer_armed {
            return None;
        }
        // While a job runs, its end starts the next one; the linger still counts from now.
        let linger = self.linger_until(now).filter(|_| !self.busy);
        let at = self.not_before.max(linger).filter(|at| now < *at)?;
        self.timer_armed = true;
        Some(at - now)
    }

    /// The wake-up scheduled after [`arm_retry`](Self::arm_retry) fired.
    pub fn retry_due(&mut self) {
        self.timer_armed = false;
    }

    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// No work pending and none in flight.
    pub fn is_idle(&self) -> bool {
        !self.busy && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_at_a_time_takes_everything_pending() {
        let t = Instant::now();
        let mut b: Batcher<Vec<u32>> = Batcher::default();
        assert!(b.start(t).is_none() && b.is_idle());
        b.pending().push(1);
        assert_eq!(b.start(t), Some(vec![1]));
        b.pending().extend([2, 3]);
        assert!(b.start(t).is_none(), "busy");
        assert!(!b.is_idle());
        b.done();
        assert_eq!(b.start(t), Some(vec![2, 3]));
        b.done();
        assert!(b.is_idle());
    }

    #[test]
    fn failed_work_goes_back_in_front_after_a_backoff() {
        let t = Instant::now();
        let mut b: Batcher<Vec<u32>> = Batcher::default();
        b.pending().push(1);
        let job = b.start(t).unwrap();
        b.pending().push(2);
        b.fail(job, t, Duration::from_secs(1));
        assert_eq!(b.backoff_until(), Some(t + Duration::from_secs(1)));
        let half = t + Duration::from_millis(500);
        assert_eq!(b.arm_retry(half), Some(Duration::from_millis(500)));
        assert_eq!(b.arm_retry(half), None, "one wake-up per back-off");
        assert!(b.start(half).is_none());
        b.retry_due();
        assert_eq!(b.start(t + Duration::from_secs(1)), Some(vec![1, 2]));
        assert_eq!(b.backoff_until(), None);
    }

    #[test]
    fn a_lingering_batch_waits_for_company_from_its_first_work() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut b: Batcher<Vec<u32>> = Batcher::with_linger(ms(5));
        assert_eq!(b.arm_retry(t), None, "nothing pending, no timer");
        b.pending().push(1);
        assert_eq!(b.arm_retry(t), Some(ms(5)));
        assert!(b.start(t).is_none(), "lingering");
        b.pending().push(2);
        assert_eq!(b.arm_retry(t + ms(2)), None, "one timer");
        assert!(b.start(t + ms(4)).is_none());
        b.retry_due();
        assert_eq!(b.start(t + ms(5)), Some(vec![1, 2]));
        // Work arriving during the job waits from its own arrival, or the job's end.
        b.pending().push(3);
        assert_eq!(b.arm_retry(t + ms(6)), None, "busy: the job's end kicks it");
        b.done();
        assert!(
            b.start(t + ms(8)).is_none(),
            "3 arrived at 6 and lingers to 11"
        );
        assert_eq!(b.arm_retry(t + ms(8)), Some(ms(3)));
        b.retry_due();
        assert_eq!(b.start(t + ms(11)), Some(vec![3]));
        b.done();
        assert!(b.is_idle());
    }

    #[test]
    fn a_backoff_outlasting_the_linger_wins() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut b: Batcher<Vec<u32>> = Batcher::with_linger(ms(5));
        b.pending().push(1);
        assert_eq!(b.arm_retry(t), Some(ms(5)));
        b.retry_due();
        let job = b.start(t + ms(5)).unwrap();
        b.fail(job, t + ms(6), ms(1000));
        assert_eq!(b.arm_retry(t + ms(6)), Some(ms(1000)));
        assert!(b.start(t + ms(500)).is_none());
        assert_eq!(b.start(t + ms(1006)), Some(vec![1]));
    }
}
