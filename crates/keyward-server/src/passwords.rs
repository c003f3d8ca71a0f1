//! Password hashing with bounded cost, and per-address throttles for the anonymous forms.
//!
//! Argon2id takes 19 MiB and tens of milliseconds per hash by design, and log-in and sign-up
//! run it for anyone who asks. So hashing runs on a fixed set of worker threads (one per
//! core by default), each with its own [`HashMemory`] allocated once: however many requests
//! arrive, at most that many hashes are in memory at once, and no allocator is left holding
//! freed 19 MiB blocks in arena after arena. A request
//! waits up to [`PasswordWork::wait`] to be admitted to the queue; past that it is refused
//! with 503 and `Retry-After`, which costs nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use keyward_core::password::HashMemory;
use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce(&mut HashMemory) + Send>;

/// The hashing work in flight was at its bound for longer than a request may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("password checks are busy; retry in a second")]
pub struct Busy;

/// How much password hashing may run and wait at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordLimits {
    /// Hashes computed at once (worker threads).
    pub workers: usize,
    /// Requests admitted beyond those being hashed, waiting for a worker.
    pub queue: usize,
    /// How long a request waits to be admitted before it is refused.
    pub wait: Duration,
}

impl Default for PasswordLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            workers: cores,
            queue: 8 * cores,
            wait: Duration::from_secs(2),
        }
    }
}

pub struct PasswordWork {
    jobs: mpsc::SyncSender<Job>,
    admission: Arc<Semaphore>,
    wait: Duration,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl PasswordWork {
    pub fn new(limits: PasswordLimits) -> Self {
        let workers = limits.workers.max(1);
        let admitted = workers + limits.queue;
        let (sender, receiver) = mpsc::sync_channel::<Job>(admitted);
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..workers {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("keyward-password-{n}"))
                .spawn(move || {
                    let mut memory: Option<HashMemory> = None;
                    loop {
                        // The lock is held only to take a job, not to run it.
                        let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => {
                                let memory = memory.get_or_insert_with(HashMemory::default);
                                // A job that panics loses its answer, not the worker.
                                let ran =
                                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                        job(memory)
                                    }));
                                if ran.is_err() {
                                    tracing::error!("a password job panicked");
                                }
                            }
                            // Every sender is gone: the server has stopped.
                            Err(_) => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password worker thread");
            }
        }
        Self {
            jobs: sender,
            admission: Arc::new(Semaphore::new(admitted)),
            wait: limits.wait,
            running: Arc::default(),
            peak: Arc::default(),
        }
    }

    /// Runs `work` (a hash or a verification, in the worker's memory) on a worker, once
    /// admitted.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = tokio::time::timeout(self.wait, self.admission.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let (reply, answer) = oneshot::channel();
        let (running, peak) = (self.running.clone(), self.peak.clone());
        // The permit goes with the job: a request whose client went away still holds its
        // place until its job is done or skipped.
        let job: Job = Box::new(move |memory| {
            let _permit = permit;
            if reply.is_closed() {
                return;
            }
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let result = work(memory);
            running.fetch_sub(1, Ordering::SeqCst);
            let _ = reply.send(result);
        });
        // Never blocks: the channel holds as many jobs as there are permits.
        self.jobs.try_send(job).map_err(|_| Busy)?;
        answer.await.map_err(|_| Busy)
    }

    /// The most hashes that ever ran at once.
    pub fn peak_concurrency(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_beyond_the_bound_waits_then_is_refused() {
        let work = Arc::new(PasswordWork::new(PasswordLimits {
            workers: 1,
            queue: 0,
            wait: Duration::from_millis(50),
        }));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = {
            let work = work.clone();
            tokio::spawn(async move {
                work.run(move |_| {
                    let _ = released.recv();
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(work.run(|_| 1).await, Err(Busy), "the only worker is taken");
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(work.run(|_| 2).await, Ok(2));
        assert_eq!(work.peak_concurrency(), 1);
    }
}
