//! Bounded pools for the two jobs whose memory grows with concurrency:
//! Argon2 hashing (about 19 MiB each) and image decoding (up to the
//! per-decode budget each).
//!
//! The rule: a job runs only while it holds one of
//! its pool's permits, on one of the pool's own threads, so at most `size`
//! jobs of a kind are in memory at once, however many requests arrive. A request waits at most the pool's
//! `wait` for a permit and is then answered 503 with `Retry-After`
//! ([`AppError::Busy`]); it is never queued without bound and the process
//! never grows with the flood. The permit moves into the job, so
//! a request dropped by its client (or by the request timeout) still holds
//! its permit until the work really ends: the bound counts running work,
//! not waiting requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::error::AppError;
use crate::images::{self, ImageError, ProcessedImage, Rules};

/// A job handed to a pool's threads.
type Job = Box<dyn FnOnce() + Send>;

/// A fixed number of permits, and as many dedicated threads, for one kind
/// of blocking work. Own threads rather than tokio's blocking pool (up to
/// 512 threads): the allocator keeps freed memory per thread arena, so
/// big jobs spread over hundreds of threads would leave hundreds of
/// arenas holding their peaks; on `size` threads at most `size` do.
#[derive(Debug, Clone)]
pub struct Pool {
    name: &'static str,
    permits: Arc<Semaphore>,
    size: usize,
    wait: Duration,
    jobs: std::sync::mpsc::SyncSender<Job>,
}

impl Pool {
    /// A pool of `size` permits and threads (at least 1); a job waits at
    /// most `wait` for a permit. The threads end when the last clone of
    /// the pool is dropped.
    ///
    /// # Panics
    /// When the operating system cannot start a thread.
    pub fn new(name: &'static str, size: usize, wait: Duration) -> Self {
        let size = size.max(1);
        // A permit is taken before a job is sent, so `size` slots never
        // block a sender.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(size);
        let queue = Arc::new(parking_lot::Mutex::new(queue));
        for i in 0..size {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("board-{name}-{i}"))
                .spawn(move || {
                    loop {
                        let next = queue.lock().recv();
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("start a worker thread");
        }
        Self {
            name,
            permits: Arc::new(Semaphore::new(size)),
            size,
            wait,
            jobs,
        }
    }

    /// The number of permits.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Permits not taken right now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Runs `job` on one of the pool's threads once a permit is free.
    ///
    /// # Errors
    /// [`AppError::Busy`] when no permit was free within the wait;
    /// [`AppError::Internal`] when the job panicked.
    pub async fn run<T, F>(&self, job: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let busy = || AppError::Busy {
            pool: self.name,
            retry_after: self.wait.as_secs().max(1),
        };
        let permit = tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| busy())?
            // The semaphore is never closed.
            .map_err(|_| busy())?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            // Held until the work ends, even if the request is gone; given
            // back before the answer, so the caller sees it free again.
            drop(permit);
            let _ = done.send(outcome);
        });
        let lost = || AppError::Internal(format!("{} worker gone", self.name));
        self.jobs.send(job).map_err(|_| lost())?;
        result
            .await
            .map_err(|_| lost())?
            .map_err(|_| AppError::Internal(format!("{} job panicked", self.name)))
    }
}

/// The board's pools, made once at startup and shared by the handlers.
#[derive(Debug)]
pub struct Workers {
    /// Argon2 hashes and verifications.
    pub hashing: Pool,
    /// Image checks, decodes and re-encodes.
    pub decoding: Pool,
    /// Limits every decode obeys.
    pub image_rules: Rules,
}

impl Workers {
    /// Pools of the given sizes, both waiting at most `wait`.
    pub fn new(hashing: usize, decoding: usize, wait: Duration, image_rules: Rules) -> Self {
        Self {
            hashing: Pool::new("hashing", hashing, wait),
            decoding: Pool::new("decoding", decoding, wait),
            image_rules,
        }
    }

    /// [`images::process`] on the decoding pool.
    ///
    /// # Errors
    /// The outer error is the pool's ([`AppError::Busy`]); the inner one is
    /// the image's, in words for the user.
    pub async fn process_image(
        &self,
        bytes: Bytes,
    ) -> Result<Result<ProcessedImage, ImageError>, AppError> {
        let rules = self.image_rules.clone();
        self.decoding
            .run(move || images::process(&bytes, &rules))
            .await
    }
}

/// Threads the machine offers, the default size of both pools.
pub fn default_size() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_answers_busy_after_its_wait_and_frees_its_permit() {
        let pool = Pool::new("test", 1, Duration::from_millis(50));
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    started_tx.send(()).expect("send");
                    release_rx.recv().expect("release");
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().expect("started"))
            .await
            .expect("join");
        assert_eq!(pool.available(), 0);
        let refused = pool.run(|| 1).await;
        assert!(
            matches!(
                refused,
                Err(AppError::Busy {
                    pool: "test",
                    retry_after: 1
                })
            ),
            "{refused:?}"
        );
        release_tx.send(()).expect("release");
        holder.await.expect("join").expect("ran");
        assert_eq!(pool.run(|| 2).await.expect("runs"), 2);
        assert_eq!(pool.available(), 1);
    }
}
