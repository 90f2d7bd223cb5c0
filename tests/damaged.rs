//! Damaged inputs and storage failures, through the `tessera` binary: each must give a
//! clear error naming the path and chunk, a non-zero exit and no panic, and must keep
//! every chunk finished before the failure intact, with no temporary file left behind.

mod common;

use common::TempDir;
use std::path::Path;
use std::process::{Command, Output};
use tessera::io::ZarrReader;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn tessera(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .args(args)
        .env_remove("TESSERA_FAULT_INJECT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run tessera")
}

/// 4 planes of 256 x 256 u16 in chunks of (1, 128, 128): 16 chunks, flat index
/// `4 * plane + 2 * row + col`, stored at `c/PLANE/ROW/COL`.
const GEN: &str = r#"random((4, 256, 256), dtype="u16", chunks=(1, 128, 128), seed=2).write("in.zarr", overwrite=true)
"#;

fn workspace(tag: &str, out: &str) -> TempDir {
    let ws = TempDir::new(tag);
    std::fs::write(ws.path().join("gen.tsr"), GEN).unwrap();
    let made = tessera(ws.path(), &["run", "gen.tsr", "--quiet"], &[]);
    assert!(made.status.success());
    let job = format!(
        "let x = zarr(\"in.zarr\")\n(x + 1).write(\"{out}\", overwrite=true, codec=\"none\")\n"
    );
    std::fs::write(ws.path().join("job.tsr"), job).unwrap();
    ws
}

/// Run the job on one worker (chunks in flat order); it must fail cleanly.
fn run_failing(ws: &Path, env: &[(&str, &str)]) -> String {
    let out = tessera(ws, &["run", "job.tsr", "--workers", "1", "--quiet"], env);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    eprintln!("{err}");
    err
}

fn temp_files(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            temp_files(&p, out);
        } else if p.to_string_lossy().contains(".tmp.") {
            out.push(p.display().to_string());
        }
    }
}

/// Chunks 0..n of the output exist and hold input + 1; no temporary file is left.
fn first_chunks_intact(ws: &Path, output: &Path, n: u64) {
    let input = ZarrReader::open(&ws.join("in.zarr")).unwrap();
    let out = ZarrReader::open(output).unwrap();
    for flat in 0..n {
        let idx = [flat / 4, flat / 2 % 2, flat % 2];
        let file = output.join(format!("c/{}/{}/{}", idx[0], idx[1], idx[2]));
        assert!(file.is_file(), "{} is missing", file.display());
        let a = input.read_chunk(&idx).unwrap();
        let b = out.read_chunk(&idx).unwrap();
        for i in 0..a.len() {
            assert_eq!(b.get_f64(i), (a.get_f64(i) as u16).wrapping_add(1) as f64);
        }
    }
    let mut temps = Vec::new();
    temp_files(output, &mut temps);
    assert_eq!(temps, Vec::<String>::new(), "temporary files left behind");
}

#[test]
fn corrupted_chunk() {
    let ws = workspace("corrupt", "out.zarr");
    // Chunk 9 ([2, 0, 1]): same length, but not a zstd frame any more.
    let chunk = ws.path().join("in.zarr/c/2/0/1");
    let len = std::fs::metadata(&chunk).unwrap().len() as usize;
    std::fs::write(&chunk, vec![0xA5u8; len]).unwrap();
    let err = run_failing(ws.path(), &[]);
    assert!(err.contains("E0406"), "{err}");
    assert!(
        err.contains("error reading in.zarr chunk [2, 0, 1]"),
        "{err}"
    );
    assert!(
        err.contains("(region (2:3, 0:128, 128:256)) of out.zarr"),
        "{err}"
    );
    first_chunks_intact(ws.path(), &ws.path().join("out.zarr"), 9);
}

#[test]
fn truncated_chunk() {
    let ws = workspace("truncated", "out.zarr");
    let chunk = ws.path().join("in.zarr/c/1/1/0");
    let bytes = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, &bytes[..bytes.len() / 2]).unwrap();
    let err = run_failing(ws.path(), &[]);
    assert!(
        err.contains("error reading in.zarr chunk [1, 1, 0]"),
        "{err}"
    );
    first_chunks_intact(ws.path(), &ws.path().join("out.zarr"), 6);
}

