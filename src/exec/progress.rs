//! Progress on stderr: workers only bump per-stage counters; one display thread turns them
//! into a bar per output on a terminal (chunks done/total, chunks per second, ETA), or
//! into a plain line every ten seconds for logs and batch jobs.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Progress;
use crate::plan::{Plan, StageKind};

/// Per stage: chunks computed in this run, and chunks skipped as already complete.
pub(crate) struct Tracker {
    pub done: Vec<AtomicU64>,
    pub skipped: Vec<AtomicU64>,
    totals: Vec<u64>,
    names: Vec<String>,
    writes: Vec<bool>,
    t0: Instant,
}

impl Tracker {
    pub(crate) fn new(plan: &Plan) -> Tracker {
        Tracker {
            done: plan.stages.iter().map(|_| AtomicU64::new(0)).collect(),
            skipped: plan.stages.iter().map(|_| AtomicU64::new(0)).collect(),
            totals: plan.stages.iter().map(|s| s.units()).collect(),
            names: plan.stages.iter().map(|s| s.name.clone()).collect(),
            writes: plan
                .stages
                .iter()
                .map(|s| matches!(s.kind, StageKind::Write { .. }))
                .collect(),
            t0: Instant::now(),
        }
    }

    pub(crate) fn computed(&self) -> u64 {
        self.done.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }

    pub(crate) fn skipped_total(&self) -> u64 {
        self.skipped.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }

    fn total(&self) -> u64 {
        self.totals.iter().sum()
    }

    pub(crate) fn elapsed(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }
}

/// Chunks done (computed or skipped) and in all of the latest run in this process, for
/// hosts that draw their own progress (`live_progress`).
static LIVE_DONE: AtomicU64 = AtomicU64::new(0);
static LIVE_TOTAL: AtomicU64 = AtomicU64::new(0);

/// (chunks done, chunks in all) of the latest run this process started, updated while it
/// runs with `Progress::Published`; (0, 0) before any.
pub fn live_progress() -> (u64, u64) {
    (
        LIVE_DONE.load(Ordering::Relaxed),
        LIVE_TOTAL.load(Ordering::Relaxed),
    )
}

fn publish(t: &Tracker, finished: &AtomicBool) {
    LIVE_DONE.store(0, Ordering::Relaxed);
    LIVE_TOTAL.store(t.total(), Ordering::Relaxed);
    loop {
        let done = finished.load(Ordering::Relaxed);
        LIVE_DONE.store(t.computed() + t.skipped_total(), Ordering::Relaxed);
        if done {
            return;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Show progress until `finished` is set (the run unparks this thread when it is).
pub(crate) fn display(tracker: &Tracker, style: Progress, finished: &AtomicBool) {
    if tracker.total() == 0 {
        return;
    }
    match style {
        Progress::None => {}
        Progress::Published => publish(tracker, finished),
        Progress::Terminal => bars(tracker, finished),
        Progress::Lines => lines(tracker, finished),
    }
}

fn bars(t: &Tracker, finished: &AtomicBool) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
    let style = ProgressStyle::with_template(
        "{prefix:<18!} {bar:20} {pos}/{len} chunks  {rate}  ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key(
        "rate",
        |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1}/s", s.per_sec());
        },
    )
    .progress_chars("=> ");
    // Bars for outputs; prints and previews are single tasks and need none.
    let bars: Vec<Option<ProgressBar>> = (0..t.totals.len())
        .map(|k| {
            t.writes[k].then(|| {
                let name = t.names[k].strip_prefix("write ").unwrap_or(&t.names[k]);
                multi.add(
                    ProgressBar::new(t.totals[k])
                        .with_style(style.clone())
                        .with_prefix(name.to_string()),
                )
            })
        })
        .collect();
    let mut started = vec![false; bars.len()];
    let update = |started: &mut Vec<bool>| {
        for (k, bar) in bars.iter().enumerate() {
            let Some(bar) = bar else { continue };
            let skipped = t.skipped[k].load(Ordering::Relaxed);
            let done = t.done[k].load(Ordering::Relaxed);
            if !started[k] && skipped + done > 0 {
                // Chunks skipped on resume are not throughput: measure from here.
                started[k] = true;
                bar.set_position(skipped);
                bar.reset_eta();
            }
            bar.set_position(skipped + done);
        }
    };
    while !finished.load(Ordering::Relaxed) {
        std::thread::park_timeout(Duration::from_millis(100));
        update(&mut started);
    }
    update(&mut started);
    for bar in bars.iter().flatten() {
        bar.abandon();
    }
}

fn lines(t: &Tracker, finished: &AtomicBool) {
    let every = Duration::from_secs(10);
    let mut last = Instant::now();
    let total = t.total();
    while !finished.load(Ordering::Relaxed) {
        std::thread::park_timeout(Duration::from_millis(50));
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        let skipped = t.skipped_total();
        let d = t.computed() + skipped;
        let el = t.elapsed();
        let fresh = d - skipped;
        let eta = if fresh > 0 {
            el / fresh as f64 * total.saturating_sub(d) as f64
        } else {
            0.0
        };
        let pct = d as f64 * 100.0 / total as f64;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "tessera: {d}/{total} chunks ({pct:.0}%), {el:.1}s elapsed, ETA {eta:.1}s"
        );
        let _ = err.flush();
    }
}
