//! Fan-out lanes: large channels are delivered off the publishing task, spread over the
//! runtime's workers.
//!
//! A channel with more than [`LANED_FROM`] local subscribers keeps them split by
//! connection id over a fixed number of lanes (one per core). A publication becomes one
//! [`Job`] per lane — a pointer to the publication and to that lane's share of the
//! subscribers, shared with the registry and copied only when it changes while a job
//! holds it — so the publish returns as soon as the jobs are queued, and nothing per
//! subscriber is allocated.
//!
//! Order: a subscriber always sits in the same lane, and each lane runs its jobs one at a
//! time in the order they were queued (the broker's order), so every subscriber sees a
//! channel's publications in order. Nothing reaches a subscription after it was removed:
//! deliveries check its `live` flag under its outbox's lock (see
//! [`super::Outbox::push_live`]).
//!
//! Where: a lane's task runs on the publisher's runtime. For the HTTP API that is the
//! listener's (`http_server.threads`), not the connections' workers, and that is what
//! keeps latency down under load: measured 1 × 1,000 at 3,000 publications/s, lanes on
//! the connections' workers gave p99 215 ms (their tasks queued behind the writes they
//! had woken), on the listener's thread 51 ms.
//!
//! Load: a lane that has jobs runs as one task, which yields to the runtime after each
//! few jobs. Jobs that queued up behind each other for the same share of subscribers (a
//! busy channel's publications, while the lane was busy) run together, up to [`MAX_RUN`]
//! of them and [`MAX_RUN_BYTES`]: each subscriber gets all of them in one visit, under
//! one lock of its outbox and with one wake-up (measured 1 × 1,000 at 3,600
//! publications/s, five runs each: server user CPU −15%). A lane whose backlog passes
//! [`MAX_BACKLOG`] jobs is helped by the publisher, which runs jobs itself until the
//! backlog is halved: the backlog — and the publications it holds — stays bounded however
//! fast publishers are.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::publication::SharedPublication;
use super::registry::Subscriber;

/// A channel is laned once it has more local subscribers than this; below it the
/// publisher delivers inline (cheaper than a hand-off for a few outboxes).
pub const LANED_FROM: usize = 256;

/// Jobs a lane may hold before the publisher helps run them.
pub const MAX_BACKLOG: usize = 1024;

/// Jobs a lane's task runs before it yields to the runtime's other tasks.
const JOBS_PER_TURN: usize = 8;

/// One publication for one lane's share of a channel's subscribers.
#[derive(Debug)]
pub struct Job {
    /// What to deliver.
    pub publication: Arc<SharedPublication>,
    /// To whom.
    pub subscribers: Arc<Vec<Subscriber>>,
    /// A recovering subscriber's buffer bound (`client.queue_max_size`).
    pub buffer_limit: usize,
}

/// Jobs of one share of subscribers taken together (see [`Lane::take`]).
const MAX_RUN: usize = 32;

/// Bytes (outbox cost) of publications taken together, at most: a run lands in every
/// outbox of its share at once, before any writer can drain, so it must stay far under
/// `client.queue_max_size` (else a burst of large publications would make healthy clients
/// "slow", 3008). Also at most an eighth of that bound.
const MAX_RUN_BYTES: usize = 64 * 1024;

impl Job {
    /// Delivers the publications of `jobs` (one share of subscribers, in queue order):
    /// each subscriber gets all of them in one visit.
    fn run_all(jobs: &[Job]) {
        let Some(first) = jobs.first() else { return };
        if let [job] = jobs {
            // The usual run: one publication, nothing to gather.
            for sub in job.subscribers.iter() {
                sub.deliver(&job.publication, job.buffer_limit);
            }
            return;
        }
        let publications: Vec<Arc<SharedPublication>> = jobs.iter().map(|j| j.publication.clone()).collect();
        for sub in first.subscribers.iter() {
            sub.deliver_all(&publications, first.buffer_limit);
        }
    }

    /// Whether `next` goes to the same subscribers (so may be delivered with this one).
    fn joins(&self, next: &Job) -> bool {
        Arc::ptr_eq(&self.subscribers, &next.subscribers) && self.buffer_limit == next.buffer_limit
    }
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// A task is running (or about to run) this lane.
    scheduled: bool,
}

