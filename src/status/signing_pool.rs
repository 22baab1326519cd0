//! A small, fixed pool of threads for fresh OCSP signatures.
//!
//! A signature is CPU work measured in tens of microseconds. Done inline on
//! an async worker it blocks every other connection on that worker, and a
//! limit on signatures "under way" can never be reached: with two workers at
//! most two signatures run at once, however many requests wait behind them.
//! The responder therefore takes a permit (`ocsp.max_concurrent_signing`),
//! hands the signature to this pool, and holds the permit until the
//! signature is done; past the limit it answers `tryLater` at once.
//!
//! The queue is bounded by the same number as the permits, so it can never
//! grow with the load: the permits are the admission control, the pool only
//! runs what was admitted.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Why the pool did not run a job.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue is full (more jobs than admitted by the caller's permits).
    #[error("the signing queue is full")]
    Full,
    /// The job panicked, or the pool is shutting down.
    #[error("the signing job was lost (it panicked, or the pool is stopping)")]
    Lost,
}

/// A fixed set of named threads taking jobs from one bounded queue. The
/// threads end when the pool is dropped (after finishing queued jobs).
pub struct SigningPool {
    tx: SyncSender<Job>,
    threads: usize,
}

impl std::fmt::Debug for SigningPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningPool({} threads)", self.threads)
    }
}

impl SigningPool {
    /// `threads` workers (at least one) and room for `capacity` queued jobs.
    pub fn new(threads: usize, capacity: usize) -> std::io::Result<SigningPool> {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(capacity.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("custos-sign-{i}"))
                .spawn(move || worker(&rx))?;
        }
        Ok(SigningPool { tx, threads })
    }

    /// The number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on a pool thread and waits (asynchronously) for its result.
    /// Dropping the returned future does not cancel the job: admitted work
    /// runs to its end, so whatever permit it holds is released after it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic stays in this job: the thread lives on, the caller
            // sees `Lost`.
            if let Ok(value) = catch_unwind(AssertUnwindSafe(f)) {
                let _ = done.send(value);
            }
        });
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PoolError::Full),
            Err(TrySendError::Disconnected(_)) => return Err(PoolError::Lost),
        }
        result.await.map_err(|_| PoolError::Lost)
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job; a worker
        // that holds it is the one that will take that job.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panic() {
        let pool = SigningPool::new(2, 4).unwrap();
        assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
        let lost: Result<(), _> = pool.run(|| panic!("in a job")).await;
        assert_eq!(lost, Err(PoolError::Lost));
        assert_eq!(pool.run(|| "still here").await, Ok("still here"));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_growing() {
        let pool = Arc::new(SigningPool::new(1, 1).unwrap());
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let p = pool.clone();
        let blocker = tokio::spawn(async move {
            p.run(move || {
                let _ = started_tx.send(());
                let _ = wait.recv();
            })
            .await
        });
        // The one thread is busy; fill the one queue slot.
        started.await.unwrap();
        let (filler_done, filler_ran) = std::sync::mpsc::channel::<()>();
        assert!(pool
            .tx
            .try_send(Box::new(move || {
                let _ = filler_done.send(());
            }))
            .is_ok());
        assert_eq!(pool.run(|| 2).await, Err(PoolError::Full));
        release.send(()).unwrap();
        assert_eq!(blocker.await.unwrap(), Ok(()));
        // Once the queued job has run, the queue has room again.
        filler_ran.recv().unwrap();
        assert_eq!(pool.run(|| 3).await, Ok(3));
    }
}
