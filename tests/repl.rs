//! The REPL end to end: a session driven through a pseudo-terminal (multi-line input, Tab
//! completion of a binding, a keyword argument and a method, a signature hint, an error
//! that leaves the session going, commands, history), and piped standard input.

mod common;

use common::TempDir;
use rexpect::session::{spawn_command, PtySession};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Replays terminal output onto a screen, so the transcript shows what a person sees
/// (rustyline redraws lines as keys arrive). Handles the few controls a line editor
/// uses: CR, LF, backspace, cursor moves and erases; other escapes are dropped.
fn screen(raw: &str) -> String {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let chars: Vec<char> = raw.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\x1b' => {
                if chars.get(i) != Some(&'[') {
                    i += 1;
                    continue;
                }
                i += 1;
                let mut params = String::new();
                while i < chars.len() && !('\x40'..='\x7e').contains(&chars[i]) {
                    params.push(chars[i]);
                    i += 1;
                }
                let Some(&fin) = chars.get(i) else { break };
                i += 1;
                let n = params.parse::<usize>().unwrap_or(1).max(1);
                match fin {
                    'A' => row = row.saturating_sub(n),
                    'B' => row += n,
                    'C' => col += n,
                    'D' => col = col.saturating_sub(n),
                    'G' => col = n - 1,
                    'K' => {
                        if let Some(l) = lines.get_mut(row) {
                            l.truncate(col);
                        }
                    }
                    'J' => {
                        if let Some(l) = lines.get_mut(row) {
                            l.truncate(col);
                        }
                        lines.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            '\r' => col = 0,
            '\n' => row += 1,
            '\x08' => col = col.saturating_sub(1),
            '\x07' => {}
            c => {
                while lines.len() <= row {
                    lines.push(Vec::new());
                }
                let l = &mut lines[row];
                while l.len() < col {
                    l.push(' ');
                }
                if col < l.len() {
                    l[col] = c;
                } else {
                    l.push(c);
                }
                col += 1;
            }
        }
        while lines.len() <= row {
            lines.push(Vec::new());
        }
    }
    let text: Vec<String> = lines
        .iter()
        .map(|l| l.iter().collect::<String>().trim_end().to_string())
        .collect();
    text.join("\n").trim_end().to_string() + "\n"
}

/// A REPL on a pseudo-terminal, recording everything it writes.
struct Term {
    p: PtySession,
    raw: Vec<u8>,
}

impl Term {
    fn start(dir: &Path) -> Term {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir)
            .env("TERM", "xterm")
            .env("NO_COLOR", "1")
            .env("XDG_DATA_HOME", dir.join("data"))
            .env_remove("HOME");
        let p = spawn_command(cmd, Some(20_000)).expect("spawn tessera on a pty");
        let mut t = Term { p, raw: Vec::new() };
        t.prompt(">>> ");
        t
    }

    /// Wait for `text`, keeping everything up to and including it.
    fn expect(&mut self, text: &str) {
        let before = self.p.exp_string(text).unwrap_or_else(|e| {
            panic!(
                "waiting for {text:?}: {e}\nscreen so far:\n{}",
                self.screen()
            )
        });
        // rexpect hands bytes over as Latin-1 chars: take the bytes back.
        self.raw.extend(before.chars().map(|c| c as u32 as u8));
        self.raw.extend(text.as_bytes());
    }

    /// Wait for a fresh prompt: one at the start of a line, not a redraw of the line
    /// being edited (redraws start with CR, a new prompt follows LF and escapes).
    fn prompt(&mut self, prompt: &str) {
        let re = format!("\n(\x1b\\[[0-9;?]*[a-zA-Z]|\r)*{}", regex_escape(prompt));
        let (before, matched) = self.p.exp_regex(&re).unwrap_or_else(|e| {
            panic!(
                "waiting for {prompt:?}: {e}\nscreen so far:\n{}",
                self.screen()
            )
        });
        self.raw.extend(before.chars().map(|c| c as u32 as u8));
        self.raw.extend(matched.chars().map(|c| c as u32 as u8));
    }

    fn send(&mut self, keys: &str) {
        self.p.send(keys).expect("send keys");
        self.p.flush().expect("flush keys");
    }

    /// Type a line and press Enter, then wait for `next` (">>> " or "... ").
    fn line(&mut self, keys: &str, next: &str) {
        self.send(&format!("{keys}\r"));
        self.prompt(next);
    }

    fn screen(&self) -> String {
        screen(&String::from_utf8_lossy(&self.raw))
    }
}