#[derive(Debug, Default)]
struct Lane {
    queue: Mutex<Queue>,
    /// Held while a job runs: jobs of one lane never run concurrently.
    runner: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single queue operation or one job's pushes, so a
    // poisoned lock still guards consistent data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Lane {
    /// Takes the next run of jobs into `run`: the first queued one and those right behind
    /// it for the same subscribers, up to [`MAX_RUN`] jobs and [`MAX_RUN_BYTES`] (publications that queued up while
    /// the lane was busy reach each subscriber in one visit).
    fn take(q: &mut Queue, run: &mut Vec<Job>) {
        let mut bytes = 0;
        while let Some(job) = q.jobs.pop_front() {
            bytes += job.publication.cost();
            let budget = MAX_RUN_BYTES.min(job.buffer_limit / 8);
            run.push(job);
            let more = run.len() < MAX_RUN
                && q.jobs.front().is_some_and(|next| run[0].joins(next) && bytes + next.publication.cost() <= budget);
            if !more {
                break;
            }
        }
    }

    /// Runs up to `max` jobs; false once the lane is empty (and no longer scheduled).
    fn run_some(&self, max: usize) -> bool {
        let _running = lock(&self.runner);
        let mut run = Vec::new();
        let mut done = 0;
        while done < max {
            {
                let mut q = lock(&self.queue);
                if q.jobs.is_empty() {
                    q.scheduled = false;
                    return false;
                }
                Self::take(&mut q, &mut run);
            }
            done += run.len();
            Job::run_all(&run);
            run.clear();
        }
        true
    }

    /// Runs jobs until the backlog is at most half of [`MAX_BACKLOG`].
    fn help(&self) {
        let _running = lock(&self.runner);
        let mut run = Vec::new();
        loop {
            {
                let mut q = lock(&self.queue);
                if q.jobs.len() <= MAX_BACKLOG / 2 {
                    return;
                }
                Self::take(&mut q, &mut run);
            }
            Job::run_all(&run);
            run.clear();
        }
    }
}

/// The lanes of one hub.
#[derive(Debug)]
pub struct Lanes {
    lanes: Box<[Arc<Lane>]>,
}

impl Default for Lanes {
    fn default() -> Self {
        let n = std::thread::available_parallelism().map_or(2, usize::from).clamp(2, 16);
        Self::new(n)
    }
}

impl Lanes {
    /// `n` lanes (at least one).
    pub fn new(n: usize) -> Self {
        Self { lanes: (0..n.max(1)).map(|_| Arc::default()).collect() }
    }

    /// Number of lanes.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Always false: there is at least one lane.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The lane a connection's subscriptions sit in.
    pub fn of(&self, conn: u64) -> usize {
        (conn % self.lanes.len() as u64) as usize
    }

