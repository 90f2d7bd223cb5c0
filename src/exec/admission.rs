//! Admission control: the bytes of every task in flight stay under the memory limit.
//! Before a task starts it reserves its projected working set (`Stage::task_bytes`) from
//! one shared budget and waits while the budget is spent; it returns the bytes when it
//! ends. A task larger than the whole budget waits until nothing else runs, then runs
//! alone, so no task waits forever.
//!
//! Waiting happens on lanes, not on rayon jobs: a wave runs `workers` lanes, each a loop
//! that takes the next task index from a shared counter. A lane holds no reservation
//! while it waits, and every reservation belongs to a task that is running and will end,
//! so waiting cannot deadlock, whatever rayon does with nested work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use crate::plan::Plan;

/// Share of the memory available when the run starts that it may use by default: the
/// rest is headroom for the page cache the chunk files go through, allocator slack, and
/// whatever else the machine runs meanwhile.
pub const DEFAULT_FRACTION: f64 = 0.6;

/// The default `--memory`: `DEFAULT_FRACTION` of the memory available now
/// (`MemAvailable` in /proc/meminfo, else `MemTotal`), or of what the cgroup still allows
/// when a container limit is lower. `None` where neither can be read.
pub fn default_memory_limit() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let field = |name: &str| -> Option<u64> {
        let text = meminfo.as_deref()?;
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    let host = field("MemAvailable:").or_else(|| field("MemTotal:"));
    let read_num =
        |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let cgroup = read_num("/sys/fs/cgroup/memory.max")
        .map(|max| max.saturating_sub(read_num("/sys/fs/cgroup/memory.current").unwrap_or(0)));
    let avail = match (host, cgroup) {
        (Some(h), Some(c)) => h.min(c),
        (h, c) => h.or(c)?,
    };
    Some((avail as f64 * DEFAULT_FRACTION) as u64)
}

/// The decoded-chunk cache's share of a memory limit: what the plan wants, but never
/// more than a quarter of the limit, so tasks keep most of it.
pub fn cache_budget(plan: &Plan, workers: usize, limit: Option<u64>) -> u64 {
    let want = plan.cache_budget(workers);
    match limit {
        Some(l) => want.min(l / 4).max(1 << 20),
        None => want,
    }
}

/// Bytes of decoded chunks of the `shared` inputs (of `Plan::shared_inputs`) to keep between
/// waves: all of them, but only from memory the plan's tasks, cache and held results
/// leave free under the limit (without a limit, at most 2 GiB). The rest is decoded
/// again by the later wave.
pub fn kept_budget(
    plan: &Plan,
    shared: &[crate::plan::SharedInput],
    workers: usize,
    limit: Option<u64>,
) -> u64 {
    let want = shared.iter().fold(0u64, |a, s| a.saturating_add(s.bytes));
    if want == 0 {
        return 0;
    }
    match limit {
        Some(l) => {
            let tasks = plan.projected_peak(workers);
            let cache = if plan.halo_inputs.is_empty() {
                cache_budget(plan, workers, Some(l))
            } else {
                0
            };
            want.min(l.saturating_sub(tasks).saturating_sub(cache) / 2)
        }
        None => want.min(2 << 30),
    }
}

/// The bytes a plan needs with one task at a time: above the limit, no schedule fits.
pub fn minimum_peak(plan: &Plan, limit: u64) -> u64 {
    let largest = plan.stages.iter().map(|s| s.task_bytes).max().unwrap_or(0);
    let cache = if plan.halo_inputs.is_empty() {
        0
    } else {
        cache_budget(plan, 1, Some(limit))
    };
    // Reduction and label results are held whole while the plan runs.
    largest + cache + plan.held_bytes
}

/// A byte budget shared by the tasks of a wave.
pub(crate) struct Budget {
    limit: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

/// Bytes reserved by a running task, returned when it is dropped.
pub(crate) struct Permit<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.bytes;
        drop(used);
        self.budget.freed.notify_all();
    }
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Budget {
        Budget {
            limit,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Wait until `bytes` fit (or nothing else runs), then reserve them.
    pub(crate) fn acquire(&self, bytes: u64) -> Permit<'_> {
        let bytes = bytes.min(self.limit);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used > 0 && *used + bytes > self.limit {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
        Permit {
            budget: self,
            bytes,
        }
    }
}

/// Run `task(0..n)` on `lanes` lanes of `pool`: each lane takes the next index from a
/// shared counter, so tasks start in order (streaming, depth-first toward the sinks) and
/// at most `lanes` run at once. `stop` is checked before each task.
pub(crate) fn run_lanes(
    pool: &rayon::ThreadPool,
    n: u64,
    lanes: usize,
    stop: &(dyn Fn() -> bool + Sync),
    task: &(dyn Fn(u64) + Sync),
) {
    let next = AtomicU64::new(0);
    let lane = || loop {
        if stop() {
            return;
        }
        let g = next.fetch_add(1, Ordering::Relaxed);
        if g >= n {
            return;
        }
        task(g);
    };
    let lanes = lanes.clamp(1, n.max(1).min(usize::MAX as u64) as usize);
    pool.scope(|s| {
        for _ in 0..lanes {
            s.spawn(|_| lane());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_under_the_limit_and_big_tasks_run_alone() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let budget = Budget::new(100);
        let running = AtomicU64::new(0);
        let worst = AtomicU64::new(0);
        run_lanes(&pool, 64, 4, &|| false, &|g| {
            let bytes = if g % 7 == 0 { 250 } else { 30 };
            let _p = budget.acquire(bytes);
            let now = running.fetch_add(bytes.min(100), Ordering::SeqCst) + bytes.min(100);
            worst.fetch_max(now, Ordering::SeqCst);
            std::thread::yield_now();
            running.fetch_sub(bytes.min(100), Ordering::SeqCst);
        });
        assert!(worst.load(Ordering::SeqCst) <= 100);
        assert_eq!(*budget.used.lock().unwrap(), 0);
    }
}
