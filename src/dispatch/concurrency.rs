//! Concurrency permits: a process-wide cap, a function's reserved concurrency
//! shared by every pipeline that targets it, and a pipeline's own cap.
//!
//! A delivery holds its permits only while an invocation is in flight, never
//! while it backs off. Waiting for a permit queues the delivery; it never
//! fails it. Permits are always taken in the same order (pipeline, function,
//! process), so two deliveries can never wait on each other.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct Limits {
    pipeline: Arc<Semaphore>,
    function: Option<Arc<Semaphore>>,
    process: Arc<Semaphore>,
}

/// Held while one invocation is in flight.
#[derive(Debug)]
pub struct Permits {
    _pipeline: OwnedSemaphorePermit,
    _function: Option<OwnedSemaphorePermit>,
    _process: OwnedSemaphorePermit,
}

impl Limits {
    pub fn new(
        pipeline: Arc<Semaphore>,
        function: Option<Arc<Semaphore>>,
        process: Arc<Semaphore>,
    ) -> Self {
        Self {
            pipeline,
            function,
            process,
        }
    }

    /// Limits that never make anyone wait, for tests and benchmarks.
    pub fn unlimited() -> Self {
        let many = || Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
        Self::new(many(), None, many())
    }

    /// Waits for a permit at every level.
    pub async fn acquire(&self) -> Permits {
        // The engine never closes these semaphores; a closed one would be a bug.
        let closed = "invariant: concurrency semaphores are never closed";
        let pipeline = self.pipeline.clone().acquire_owned().await.expect(closed);
        let function = match &self.function {
            Some(s) => Some(s.clone().acquire_owned().await.expect(closed)),
            None => None,
        };
        let process = self.process.clone().acquire_owned().await.expect(closed);
        Permits {
            _pipeline: pipeline,
            _function: function,
            _process: process,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_shared_function_cap_holds_across_pipelines() {
        let function = Arc::new(Semaphore::new(1));
        let process = Arc::new(Semaphore::new(10));
        let a = Limits::new(
            Arc::new(Semaphore::new(5)),
            Some(function.clone()),
            process.clone(),
        );
        let b = Limits::new(Arc::new(Semaphore::new(5)), Some(function), process);

        let held = a.acquire().await;
        let waiting = tokio::time::timeout(Duration::from_secs(1), b.acquire()).await;
        assert!(
            waiting.is_err(),
            "second pipeline must wait for the function's permit"
        );

        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(1), b.acquire()).await;
        assert!(got.is_ok(), "the permit is free again");
    }
}
