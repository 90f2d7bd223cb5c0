//! Running a wave whose stages chain (`Plan::local_waves`): a task of a stage that reads
//! another stage's output starts once every chunk it reads there is written — or holds
//! its old contents for good: chunks a region write never touches, chunks a resumed run
//! finished before. Lanes take the deepest stage whose next task can start (so a chunk
//! is read again while it is fresh) and otherwise wait for a task to finish; they never
//! hold memory while waiting, since a task takes its admission permit only once it runs.
//!
//! Chunks written for later stages are pinned in the chunk cache (`ChunkCache::pin`)
//! and let go once the last task that reads them has run: each producer chunk counts
//! its readers up front (for waves of at most `COUNTED_TASKS` reading tasks; larger
//! ones hand nothing over and decode what they read, as a stage-by-stage run does).
//!
//! No deadlock: a task only waits for chunks of stages before its own, and a lane
//! waits only while some task runs. With none running and none ready the wave stops
//! with an internal error instead of waiting forever.

use super::Target;
use crate::ir::Program;
use crate::plan::chain::chunks_read_from;
use crate::plan::{Plan, StageKind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Chunks of one written output known final in this run.
struct Bits(Vec<AtomicU64>);

impl Bits {
    fn new(n: u64) -> Bits {
        Bits((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }
    fn set(&self, i: u64) {
        self.0[(i / 64) as usize].fetch_or(1 << (i % 64), Ordering::Release);
    }
    fn get(&self, i: u64) -> bool {
        self.0[(i / 64) as usize].load(Ordering::Acquire) & (1 << (i % 64)) != 0
    }
}

/// The chunks task `next` of a stage waits for: (position of the producer in the wave,
/// its flat chunks).
type Needs = Vec<(usize, Vec<u64>)>;

/// Reading tasks of a wave up to which producer chunks count their readers (one bounds
/// inference per task, before the wave starts).
const COUNTED_TASKS: u64 = 1 << 16;

/// Chunks of a producer up to which its chunks count their readers (4 bytes each).
const COUNTED_CHUNKS: u64 = 1 << 22;

struct State {
    /// Per position in the wave, the next task to start.
    next: Vec<u64>,
    /// Per position, what its next task waits for (computed once).
    needs: Vec<Option<Needs>>,
    running: usize,
}

pub(super) struct Chained<'a> {
    program: &'a Program,
    plan: &'a Plan,
    wave: &'a [usize],
    /// Per position in the wave: the positions of the stages it chains to.
    producers: Vec<Vec<usize>>,
    /// Per position of a producer: its finished chunks.
    done: Vec<Option<Bits>>,
    /// Per position: tasks not finished yet.
    left: Vec<AtomicU64>,
    /// Per position of a producer, when counted: per chunk, the tasks still to read it.
    readers_left: Vec<Option<Vec<AtomicU32>>>,
    state: Mutex<State>,
    moved: Condvar,
    /// Tasks that started before every stage they read had finished.
    pub early: AtomicU64,
    stalled: AtomicBool,
    /// A task panicked: the other lanes stop waiting, and the panic reaches the caller.
    aborted: AtomicBool,
}

/// Told when a producer chunk has no reader left: (position in the wave, flat chunk).
pub(super) type Release<'r> = dyn Fn(usize, u64) + Sync + 'r;

/// A running task: when it ends — or unwinds — the lanes waiting for it are woken.
struct Running<'s, 'a>(&'s Chained<'a>);

impl Drop for Running<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.aborted.store(true, Ordering::Relaxed);
        }
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        st.running -= 1;
        drop(st);
        self.0.moved.notify_all();
    }
}

