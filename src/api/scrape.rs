//! Bounds on `/metrics`: every scrape in a short period is answered with
//! one shared rendering, and only a few scrapes may wait for it at once.
//! Many scrapers (or slow ones) therefore cost one rendering and one
//! buffer, not one each.

use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

/// How long one rendering answers every scrape.
pub const REUSE_FOR: Duration = Duration::from_secs(1);
/// Scrapes rendering or waiting for a rendering at once; more answer 503.
pub const MAX_CONCURRENT_SCRAPES: usize = 8;

/// The latest rendering of the exposition and when it was made.
pub struct ExpositionCache {
    reuse_for: Duration,
    scrapes: Semaphore,
    latest: Mutex<Option<(Instant, Bytes)>>,
}

/// Too many scrapes are already in progress.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyScrapes;

impl Default for ExpositionCache {
    fn default() -> Self {
        Self::new(REUSE_FOR, MAX_CONCURRENT_SCRAPES)
    }
}

impl ExpositionCache {
    pub fn new(reuse_for: Duration, max_concurrent: usize) -> Self {
        Self {
            reuse_for,
            scrapes: Semaphore::new(max_concurrent),
            latest: Mutex::new(None),
        }
    }

    /// The exposition rendered within the reuse period, or a new one from
    /// `render`. A scrape arriving while another renders waits for that
    /// rendering instead of starting its own.
    pub async fn get<F, R>(&self, render: R) -> Result<Bytes, TooManyScrapes>
    where
        R: FnOnce() -> F,
        F: Future<Output = String>,
    {
        let _scrape = self.scrapes.try_acquire().map_err(|_| TooManyScrapes)?;
        let mut latest = self.latest.lock().await;
        if let Some((at, text)) = latest.as_ref() {
            if at.elapsed() < self.reuse_for {
                return Ok(text.clone());
            }
        }
        let text = Bytes::from(render().await);
        *latest = Some((Instant::now(), text.clone()));
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_rendering_answers_every_scrape_of_the_reuse_period() {
        let cache = ExpositionCache::new(Duration::from_secs(1), 4);
        let renders = AtomicUsize::new(0);
        let render = || async {
            let n = renders.fetch_add(1, Ordering::SeqCst);
            format!("rendering {n}")
        };
        assert_eq!(cache.get(render).await.unwrap(), "rendering 0");
        tokio::time::advance(Duration::from_millis(900)).await;
        assert_eq!(cache.get(render).await.unwrap(), "rendering 0");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(cache.get(render).await.unwrap(), "rendering 1");
        assert_eq!(renders.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_scrapes_share_one_rendering_and_excess_ones_are_refused() {
        let cache = Arc::new(ExpositionCache::new(Duration::from_secs(1), 3));
        let renders = Arc::new(AtomicUsize::new(0));
        let scrape = |cache: Arc<ExpositionCache>, renders: Arc<AtomicUsize>| async move {
            cache
                .get(|| async move {
                    renders.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "slow rendering".to_owned()
                })
                .await
        };
        let waiting: Vec<_> = (0..3)
            .map(|_| tokio::spawn(scrape(cache.clone(), renders.clone())))
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(
            scrape(cache.clone(), renders.clone()).await,
            Err(TooManyScrapes),
            "a fourth scrape while three are in progress"
        );
        for handle in waiting {
            assert_eq!(handle.await.unwrap().unwrap(), "slow rendering");
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        assert!(scrape(cache, renders).await.is_ok(), "slots are returned");
    }
}
