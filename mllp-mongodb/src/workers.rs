//! The threads a [`MongoStore`](crate::MongoStore) runs the driver on: a small pool, started on
//! demand and kept, each with a stack large enough for the driver.
//!
//! The driver's synchronous API polls each operation on the calling thread, and its futures
//! need more stack than a listener's connection thread has (128 KiB by default). A thread
//! spawned per save would do, but under load a new thread waits for a CPU behind every running
//! one (milliseconds at the 99th percentile on a busy machine), where waking a parked worker
//! takes microseconds.
//!
//! Every job has a deadline: the caller stops waiting then, whatever the driver does (it has
//! no socket timeout, so an operation on a server that stopped answering can block for as
//! long as the server does). A job whose caller gave up before a worker took it is not run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The stack size of the store's worker threads.
pub const DRIVER_STACK_SIZE: usize = 2 * 1024 * 1024;

/// The most worker threads a store starts: saves beyond that wait for one (the driver's own
/// connection pool holds 10 connections by default).
pub const MAX_WORKERS: usize = 32;

/// The reason [`Workers::run`] gives when the deadline came first.
pub(crate) const LATE: &str = "the MongoDB server did not answer in time";

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A pool of worker threads, stopped when dropped (each finishes its job first).
pub(crate) struct Workers {
    /// The most workers started: [`MAX_WORKERS`].
    max: usize,
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Workers started and not stopped.
    running: AtomicUsize,
    /// Workers waiting for a job.
    idle: AtomicUsize,
}

impl Workers {
    pub(crate) fn new() -> Workers {
        Workers::with_max(MAX_WORKERS)
    }

    fn with_max(max: usize) -> Workers {
        let (jobs, queue) = mpsc::channel();
        Workers {
            max,
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            counts: Arc::default(),
        }
    }

    /// Runs `f` on a worker and returns what it returned, waiting until `deadline` at most;
    /// `Err` with the reason when no worker can run it (none could be started), `f` panicked,
    /// or it did not finish by the deadline ([`LATE`]: `f` may still run to its end, or not
    /// start at all).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        deadline: Instant,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, &'static str> {
        let (reply, answer) = mpsc::sync_channel(1);
        let counts = Arc::clone(&self.counts);
        let abandoned = Arc::new(AtomicBool::new(false));
        let given_up = Arc::clone(&abandoned);
        let job: Job = Box::new(move || {
            if given_up.load(Ordering::Acquire) {
                counts.idle.fetch_add(1, Ordering::AcqRel);
                return;
            }
            let result = catch_unwind(AssertUnwindSafe(f));
            // Idle again before the caller learns the result, so that its next job finds
            // this worker instead of starting another.
            counts.idle.fetch_add(1, Ordering::AcqRel);
            // A panic is reported to the caller: its reply is dropped unsent.
            if let Ok(result) = result {
                let _ = reply.send(result);
            }
        });
        if self.counts.idle.load(Ordering::Acquire) == 0
            && self.counts.running.load(Ordering::Acquire) < self.max
            && !self.start()
            && self.counts.running.load(Ordering::Acquire) == 0
        {
            return Err("cannot start a thread for the MongoDB driver");
        }
        self.jobs
            .send(job)
            .map_err(|_| "the MongoDB driver threads stopped")?;
        let wait = deadline.saturating_duration_since(Instant::now());
        match answer.recv_timeout(wait) {
            Ok(result) => Ok(result),
            Err(RecvTimeoutError::Timeout) => {
                abandoned.store(true, Ordering::Release);
                Err(LATE)
            }
            Err(RecvTimeoutError::Disconnected) => Err("the MongoDB operation panicked"),
        }
    }

    /// Starts one more worker; whether it started.
    fn start(&self) -> bool {
        let queue = Arc::clone(&self.queue);
        let counts = Arc::clone(&self.counts);
        counts.running.fetch_add(1, Ordering::AcqRel);
        let started = std::thread::Builder::new()
            .name("mllp-mongodb".into())
            .stack_size(DRIVER_STACK_SIZE)
            .spawn(move || {
                // Idle while waiting; a job marks its worker idle again when it ends.
                counts.idle.fetch_add(1, Ordering::AcqRel);
                loop {
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => break,
                    };
                    let Ok(job) = job else { break };
                    counts.idle.fetch_sub(1, Ordering::AcqRel);
                    job();
                }
                counts.idle.fetch_sub(1, Ordering::AcqRel);
                counts.running.fetch_sub(1, Ordering::AcqRel);
            });
        if started.is_err() {
            self.counts.running.fetch_sub(1, Ordering::AcqRel);
            log::warn!("cannot start a thread for the MongoDB driver");
        }
        started.is_ok()
    }

    #[cfg(test)]
    fn running(&self) -> usize {
        self.counts.running.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn jobs_run_on_big_stacks_and_panics_are_errors() {
        let w = Workers::new();
        let later = || Instant::now() + Duration::from_secs(60);
        // More stack than a listener's 128 KiB connection thread has.
        let deep = w.run(later(), || {
            let buf = std::hint::black_box([7u8; 512 * 1024]);
            buf.iter().map(|&b| u64::from(b)).sum::<u64>()
        });
        assert_eq!(deep, Ok(7 * 512 * 1024));
        assert_eq!(
            w.run(later(), || -> u8 { panic!("boom") }),
            Err("the MongoDB operation panicked")
        );
        assert_eq!(w.run(later(), || 5), Ok(5), "the pool survives a panic");
        assert_eq!(w.running(), 1, "one caller at a time needs one worker");
        let w = Arc::new(w);
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || w.run(later(), move || i * 2).unwrap())
            })
            .collect();
        let sum: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sum, 56);
        assert!(w.running() <= MAX_WORKERS);
    }

    #[test]
    fn the_caller_stops_waiting_at_the_deadline_and_a_job_given_up_does_not_run() {
        let w = Arc::new(Workers::with_max(1));
        let (started, has_started) = mpsc::channel::<()>();
        let (release, hold) = mpsc::channel::<()>();
        // The one worker blocked, as in a driver waiting for a server that stopped answering.
        let blocker = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || {
                w.run(Instant::now() + Duration::from_secs(60), move || {
                    started.send(()).unwrap();
                    let _ = hold.recv();
                })
            })
        };
        has_started.recv_timeout(Duration::from_secs(10)).unwrap();
        // A job behind it is given up at its deadline, and never runs.
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let asked = Instant::now();
        let r = w.run(asked + Duration::from_millis(50), move || {
            flag.store(true, Ordering::SeqCst)
        });
        let took = asked.elapsed();
        assert_eq!(r, Err(LATE));
        assert!(took < Duration::from_secs(1), "{took:?}");
        drop(release);
        assert_eq!(blocker.join().unwrap(), Ok(()));
        // The worker is free again: work goes on, and the given-up job was skipped.
        assert_eq!(w.run(Instant::now() + Duration::from_secs(60), || 7), Ok(7));
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(w.running(), 1);
    }
}