impl<'a> Chained<'a> {
    /// The scheduler of `wave` (stages in the order `local_waves` gives), with the
    /// wave's opened targets (for the chunks a resumed run finished before); with
    /// `count`, producer chunks count their readers up front (to pin them).
    pub(super) fn new(
        program: &'a Program,
        plan: &'a Plan,
        wave: &'a [usize],
        targets: &[Target],
        count: bool,
    ) -> Chained<'a> {
        let producers: Vec<Vec<usize>> = wave
            .iter()
            .map(|k| {
                plan.chained_producers(wave, *k)
                    .iter()
                    .filter_map(|a| wave.iter().position(|s| s == a))
                    .collect()
            })
            .collect();
        let done = (0..wave.len())
            .map(|pos| {
                if !producers.iter().any(|ps| ps.contains(&pos)) {
                    return None;
                }
                let StageKind::Write { grid, chunks } = &plan.stages[wave[pos]].kind else {
                    return None;
                };
                let bits = Bits::new(grid.num_chunks());
                let ledger = match &targets[pos] {
                    Target::Writer(_, l) => Some(l),
                    _ => None,
                };
                let final_now = |flat: u64| ledger.is_some_and(|l| l.is_done(flat));
                match chunks {
                    // Chunks outside the list are never written: final from the start.
                    Some(list) => {
                        for i in 0..grid.num_chunks() {
                            bits.set(i);
                        }
                        for &flat in list {
                            if !final_now(flat) {
                                bits.0[(flat / 64) as usize]
                                    .fetch_and(!(1 << (flat % 64)), Ordering::Relaxed);
                            }
                        }
                    }
                    None => {
                        for flat in 0..grid.num_chunks() {
                            if final_now(flat) {
                                bits.set(flat);
                            }
                        }
                    }
                }
                Some(bits)
            })
            .collect();
        let readers_left = if count {
            count_readers(program, plan, wave, &producers)
        } else {
            (0..wave.len()).map(|_| None).collect()
        };
        Chained {
            program,
            plan,
            wave,
            readers_left,
            left: wave
                .iter()
                .map(|k| AtomicU64::new(plan.stages[*k].tasks))
                .collect(),
            producers,
            done,
            state: Mutex::new(State {
                next: vec![0; wave.len()],
                needs: vec![None; wave.len()],
                running: 0,
            }),
            moved: Condvar::new(),
            early: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
        }
    }

    /// Whether the chunks the stage at `pos` writes count their readers, so that they
    /// can be pinned for them.
    pub(super) fn counts_readers(&self, pos: usize) -> bool {
        self.readers_left[pos].is_some()
    }

    /// True when the wave stopped because no task could start and none ran (a planning
    /// error; never expected).
    pub(super) fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    fn ready(&self, st: &mut State, pos: usize) -> bool {
        if self.producers[pos].is_empty() {
            return true;
        }
        let local = st.next[pos];
        let needs = st.needs[pos].get_or_insert_with(|| {
            let stage = &self.plan.stages[self.wave[pos]];
            self.producers[pos]
                .iter()
                .map(|&a| {
                    let prod = &self.plan.stages[self.wave[a]];
                    (a, chunks_read_from(self.program, stage, local, prod))
                })
                .collect()
        });
        needs.iter().all(|(a, flats)| {
            let bits = self.done[*a].as_ref().expect("producer bits");
            flats.iter().all(|f| bits.get(*f))
        })
    }

    /// The next task to start, with the chunks it reads of the wave's producers: the
    /// deepest stage's whose chunks are ready.
    fn pick(&self, st: &mut State) -> Option<Option<(usize, u64, Needs)>> {
        let n = self.wave.len();
        let mut any_left = false;
        for pos in (0..n).rev() {
            if st.next[pos] >= self.plan.stages[self.wave[pos]].tasks {
                continue;
            }
            any_left = true;
            if self.ready(st, pos) {
                let local = st.next[pos];
                st.next[pos] += 1;
                let needs = st.needs[pos].take().unwrap_or_default();
                return Some(Some((pos, local, needs)));
            }
        }
        if any_left {
            Some(None)
        } else {
            None
        }
    }

    /// Mark the chunks task `local` at `pos` wrote as final (letting go at once of those
    /// no task reads), and let go of the chunks it read whose last reader it was.
    fn finished(&self, pos: usize, local: u64, read: &Needs, release: &Release<'_>) {
        if let Some(bits) = &self.done[pos] {
            let stage = &self.plan.stages[self.wave[pos]];
            if let StageKind::Write { grid, .. } = &stage.kind {
                let mark = |flat: u64| {
                    bits.set(flat);
                    let unread = self.readers_left[pos]
                        .as_ref()
                        .is_some_and(|r| r[flat as usize].load(Ordering::Acquire) == 0);
                    if unread {
                        release(pos, flat);
                    }
                };
                match &stage.block {
                    Some(b) => {
                        let bgrid = b.grid(grid);
                        let region = bgrid.chunk_region(&bgrid.unflatten(local));
                        for idx in crate::geom::iter_box(&grid.chunks_touching(&region)) {
                            mark(grid.flatten(&idx));
                        }
                    }
                    None => mark(stage.chunk_at(local)),
                }
            }
        }
        for (a, flats) in read {
            if let Some(r) = &self.readers_left[*a] {
                for &f in flats {
                    if r[f as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                        release(*a, f);
                    }
                }
            }
        }
        self.left[pos].fetch_sub(1, Ordering::Relaxed);
    }

    /// Run every task of the wave on `lanes` lanes of `pool`; `task(pos, local)` runs
    /// task `local` of the stage at `pos`. `stop` is checked before each task;
    /// `release(pos, flat)` is told when chunk `flat` of the stage at `pos` has been
    /// read by every task that reads it.
    pub(super) fn run(
        &self,
        pool: &rayon::ThreadPool,
        lanes: usize,
        stop: &(dyn Fn() -> bool + Sync),
        task: &(dyn Fn(usize, u64) + Sync),
        release: &Release<'_>,
    ) {
        let lane = || loop {
            let (pos, local, read) = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if stop() || self.stalled() || self.aborted.load(Ordering::Relaxed) {
                        return;
                    }
                    match self.pick(&mut st) {
                        None => return,
                        Some(Some(t)) => {
                            st.running += 1;
                            break t;
                        }
                        Some(None) if st.running == 0 => {
                            self.stalled.store(true, Ordering::Relaxed);
                            self.moved.notify_all();
                            return;
                        }
                        Some(None) => {
                            // A timeout too, so a stop request is seen while waiting.
                            st = self
                                .moved
                                .wait_timeout(st, Duration::from_millis(50))
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                    }
                }
            };
            if self.producers[pos]
                .iter()
                .any(|a| self.left[*a].load(Ordering::Relaxed) > 0)
            {
                self.early.fetch_add(1, Ordering::Relaxed);
            }
            let running = Running(self);
            task(pos, local);
            self.finished(pos, local, &read, release);
            drop(running);
        };
        let total: u64 = self.wave.iter().map(|k| self.plan.stages[*k].tasks).sum();
        let lanes = lanes.clamp(1, total.max(1).min(usize::MAX as u64) as usize);
        pool.scope(|s| {
            for _ in 0..lanes {
                s.spawn(|_| lane());
            }
        });
    }
}

