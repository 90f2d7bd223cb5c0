//! The oracle fixtures themselves (`tests/oracle/generate.py`): every array the manifest
//! lists reads back through Tessera with its recorded dtype, shape and checksum; every
//! reference is reproduced from its stored input by the generator's own calls (also on an
//! independently produced set, when one lies beside the crate); and the generator is
//! deterministic and does nothing when its output is up to date.

mod common;

use common::{crosscheck_fixtures, fixtures, read_all, sha256, TempDir};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const GENERATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/generate.py");

use common::oracle_python as python;

/// Run the generator with `args`; its stderr on success.
fn generate(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(GENERATOR)
        .args(args)
        .output()
        .expect("run the generator");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "generate.py {args:?} failed:\n{err}");
    err
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

fn check_manifest(dir: &Path) -> usize {
    let m = manifest(dir);
    let entries = m["fixtures"].as_array().unwrap();
    for e in entries {
        let path = e["path"].as_str().unwrap();
        let (buf, shape) = read_all(&dir.join(path));
        assert_eq!(
            buf.dtype().numpy_name(),
            e["dtype"].as_str().unwrap(),
            "{path}"
        );
        let want: Vec<u64> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(shape, want, "{path}");
        assert_eq!(
            sha256(&buf),
            e["checksum"]["sha256_c_le"].as_str().unwrap(),
            "{path}: content differs from the manifest's checksum"
        );
    }
    entries.len()
}

#[test]
fn every_listed_array_reads_with_its_checksum() {
    let dir = fixtures();
    let n = check_manifest(&dir);
    // interop 11, filters 3 + 57, reductions 2 + 5, label 2 + 4, rois 1 + 2.
    assert_eq!(n, 87, "arrays listed in {}", dir.display());
    for category in ["interop", "filters", "reductions", "label", "rois"] {
        assert!(
            manifest(&dir)["fixtures"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["category"] == category),
            "no {category} fixture"
        );
    }
    if let Some(other) = crosscheck_fixtures() {
        assert!(check_manifest(&other) > 0);
    }
}

#[test]
fn every_reference_is_reproduced_from_its_input() {
    let mut sets = vec![fixtures()];
    sets.extend(crosscheck_fixtures());
    for set in sets {
        let err = generate(&["--crosscheck", set.to_str().unwrap()]);
        // 57 filters, 4 labellings, 5 reductions arrays, 2 region writes, 15 reductions.
        assert!(err.contains("cross-check: 83 references"), "{err}");
    }
}

#[test]
fn generator_is_deterministic_and_skips_when_up_to_date() {
    let tmp = TempDir::new("oracle");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        let err = generate(&["--out", d.to_str().unwrap()]);
        assert!(err.contains("87 arrays written"), "{err}");
    }
    assert_eq!(
        std::fs::read(a.join("manifest.json")).unwrap(),
        std::fs::read(b.join("manifest.json")).unwrap(),
        "two runs of the generator differ"
    );
    let before = std::fs::metadata(a.join("manifest.json"))
        .unwrap()
        .modified()
        .unwrap();
    let err = generate(&["--out", a.to_str().unwrap()]);
    assert!(err.contains("up to date"), "{err}");
    let after = std::fs::metadata(a.join("manifest.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "an up-to-date set was rewritten");
    // A damaged set (a listed array gone) is rebuilt, not trusted.
    std::fs::remove_dir_all(a.join("label/mask2d_u8.zarr")).unwrap();
    let err = generate(&["--out", a.to_str().unwrap()]);
    assert!(err.contains("87 arrays written"), "{err}");
    assert!(a.join("label/mask2d_u8.zarr/zarr.json").is_file());
    // Nothing is left beside the set.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
