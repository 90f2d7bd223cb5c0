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
    t.expect("sigma, truncate=4.0)");
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
    let mut child = Command::new(BIN)
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
