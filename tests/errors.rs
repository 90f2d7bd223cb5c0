//! One user mistake per file in `tests/errors/`: the rendered diagnostic (colour off, byte
//! indices) is snapshotted, every error has a code and a span, and running the script
//! writes nothing at all.

mod common;

use common::TempDir;
use std::path::Path;
use tessera::{Engine, Progress, RunOptions};

/// A directory holding what the error scripts refer to: a plain directory, a regular
/// file and an existing Zarr array.
fn workspace() -> TempDir {
    let dir = TempDir::new("errors");
    std::fs::create_dir_all(dir.path().join("plain_dir")).unwrap();
    std::fs::write(dir.path().join("plain_dir/readme.txt"), "not zarr").unwrap();
    std::fs::write(dir.path().join("file.txt"), "a file").unwrap();
    let mut e = Engine::new().with_base_dir(dir.path());
    e.run(
        "setup.tsr",
        "zeros((4, 4)).write(\"exists.zarr\")",
        &RunOptions::default(),
    )
    .expect("setup");
    dir
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.clone());
        if p.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn every_error_program_is_diagnosed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tsr"))
        .collect();
    files.sort();
    assert!(files.len() >= 30);
    let ws = workspace();
    let before = listing(ws.path());
    for f in files {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        let name = format!("tests/errors/{stem}.tsr");
        let src = std::fs::read_to_string(&f).unwrap();
        let mut engine = Engine::new().with_base_dir(ws.path());
        let rendered = match engine.check(&name, &src) {
            Ok(c) => {
                assert!(stem.ends_with("warning"), "{name} checks without error");
                assert!(!c.warnings.is_empty(), "{name}: expected a warning");
                engine.render(&c.warnings, false)
            }
            Err(diags) => {
                assert!(!stem.ends_with("warning"), "{name}: expected only warnings");
                for d in &diags {
                    assert!(
                        d.code.len() == 5 && (d.code.starts_with('E') || d.code.starts_with('W')),
                        "{name}: bad code {}",
                        d.code
                    );
                    let span = d.span().unwrap_or_else(|| panic!("{name}: no span in {d}"));
                    assert!(span.end as usize <= engine.sources().text(span.src).len());
                }
                // Running the same script writes nothing.
                let mut e2 = Engine::new().with_base_dir(ws.path());
                let opts = RunOptions {
                    workers: 2,
                    progress: Progress::None,
                };
                assert!(e2.run(&name, &src, &opts).is_err(), "{name} ran");
                assert_eq!(listing(ws.path()), before, "{name} wrote something");
                engine.render(&diags, false)
            }
        };
        insta::assert_snapshot!(stem, rendered);
    }
}
