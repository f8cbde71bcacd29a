//! What a run costs: wall time, CPU time of the whole process (all threads,
//! from Linux's scheduler statistics, in nanoseconds), and heap allocations.

use std::time::Duration;

use tokio::time::Instant;

use crate::ALLOCATOR;

/// A point to measure from.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    at: Instant,
    cpu: Duration,
    heap: stats_alloc::Stats,
}

/// The cost between two marks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub wall: Duration,
    pub cpu: Duration,
    /// Allocations and reallocations.
    pub allocations: usize,
    pub allocated_bytes: usize,
}

impl Mark {
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu: of_process("self"),
            heap: ALLOCATOR.stats(),
        }
    }

    pub fn usage(&self) -> Usage {
        let now = Mark::now();
        Usage {
            wall: now.at - self.at,
            cpu: now.cpu.saturating_sub(self.cpu),
            allocations: (now.heap.allocations + now.heap.reallocations)
                - (self.heap.allocations + self.heap.reallocations),
            allocated_bytes: now.heap.bytes_allocated - self.heap.bytes_allocated,
        }
    }
}

/// CPU time used so far by the threads of process `pid` (a number or `self`)
/// that are still alive. Zero where `/proc` is not there.
pub fn of_process(pid: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split(' ').next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}