fn regex_escape(s: &str) -> String {
    // Only the metacharacters: `\>` would be a word boundary, not a `>`.
    s.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$#&-~".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Worker counts (and so projected peaks) depend on the machine's cores.
fn normalize_workers(text: &str) -> String {
    text.lines()
        .map(|l| match (l.find("peak"), l.rfind(" worker")) {
            (Some(p), Some(_)) => format!("{}peak <..> with <N> workers", &l[..p]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn terminal_session() {
    let dir = TempDir::new("repl-pty");
    let mut t = Term::start(dir.path());
    t.line("let value_of_thing = 21", ">>> ");
    // Multi-line: an open bracket continues; Tab completes the keyword argument.
    t.line("let m = zeros((2, 3),", "... ");
    t.line("  dt\t\"i32\")", ">>> ");
    // Tab completes a binding, then a method of an array binding.
    t.line("valu\t * 2", ">>> ");
    t.line("m.asty\t(\"f64\") + 0.5", ">>> ");
    // The hint shows the signature of the function being called.
    t.send("gaussian(");
    t.expect("sigma, truncate=4.0, unit=pixels)");
    t.line("2)", ">>> ");
    // A block continues until it is closed.
    t.line("fn twice(a) {", "... ");
    t.line("  a * 2", "... ");
    t.line("}", ">>> ");
    // An error is reported and the session goes on with its bindings.
    t.line("undefined_thing + 1", ">>> ");
    t.line("twice(value_of_thing) + m.size", ">>> ");
    t.line(":type m[0]", ">>> ");
    // Ctrl-C drops the entry being typed.
    t.send("let dropped = (1,\r");
    t.prompt("... ");
    t.send("\x03");
    t.prompt(">>> ");
    t.line("m.sum_of_nothing", ">>> ");
    t.send(":quit\r");
    t.p.exp_eof().expect("tessera exits after :quit");
    let text = t.screen().replace(env!("CARGO_PKG_VERSION"), "VERSION");
    insta::assert_snapshot!("transcript", text);
    // History went to $XDG_DATA_HOME/tessera/history, multi-line entries included.
    let history = std::fs::read_to_string(dir.path().join("data/tessera/history"))
        .expect("history file written");
    assert!(history.contains("let value_of_thing = 21"), "{history}");
    assert!(history.contains("twice(value_of_thing)"), "{history}");
    assert!(!history.contains("dropped"), "{history}");
}

/// Run the binary with `input` on a pipe: (stdout, stderr, success).
fn piped(dir: &Path, input: &str) -> (String, String, bool) {
    piped_with(dir, &[], input)
}

/// `piped` with command-line arguments (`["repl", "--memory", "8MiB"]`).
fn piped_with(dir: &Path, args: &[&str], input: &str) -> (String, String, bool) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("XDG_DATA_HOME", dir.join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for tessera");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn piped_input_runs_entry_by_entry() {
    let dir = TempDir::new("repl-pipe");
    let input = "\
# a comment, then multi-line statements of every kind
let x = arange(6,
  chunks=4)
let y = x * 3 +
  1
fn shift(a, by=10) {
  a + by
}
let z = x
  .astype(\"f32\")
  .map(gaussian(1))
shift(y).values()
print(\"sizes\", x.size, z.shape)
:type z
if x.size > 3 { \"big\" }
else { \"small\" }
nope(1)
:help shift
y.max_value
shift(2, by=1)
let big = zeros((3000, 3000), chunks=(1000, 1000))
big[0:2, 0:3] + 1
big
:plan big * 2 + 1
:nonsense
";
    let (stdout, stderr, ok) = piped(dir.path(), input);
    assert!(!ok, "an error makes the exit status 1");
    assert!(stderr.contains("E0101"), "{stderr}");
    assert!(stderr.contains("E0102"), "{stderr}");
    assert!(stderr.contains("unknown command :nonsense"), "{stderr}");
    insta::assert_snapshot!("piped", normalize_workers(&stdout));
}

#[test]
fn piped_script_matches_tessera_run() {
    let dir = TempDir::new("repl-run");
    let script = "\
let x = random((40, 30), chunks=(16, 16), seed=3)
let blurred = x.overlap(3)
  .map(gaussian(1))
blurred.write(\"out.zarr\")
print(blurred[0:2, 0:3].values())
for r in [(0:2, 0:2), (5:7, 1:3)] {
  print(x[r].values())
}
";
    std::fs::write(dir.path().join("s.tsr"), script).unwrap();
    let run = Command::new(BIN)
        .current_dir(dir.path())
        .args(["run", "s.tsr", "--quiet"])
        .output()
        .expect("tessera run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::remove_dir_all(dir.path().join("out.zarr")).unwrap();
    let (stdout, stderr, ok) = piped(dir.path(), script);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, String::from_utf8_lossy(&run.stdout));
    assert!(dir.path().join("out.zarr/zarr.json").is_file());
}

#[test]
fn save_load_and_show() {
    let dir = TempDir::new("repl-save");
    let (stdout, stderr, ok) = piped(
        dir.path(),
        "let a = arange(12).reshape_me\nlet a = arange(12)\nlet b = (a * 2)\n  .values()\n:time a + 1\n:save session.tsr\n",
    );
    assert!(!ok, "the first line is an error");
    assert!(
        stdout.contains("saved 3 entries to session.tsr"),
        "{stdout}\n{stderr}"
    );
    let saved = std::fs::read_to_string(dir.path().join("session.tsr")).unwrap();
    assert_eq!(
        saved,
        "# saved from the tessera REPL\nlet a = arange(12)\nlet b = (a * 2)\n  .values()\na + 1\n"
    );
    let (stdout, stderr, ok) = piped(
        dir.path(),
        ":load session.tsr\nb\nlet img = (arange(64) % 8).astype(\"f32\")[none, :]\n:show img pic.png\n:show img[0, 0:3]\n:show a\n",
    );
    assert!(!ok, "a 1-D array cannot be shown");
    assert!(stdout.contains("[ 0  2  4  6"), "{stdout}\n{stderr}");
    assert!(stdout.contains("pic.png (1 x 64)"), "{stdout}\n{stderr}");
    assert!(stderr.contains("a preview needs a 2-D array"), "{stderr}");
    let png = std::fs::read(dir.path().join("pic.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

/// A table value on its own line shows its rows, as `print` would, and a reduction's
/// 0-d result shows its value.
#[test]
fn piped_tables_and_scalars_show_values() {
    let dir = TempDir::new("repl-table");
    let input = "\
let m = zeros((6, 8), dtype=\"u8\")
let img = where(arange(48).reshape(6, 8) % 5 == 0, 1, 0).astype(\"u8\")
let l = label(img + m)
regionprops(l, intensity=arange(48).reshape(6, 8))
l.max()
";
    let (stdout, stderr, ok) = piped(dir.path(), input);
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("<table"), "{stdout}");
    assert!(stdout.contains("mean_intensity"), "{stdout}");
    let rows = stdout.lines().filter(|l| l.contains(".000000")).count();
    assert_eq!(rows, 10, "one row per object: {stdout}");
    assert!(stdout.lines().any(|l| l.trim() == "10"), "{stdout}");
}

/// Run `tessera ARGS` in `dir`: (stdout, stderr, exit code).
fn cli(dir: &Path, args: &[&str]) -> (String, String, Option<i32>) {
    let out = Command::new(BIN)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("tessera");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

/// Worker count and memory limit for the plan comparisons below: the plan's summary
/// depends on both, and a small limit stages rechunks through storage.
const LIMITS: [[&str; 4]; 2] = [
    ["--workers", "2", "--memory", "4MiB"],
    ["--workers", "3", "--memory", "2GiB"],
];

/// `:plan FILE` and `:explain FILE` print what `tessera plan FILE` (`--explain`) prints,
/// byte for byte, under the same `--workers` and `--memory`; and the session's bindings
/// are untouched by it.
#[test]
fn plan_of_a_script_is_the_command_lines() {
    let dir = TempDir::new("repl-plan-file");
    let d = dir.path();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for name in ["elementwise", "indexing", "timelapse"] {
        let file = format!("{name}.tsr");
        std::fs::copy(examples.join(&file), d.join(&file)).unwrap();
        for limits in LIMITS {
            for explain in [false, true] {
                let mut args = vec!["plan", file.as_str()];
                args.extend(limits);
                if explain {
                    args.push("--explain");
                }
                let (want, err, code) = cli(d, &args);
                assert_eq!(code, Some(0), "tessera {args:?}: {err}");
                assert!(want.contains("tasks"), "{want}");
                let mut repl_args = vec!["repl"];
                repl_args.extend(limits);
                let cmd = if explain { ":explain" } else { ":plan" };
                let input = format!("let x = 41\n{cmd} {file}\nx + 1\n");
                let (got, err, ok) = piped_with(d, &repl_args, &input);
                assert!(ok, "{name} {limits:?}: {err}");
                assert_eq!(
                    got,
                    format!("{want}42\n"),
                    "{name} {limits:?} explain={explain}"
                );
            }
        }
    }
    // Under 4 MiB on 2 workers the rechunk is staged; with 2 GiB it is not: the REPL
    // plans for its own limit.
    let staged = |limits: [&str; 4]| {
        let mut args = vec!["repl"];
        args.extend(limits);
        let (out, err, ok) = piped_with(d, &args, ":plan timelapse.tsr\n");
        assert!(ok, "{err}");
        out
    };
    assert_ne!(staged(LIMITS[0]), staged(LIMITS[1]));
}

/// `:plan EXPR` after the program's bindings, entered one by one, prints what
/// `tessera plan` prints for the script of those bindings and that expression.
#[test]
fn plan_of_an_expression_is_the_command_lines() {
    let dir = TempDir::new("repl-plan-expr");
    let d = dir.path();
    let programs: [(&str, &str); 3] = [
        (
            "let x = arange(10000, chunks=1024).astype(\"u16\")\n\
             let y = (x * 7 + 3) % 1000\n\
             let m = where(y > 500, sqrt(y / 4), -1.0)\n",
            "m.astype(\"f32\").write(\"m.zarr\", overwrite=true)",
        ),
        (
            "let t = random((2, 3, 40, 50), dtype=\"f64\", chunks=(1, 2, 16, 16), seed=11)\n\
             let s = t[1, ::-1, 5:-3:2, ...]\n",
            "(s * 2).write(\"s.zarr\", overwrite=true)",
        ),
        (
            "let noise = random((48, 256, 256), dtype=\"f32\", chunks=(8, 128, 128), seed=5)\n\
             let series = noise.rechunk((48, 32, 32))\n",
            "(abs(fft(series, axis=0)) ** 2).astype(\"f32\").write(\"power.zarr\")",
        ),
    ];
    for (i, (lets, sink)) in programs.iter().enumerate() {
        let file = format!("p{i}.tsr");
        std::fs::write(d.join(&file), format!("{lets}{sink}\n")).unwrap();
        for limits in LIMITS {
            let mut args = vec!["plan", file.as_str()];
            args.extend(limits);
            let (want, err, code) = cli(d, &args);
            assert_eq!(code, Some(0), "tessera {args:?}: {err}");
            let mut repl_args = vec!["repl"];
            repl_args.extend(limits);
            let (got, err, ok) = piped_with(d, &repl_args, &format!("{lets}:plan {sink}\n"));
            assert!(ok, "program {i} {limits:?}: {err}");
            assert_eq!(got, want, "program {i} {limits:?}");
        }
    }
}

/// A lazy array's summary counts the tasks of the plan `:plan` shows for it, under the
/// session's limit (a rechunk is planned in smaller blocks under a small one).
#[test]
fn summary_tasks_follow_the_session_limit() {
    let dir = TempDir::new("repl-summary");
    let input = "let noise = random((48, 256, 256), dtype=\"f32\", chunks=(8, 128, 128), seed=5)\n\
                 let series = noise.rechunk((48, 32, 32))\nseries\n:plan series\n";
    let mut counts = Vec::new();
    for limits in LIMITS {
        let mut args = vec!["repl"];
        args.extend(limits);
        let (out, err, ok) = piped_with(dir.path(), &args, input);
        assert!(ok, "{err}");
        let summary: u64 = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("tasks"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no tasks line: {out}"));
        let planned: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("total: "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no total line: {out}"));
        assert_eq!(summary, planned, "{limits:?}: {out}");
        counts.push(summary);
    }
    assert!(
        counts[0] > counts[1],
        "smaller blocks under 4 MiB: {counts:?}"
    );
}

/// A write in the REPL under `--memory` is refused as `tessera run` refuses it, with the
/// same code and message, before anything is written; with room it runs.
#[test]
fn repl_runs_under_the_memory_limit() {
    let dir = TempDir::new("repl-memory");
    let d = dir.path();
    // One 32 MiB chunk: no task fits 8 MiB.
    let src = "ones((2048, 2048), chunks=(2048, 2048)).write(\"o.zarr\")\n";
    std::fs::write(d.join("big.tsr"), src).unwrap();
    let (_, cli_err, code) = cli(d, &["run", "big.tsr", "--memory", "8MiB", "--quiet"]);
    assert_eq!(code, Some(1), "{cli_err}");
    assert!(cli_err.contains("[E0504]"), "{cli_err}");
    assert!(!d.join("o.zarr").exists());
    let (_, err, ok) = piped_with(d, &["repl", "--memory", "8MiB"], src);
    assert!(!ok, "{err}");
    assert!(err.contains("[E0504]"), "{err}");
    let message = |e: &str| {
        e.lines()
            .find(|l| l.contains("E0504"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert_eq!(message(&err), message(&cli_err));
    assert!(!d.join("o.zarr").exists(), "the refused write wrote");
    // The same entry reading it back in the same session is refused as well (the
    // values are computed under the limit too).
    let (_, err, ok) = piped_with(
        d,
        &["repl", "--memory", "8MiB"],
        "ones((2048, 2048), chunks=(2048, 2048)).sum().values()\n",
    );
    assert!(!ok && err.contains("[E0504]"), "{err}");
    let (out, err, ok) = piped_with(
        d,
        &["repl", "--memory", "256MiB"],
        &format!("{src}zarr(\"o.zarr\").sum().values()\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim().parse::<f64>(), Ok(4194304.0), "{out}");
    // Bad limits are refused as by `run`.
    for bad in ["0", "lots"] {
        let (_, err, code) = cli(d, &["repl", "--memory", bad]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("is not a size"), "{err}");
    }
}

/// A write in the REPL takes the output's lock (a held lock refuses it with E0413, as
/// for `tessera run`) and leaves the completion record a run leaves.
#[test]
fn repl_writes_take_the_output_lock_and_record_completion() {
    let dir = TempDir::new("repl-lock");
    let d = dir.path();
    let src = "ones((4, 4)).write(\"o.zarr\")\n";
    let (held, _) = tessera::io::lock::acquire(&d.join("o.zarr")).unwrap();
    let (_, err, ok) = piped(d, src);
    assert!(!ok, "{err}");
    assert!(err.contains("[E0413]"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(!d.join("o.zarr").exists(), "the refused write wrote");
    drop(held);
    let (_, err, ok) = piped(d, src);
    assert!(ok, "{err}");
    assert!(
        !d.join("o.zarr.tessera-lock").exists(),
        "the lock outlived the write"
    );
    let record = std::fs::read_to_string(d.join("o.zarr/.tessera-resume.log")).unwrap();
    assert!(
        record.ends_with("e\n"),
        "the record says finished: {record}"
    );
    let (_, err, ok) = piped(d, "zarr(\"o.zarr\").sum()\n");
    assert!(ok, "{err}");
}