    /// Queues a job on lane `i`. It runs on a runtime task (or here and now, outside a
    /// runtime); a lane far behind is helped by the caller before this returns.
    pub fn submit(&self, i: usize, job: Job) {
        let lane = &self.lanes[i];
        let (start, backlog) = {
            let mut q = lock(&lane.queue);
            q.jobs.push_back(job);
            let start = !q.scheduled;
            q.scheduled = true;
            (start, q.jobs.len())
        };
        if start {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let lane = lane.clone();
                    runtime.spawn(async move {
                        while lane.run_some(JOBS_PER_TURN) {
                            tokio::task::yield_now().await;
                        }
                    });
                }
                Err(_) => while lane.run_some(usize::MAX) {},
            }
        }
        if backlog > MAX_BACKLOG {
            lane.help();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Drained, Outbox, Outgoing};
    use crate::protocol::Publication;

    fn publication(offset: u64) -> Arc<SharedPublication> {
        SharedPublication::new(Arc::new(Publication { channel: "c".into(), offset, ..Default::default() }))
    }

    fn offsets(outbox: &Outbox) -> Vec<u64> {
        let mut items = Vec::new();
        assert_eq!(outbox.drain(&mut items), Drained::Open);
        items
            .iter()
            .map(|i| match i {
                Outgoing::Publication(p) => p.publication.offset,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn outside_a_runtime_jobs_run_at_once() {
        let lanes = Lanes::new(2);
        let outbox = Outbox::new(1 << 20);
        let subs = Arc::new(vec![Subscriber::plain(1, outbox.clone())]);
        lanes.submit(1, Job { publication: publication(1), subscribers: subs, buffer_limit: 1 << 20 });
        assert_eq!(offsets(&outbox), vec![1]);
    }

    #[test]
    fn jobs_queued_for_one_share_are_taken_together_in_order() {
        let outbox = Outbox::new(1 << 20);
        let share = Arc::new(vec![Subscriber::plain(1, outbox.clone())]);
        let other = Arc::new(vec![Subscriber::plain(2, Outbox::new(1 << 20))]);
        let job = |offset, subscribers: &Arc<Vec<Subscriber>>| Job { publication: publication(offset), subscribers: subscribers.clone(), buffer_limit: 1 << 20 };
        let mut q = Queue::default();
        q.jobs.extend([job(1, &share), job(2, &share), job(3, &share), job(4, &other), job(5, &share)]);
        let mut run = Vec::new();
        Lane::take(&mut q, &mut run);
        assert_eq!(run.iter().map(|j| j.publication.publication.offset).collect::<Vec<_>>(), vec![1, 2, 3], "up to the next share");
        Job::run_all(&run);
        assert_eq!(offsets(&outbox), vec![1, 2, 3], "one visit, in order");
        run.clear();
        Lane::take(&mut q, &mut run);
        assert_eq!(run.len(), 1, "another share's job runs on its own");

        q.jobs.extend((10..10 + 2 * MAX_RUN as u64).map(|o| job(o, &share)));
        run.clear();
        Lane::take(&mut q, &mut run);
        assert_eq!(run.len(), MAX_RUN, "a run is bounded");

        // Large publications: a run stays under its byte budget, so a burst of them cannot
        // land in an outbox at once past the connection's bound.
        let big = |offset| {
            let p = SharedPublication::new(Arc::new(Publication { channel: "c".into(), offset, data: vec![b'x'; 20_000].into(), ..Default::default() }));
            Job { publication: p, subscribers: share.clone(), buffer_limit: 1 << 20 }
        };
        q.jobs.clear();
        q.jobs.extend((1..=10).map(big));
        run.clear();
        Lane::take(&mut q, &mut run);
        assert_eq!(run.len(), 3, "64 KiB of 20 KB publications");
        let small_bound = |offset| Job { buffer_limit: 100_000, ..big(offset) };
        q.jobs.clear();
        q.jobs.extend((1..=10).map(small_bound));
        run.clear();
        Lane::take(&mut q, &mut run);
        assert_eq!(run.len(), 1, "an eighth of a 100 KB bound takes one");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_lane_keeps_the_publishers_order_even_when_helped() {
        let lanes = Arc::new(Lanes::new(2));
        let outboxes: Vec<_> = (0..4).map(|_| Outbox::new(1 << 30)).collect();
        let shares: Vec<Arc<Vec<Subscriber>>> = (0..2)
            .map(|lane| {
                Arc::new(
                    (0..4u64).filter(|c| lanes.of(*c) == lane).map(|c| Subscriber::plain(c, outboxes[c as usize].clone())).collect(),
                )
            })
            .collect();
        // Far more jobs than the backlog bound, queued from another thread: whether the
        // lane's task or the publisher (helping past the bound) runs them, order holds.
        let total = (MAX_BACKLOG * 4) as u64;
        let publisher = {
            let lanes = lanes.clone();
            tokio::task::spawn_blocking(move || {
                for offset in 1..=total {
                    let p = publication(offset);
                    for (lane, share) in shares.iter().enumerate() {
                        lanes.submit(lane, Job { publication: p.clone(), subscribers: share.clone(), buffer_limit: 1 << 30 });
                    }
                }
            })
        };
        publisher.await.expect("publisher");
        let mut got: Vec<Vec<u64>> = vec![Vec::new(); 4];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while got.iter().any(|g| (g.len() as u64) < total) {
            assert!(std::time::Instant::now() < deadline, "lanes did not finish: {:?}", got.iter().map(Vec::len).collect::<Vec<_>>());
            for (g, o) in got.iter_mut().zip(&outboxes) {
                g.extend(offsets(o));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for g in &got {
            assert_eq!(*g, (1..=total).collect::<Vec<_>>(), "in order, each once");
        }
    }
}