#[test]
fn metadata_with_the_wrong_dtype() {
    let ws = workspace("dtype", "out.zarr");
    let meta = ws.path().join("in.zarr/zarr.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    assert!(text.contains("\"uint16\""));
    std::fs::write(&meta, text.replace("\"uint16\"", "\"uint32\"")).unwrap();
    // The metadata is valid, so the script checks; the first chunk decodes to half the
    // bytes a u32 chunk needs.
    let err = run_failing(ws.path(), &[]);
    assert!(
        err.contains("error reading in.zarr chunk [0, 0, 0]"),
        "{err}"
    );
    first_chunks_intact_none(&ws.path().join("out.zarr"));
}

/// Nothing was finished: the output holds its metadata and no chunk, and no temp file.
fn first_chunks_intact_none(output: &Path) {
    assert!(output.join("zarr.json").is_file());
    assert!(!output.join("c").exists());
    let mut temps = Vec::new();
    temp_files(output, &mut temps);
    assert_eq!(temps, Vec::<String>::new());
}

fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap();
    euid == "0"
}

/// Chunk [3, 0, 0] (flat 12) replaced by something no one can read as a file, root
/// included: the run fails naming the chunk and the OS error, and the 12 chunks finished
/// before it stay intact.
fn check_unreadable_chunk(tag: &str, make: impl Fn(&Path), os_error: &str) {
    let ws = workspace(tag, "out.zarr");
    let chunk = ws.path().join("in.zarr/c/3/0/0");
    std::fs::remove_file(&chunk).unwrap();
    make(&chunk);
    let err = run_failing(ws.path(), &[]);
    assert!(
        err.contains("error reading in.zarr chunk [3, 0, 0]"),
        "{tag}: {err}"
    );
    assert!(err.contains(os_error), "{tag}: {err}");
    first_chunks_intact(ws.path(), &ws.path().join("out.zarr"), 12);
}

#[test]
fn unreadable_chunk() {
    // A directory where the chunk file should be.
    check_unreadable_chunk("chunk-is-dir", |p| std::fs::create_dir(p).unwrap(), "E0406");
    // A symlink to itself: opening is ELOOP.
    check_unreadable_chunk(
        "chunk-loop",
        |p| std::os::unix::fs::symlink(p.file_name().unwrap(), p).unwrap(),
        "Too many levels of symbolic links",
    );
    // A directory without read permission stops everyone but root (whose reads the
    // kernel allows anyway), so this case runs only under another user.
    if !running_as_root() {
        use std::os::unix::fs::PermissionsExt;
        let ws = workspace("unreadable", "out.zarr");
        let dir = ws.path().join("in.zarr/c/3");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
        let err = run_failing(ws.path(), &[]);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            err.contains("error reading in.zarr chunk [3, 0, 0]"),
            "{err}"
        );
        assert!(err.contains("Permission denied"), "{err}");
        first_chunks_intact(ws.path(), &ws.path().join("out.zarr"), 12);
    }
}

/// A small tmpfs, unmounted on drop; `None` where mounting is not allowed.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?
            .status
            .success();
        ok.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

fn check_full_disk(err: &str, ws: &Path, output: &Path) {
    assert!(err.contains("E0407"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let at = err.find("chunk [").expect(err) + 7;
    let idx: Vec<u64> = err[at..at + err[at..].find(']').unwrap()]
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    let failed = idx[0] * 4 + idx[1] * 2 + idx[2];
    assert!(failed > 0, "{err}");
    first_chunks_intact(ws, output, failed);
}

#[test]
fn full_disk() {
    let ws = workspace("full", "disk/out.zarr");
    // Each uncompressed chunk is 32 KiB: a 256 KiB filesystem fills after a few.
    match SmallDisk::mount(&ws.path().join("disk"), "256k") {
        Some(disk) => {
            let err = run_failing(ws.path(), &[]);
            check_full_disk(&err, ws.path(), &ws.path().join("disk/out.zarr"));
            drop(disk);
        }
        None => eprintln!("no tmpfs (mount not permitted): the full disk is simulated only"),
    }
    // Also simulated, where no small filesystem can be mounted: the 5th chunk write
    // fails with ENOSPC, which is not retried.
    let ws = workspace("full-sim", "out.zarr");
    let err = run_failing(ws.path(), &[("TESSERA_FAULT_INJECT", "write:5:enospc")]);
    assert!(!err.contains("failed 2 times"), "ENOSPC was retried: {err}");
    check_full_disk(&err, ws.path(), &ws.path().join("out.zarr"));
    assert!(err.contains("chunk [1, 0, 0]"), "{err}");
}
