//! The connector scenarios, run against the in-process memory source: the
//! proof that the harness and the engine hold together before a broker is
//! involved.

mod common;

use std::path::Path;

use futures::{FutureExt, future::BoxFuture};
use serde_json::Value;
use trigger_bridge_sdk::testing::{
    MemoryQueue,
    scenarios::{self, RunningBridge, ScenarioSource},
};

struct Memory {
    queue: MemoryQueue,
}

struct Bridge {
    running: common::Running,
    queue: MemoryQueue,
}

impl RunningBridge for Bridge {
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        async move {
            self.running.stop().await.expect("engine stops cleanly");
        }
        .boxed()
    }

    fn kill(self: Box<Self>) -> BoxFuture<'static, ()> {
        async move {
            self.running.kill().await;
            // What a broker does when its consumer's connection dies.
            self.queue.requeue_unacked();
        }
        .boxed()
    }
}

impl ScenarioSource for Memory {
    fn produce<'a>(&'a mut self, messages: &'a [Value]) -> BoxFuture<'a, ()> {
        for message in messages {
            self.queue.push(message.clone());
        }
        std::future::ready(()).boxed()
    }

    fn start<'a>(
        &'a mut self,
        endpoint: &'a str,
        dead_letter: &'a Path,
    ) -> BoxFuture<'a, Box<dyn RunningBridge>> {
        async move {
            let config = common::config(endpoint, serde_json::json!({}));
            let mut spec = common::spec("scenario");
            spec.retry.max_attempts = Some(2);
            spec.retry.bisect_on_error = true;
            spec.batching.window = Some(std::time::Duration::from_millis(50));
            spec.dead_letter = common::file_sink(dead_letter);
            let running = common::run(&config, vec![(spec, common::memory(&self.queue))]).await;
            Box::new(Bridge {
                running,
                queue: self.queue.clone(),
            }) as Box<dyn RunningBridge>
        }
        .boxed()
    }

    fn messages_of(&self) -> fn(&Value) -> Vec<Value> {
        |event| event["Records"].as_array().cloned().unwrap_or_default()
    }
}

#[tokio::test]
async fn all_delivered() {
    let mut source = Memory {
        queue: MemoryQueue::new(),
    };
    scenarios::all_delivered(&mut source, 200).await;
    assert_eq!(source.queue.pending(), 0);
}

#[tokio::test]
async fn failures_dead_lettered() {
    let mut source = Memory {
        queue: MemoryQueue::new(),
    };
    scenarios::failures_dead_lettered(&mut source, 100).await;
    assert_eq!(source.queue.pending(), 0);
}

#[tokio::test]
async fn redelivered_after_restart() {
    let mut source = Memory {
        queue: MemoryQueue::new(),
    };
    scenarios::redelivered_after_restart(&mut source, 100).await;
    assert_eq!(source.queue.pending(), 0);
}
