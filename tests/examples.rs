//! Every example program: its checked types, its optimized plan and the checksums of its
//! outputs are snapshotted; outputs must be byte-identical with 1, 2 and 4 workers.

mod common;

use common::{checksum, example_names, TempDir};
use std::fmt::Write;
use std::path::Path;
use tessera::{Engine, Progress, RunOptions};

/// Output paths (relative) written by a script, in sink order.
fn outputs(engine: &mut Engine, name: &str, src: &str) -> Vec<String> {
    let planned = engine.plan(name, src).expect("plans");
    planned
        .program
        .sinks
        .iter()
        .filter_map(|s| match &s.kind {
            tessera::ir::SinkKind::Write(w) => Some(w.path.clone()),
            _ => None,
        })
        .collect()
}

fn run_in(dir: &Path, name: &str, src: &str, workers: usize) -> (Vec<String>, Vec<String>) {
    let mut engine = Engine::new().with_base_dir(dir);
    let opts = RunOptions {
        workers,
        progress: Progress::None,
    };
    let report = match engine.run(name, src, &opts) {
        Ok(r) => r,
        Err(d) => panic!("{name} failed:\n{}", engine.render(&d, false)),
    };
    let outs = outputs(&mut engine, name, src);
    let sums = outs
        .iter()
        .map(|o| format!("{o}: {}", checksum(&dir.join(o))))
        .collect();
    (report.printed, sums)
}

#[test]
fn examples_check_plan_and_run() {
    let names = example_names();
    assert!(names.len() >= 4, "examples found: {names:?}");
    for name in names {
        let file = format!("examples/{name}.tsr");
        let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&file))
            .expect("read example");
        let dir = TempDir::new(&name);
        let mut engine = Engine::new().with_base_dir(dir.path());
        let mut snap = String::new();
        match engine.check(&file, &src) {
            Ok(c) => {
                writeln!(snap, "== check").unwrap();
                for (n, t) in &c.bindings {
                    writeln!(snap, "{n}: {t}").unwrap();
                }
                assert!(
                    c.warnings.is_empty(),
                    "{name}: {}",
                    engine.render(&c.warnings, false)
                );
            }
            Err(d) => panic!("{name} does not check:\n{}", engine.render(&d, false)),
        }
        let planned = engine.plan(&file, &src).expect("plans");
        writeln!(snap, "== plan").unwrap();
        snap.push_str(&tessera::ir::print_program(&planned.program));
        snap.push_str(&tessera::plan::summary(&planned.plan, 2));
        let (printed, sums) = run_in(dir.path(), &file, &src, 2);
        writeln!(snap, "== printed").unwrap();
        for l in &printed {
            writeln!(snap, "{l}").unwrap();
        }
        writeln!(snap, "== outputs").unwrap();
        for s in &sums {
            writeln!(snap, "{s}").unwrap();
        }
        // The schedule never changes results: same bytes with 1 and 4 workers.
        for workers in [1, 4] {
            let d2 = TempDir::new(&format!("{name}-w{workers}"));
            let (p2, s2) = run_in(d2.path(), &file, &src, workers);
            assert_eq!(
                p2, printed,
                "{name}: printed output differs with {workers} workers"
            );
            assert_eq!(s2, sums, "{name}: outputs differ with {workers} workers");
        }
        insta::assert_snapshot!(name.clone(), snap);
    }
}