/// Per producer position, per chunk, how many tasks of the wave read it — when the
/// wave's reading tasks are few enough to count (`COUNTED_TASKS`), else none.
fn count_readers(
    program: &Program,
    plan: &Plan,
    wave: &[usize],
    producers: &[Vec<usize>],
) -> Vec<Option<Vec<AtomicU32>>> {
    let mut counts: Vec<Option<Vec<AtomicU32>>> = (0..wave.len()).map(|_| None).collect();
    let reading: u64 = wave
        .iter()
        .zip(producers)
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(k, _)| plan.stages[*k].tasks)
        .sum();
    if reading == 0 || reading > COUNTED_TASKS {
        return counts;
    }
    for ps in producers {
        for &a in ps {
            if counts[a].is_none() {
                if let StageKind::Write { grid, .. } = &plan.stages[wave[a]].kind {
                    if grid.num_chunks() > COUNTED_CHUNKS {
                        continue;
                    }
                    let n = grid.num_chunks() as usize;
                    counts[a] = Some((0..n).map(|_| AtomicU32::new(0)).collect());
                }
            }
        }
    }
    for (pos, ps) in producers.iter().enumerate() {
        let stage = &plan.stages[wave[pos]];
        for local in 0..stage.tasks {
            for &a in ps {
                let Some(c) = &counts[a] else { continue };
                for f in chunks_read_from(program, stage, local, &plan.stages[wave[a]]) {
                    c[f as usize].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    counts
}
