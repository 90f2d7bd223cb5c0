//! Object stores and HTTP against real servers the project starts: moto's S3 server
//! (scripts/s3-local.sh), Python's http.server, and a fault-injecting proxy
//! (tests/fault_proxy.py). Every remote read equals the local run bit for bit; what
//! Tessera writes to S3 reads back in zarr-python; kill -9 during an S3 write then
//! `--resume` equals an uninterrupted run; injected throttling and 500s are survived; bad
//! input is refused before anything is written.

mod common;

use common::{checksum, oracle_python, report_counts as counts, TempDir};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The local S3 server's endpoint, started unless running (fails, never skips).
fn s3_endpoint() -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/s3-local.sh"))
        .env("TESSERA_PYTHON", oracle_python())
        .output()
        .expect("run scripts/s3-local.sh");
    assert!(
        out.status.success(),
        "scripts/s3-local.sh could not start the S3 server:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("an endpoint")
        .trim()
        .to_string()
}

/// A bucket of its own for each test.
fn bucket(endpoint: &str, tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    s3_tool(endpoint, &["mkbucket", &name]);
    name
}

fn s3_tool(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new(oracle_python())
        .arg(repo().join("tests/s3_tool.py"))
        .arg(endpoint)
        .args(args)
        .envs(creds(endpoint))
        .output()
        .expect("run s3_tool.py");
    assert!(
        out.status.success(),
        "s3_tool {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn creds(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Tessera with an environment of only what the test gives (no real AWS settings).
fn tessera_cmd(dir: &Path, args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir).args(args).env("TESSERA_REPORT", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", dir).env_remove("TESSERA_FAULT_INJECT");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn tessera(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    tessera_cmd(dir, args, env).output().expect("run tessera")
}

fn run_script(dir: &Path, script: &str, env: &[(String, String)]) -> Output {
    std::fs::write(dir.join("job.tsr"), script).unwrap();
    tessera(dir, &["run", "job.tsr", "--quiet"], env)
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tessera failed:\n{err}");
    err
}

fn failed(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected a refusal:\n{err}");
    err
}

/// Every stored object of an array except Tessera's own bookkeeping, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel.starts_with(".tessera") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A workspace holding `in.zarr` (v3, zstd, 64 chunks, an edge chunk on each axis) and
/// `v2.zarr` (v2, blosc) written by zarr-python, both uploaded to `bucket`.
fn workspace(tag: &str, endpoint: &str, bucket: &str) -> TempDir {
    let ws = TempDir::new(tag);
    let gen = r#"
import sys, numpy as np, zarr
rng = np.random.default_rng(7)
a = rng.standard_normal((3, 250, 230)).astype("float32")
z = zarr.create_array(sys.argv[1] + "/in.zarr", shape=a.shape, chunks=(1, 64, 64), dtype="float32")
z[...] = a
b = (rng.integers(0, 1000, size=(300, 200))).astype("uint16")
zarr.create_array(sys.argv[1] + "/v2.zarr", shape=b.shape, chunks=(64, 64), dtype="uint16", zarr_format=2)[...] = b
"#;
    let out = Command::new(oracle_python())
        .args(["-c", gen, ws.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["in.zarr", "v2.zarr"] {
        s3_tool(
            endpoint,
            &[
                "upload",
                bucket,
                name,
                ws.path().join(name).to_str().unwrap(),
            ],
        );
    }
    ws
}

const PIPELINE: &str = r#"let x = zarr("SRC/in.zarr")
let y = zarr("SRC/v2.zarr")
(x.map(gaussian((0, 2, 2))) * 3 + 1).write("OUT1", chunks=(1, 100, 100))
(y.astype("f32") - y.mean()).write("OUT2")
"#;

fn pipeline(src: &str, out1: &str, out2: &str) -> String {
    PIPELINE
        .replace("SRC", src)
        .replace("OUT1", out1)
        .replace("OUT2", out2)
}

#[test]
fn s3_reads_equal_local_reads_and_s3_writes_read_back_in_zarr_python() {
    let ep = s3_endpoint();
    let b = bucket(&ep, "rw");
    let ws = workspace("remote-rw", &ep, &b);
    let env = creds(&ep);
    ok(&run_script(
        ws.path(),
        &pipeline(".", "l1.zarr", "l2.zarr"),
        &env,
    ));
    let s3 = format!("s3://{b}");
    // Read from S3, write locally: every byte as from the local run.
    ok(&run_script(
        ws.path(),
        &pipeline(&s3, "r1.zarr", "r2.zarr"),
        &env,
    ));
    assert_eq!(
        files(&ws.path().join("l1.zarr")),
        files(&ws.path().join("r1.zarr"))
    );
    assert_eq!(
        files(&ws.path().join("l2.zarr")),
        files(&ws.path().join("r2.zarr"))
    );
    // Read from S3, write to S3: the stored objects equal the local run's files.
    let o1 = format!("{s3}/out/o1.zarr");
    let o2 = format!("{s3}/out/o2.zarr");
    let err = ok(&run_script(ws.path(), &pipeline(&s3, &o1, &o2), &env));
    assert_eq!(counts(&err).1, 0);
    let dl = ws.path().join("dl");
    s3_tool(
        &ep,
        &[
            "download",
            &b,
            "out/o1.zarr",
            dl.join("o1.zarr").to_str().unwrap(),
        ],
    );
    s3_tool(
        &ep,
        &[
            "download",
            &b,
            "out/o2.zarr",
            dl.join("o2.zarr").to_str().unwrap(),
        ],
    );
    assert_eq!(
        files(&ws.path().join("l1.zarr")),
        files(&dl.join("o1.zarr"))
    );
    assert_eq!(
        files(&ws.path().join("l2.zarr")),
        files(&dl.join("o2.zarr"))
    );
    // No lock object is left behind.
    let keys = s3_tool(&ep, &["keys", &b, "out/"]);
    assert!(!keys.contains(".tessera-lock"), "{keys}");
    // zarr-python reads what Tessera wrote (downloaded from the store) as the local run.
    let check = r#"
import sys, numpy as np, zarr
a = zarr.open_array(sys.argv[1], mode="r")[...]
b = zarr.open_array(sys.argv[2], mode="r")[...]
assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
assert np.array_equal(a, b)
print(a.shape)
"#;
    let out = Command::new(oracle_python())
        .args([
            "-c",
            check,
            dl.join("o1.zarr").to_str().unwrap(),
            ws.path().join("l1.zarr").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "(3, 250, 230)");
    // Also with credentials from a profile file instead of the environment.
    let aws = ws.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[default]\naws_access_key_id = x\n[lab]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let env = vec![
        ("AWS_PROFILE".to_string(), "lab".to_string()),
        ("AWS_ENDPOINT_URL".to_string(), ep.clone()),
    ];
    ok(&run_script(
        ws.path(),
        &pipeline(&s3, "p1.zarr", "p2.zarr"),
        &env,
    ));
    assert_eq!(
        files(&ws.path().join("l1.zarr")),
        files(&ws.path().join("p1.zarr"))
    );
}

/// A child process killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `args` (a Python server that prints its URL on its first line, or
/// `http.server`, which gets a free port).
fn python_server(args: &[&str], dir: &Path) -> (Server, String) {
    let mut child = Command::new(oracle_python())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a Python server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://"), "server printed {url:?}");
    (Server(child), url)
}

fn fault_proxy(upstream: &str, extra: &[&str]) -> (Server, String) {
    let script = repo().join("tests/fault_proxy.py");
    let mut args = vec![script.to_str().unwrap(), upstream];
    args.extend_from_slice(extra);
    python_server(&args, repo())
}

/// Python's http.server on a free loopback port serving `dir`.
fn http_server(dir: &Path) -> (Server, String) {
    let code = "import http.server, functools, sys\n\
        h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
        h.log_message = lambda *a: None\n\
        s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)\n\
        print(f'http://127.0.0.1:{s.server_address[1]}', flush=True)\n\
        s.serve_forever()\n";
    python_server(&["-c", code, dir.to_str().unwrap()], dir)
}

#[test]
fn http_reads_equal_local_reads_and_http_writes_are_refused_at_check_time() {
    let ws = TempDir::new("remote-http");
    let ep = s3_endpoint();
    let b = bucket(&ep, "http");
    let ws2 = workspace("remote-http-data", &ep, &b);
    for name in ["in.zarr", "v2.zarr"] {
        let status = Command::new("cp")
            .args(["-r"])
            .arg(ws2.path().join(name))
            .arg(ws.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let (_server, url) = http_server(ws.path());
    ok(&run_script(
        ws.path(),
        &pipeline(".", "l1.zarr", "l2.zarr"),
        &[],
    ));
    ok(&run_script(
        ws.path(),
        &pipeline(&url, "h1.zarr", "h2.zarr"),
        &[],
    ));
    assert_eq!(
        files(&ws.path().join("l1.zarr")),
        files(&ws.path().join("h1.zarr"))
    );
    assert_eq!(
        files(&ws.path().join("l2.zarr")),
        files(&ws.path().join("h2.zarr"))
    );
    // A write to HTTP: refused at check time, nothing sent.
    let out = run_script(
        ws.path(),
        &format!("zarr(\"in.zarr\").write(\"{url}/new.zarr\")\n"),
        &[],
    );
    let err = failed(&out);
    assert!(err.contains("[E0443]"), "{err}");
    assert!(err.contains("HTTP stores are read-only"), "{err}");
    assert!(!ws.path().join("new.zarr").exists());
    // A missing array over HTTP names the URL.
    let out = run_script(
        ws.path(),
        &format!("print(zarr(\"{url}/nothing.zarr\").sum())\n"),
        &[],
    );
    let err = failed(&out);
    assert!(err.contains("[E0441]"), "{err}");
    assert!(err.contains(&format!("{url}/nothing.zarr")), "{err}");
}

#[test]
fn throttling_and_server_errors_are_retried_and_survived() {
    let ep = s3_endpoint();
    let b = bucket(&ep, "faults");
    let ws = workspace("remote-faults", &ep, &b);
    ok(&run_script(
        ws.path(),
        &pipeline(".", "l1.zarr", "l2.zarr"),
        &creds(&ep),
    ));
    // Every 4th request throttled (503 SlowDown), every 7th a 500, reads and writes.
    let (_proxy, purl) = fault_proxy(&ep, &["--slowdown-every", "4", "--error-every", "7"]);
    let s3 = format!("s3://{b}");
    let (o1, o2) = (format!("{s3}/f/o1.zarr"), format!("{s3}/f/o2.zarr"));
    ok(&run_script(
        ws.path(),
        &pipeline(&s3, &o1, &o2),
        &creds(&purl),
    ));
    let dl = ws.path().join("dl");
    s3_tool(
        &ep,
        &[
            "download",
            &b,
            "f/o1.zarr",
            dl.join("o1.zarr").to_str().unwrap(),
        ],
    );
    s3_tool(
        &ep,
        &[
            "download",
            &b,
            "f/o2.zarr",
            dl.join("o2.zarr").to_str().unwrap(),
        ],
    );
    assert_eq!(
        files(&ws.path().join("l1.zarr")),
        files(&dl.join("o1.zarr"))
    );
    assert_eq!(
        files(&ws.path().join("l2.zarr")),
        files(&dl.join("o2.zarr"))
    );
    // Every request failing: bounded retries, then one error naming the URL, the chunk
    // and the status.
    let (_bad, burl) = fault_proxy(&ep, &["--error-every", "1"]);
    let mut env = creds(&burl);
    env.push(("TESSERA_REMOTE_RETRIES".into(), "2".into()));
    let out = run_script(
        ws.path(),
        &format!("print(zarr(\"{s3}/in.zarr\").sum())\n"),
        &env,
    );
    let err = failed(&out);
    assert!(err.contains(&format!("{s3}/in.zarr")), "{err}");
    assert!(err.contains("500"), "{err}");
    assert!(err.contains("after 2 retries"), "{err}");
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let ep = s3_endpoint();
    let b = bucket(&ep, "bad");
    let ws = workspace("remote-bad", &ep, &b);
    let s3 = format!("s3://{b}");
    let refuse = |script: String, env: &[(String, String)], code: &str, text: &str| {
        let err = failed(&run_script(ws.path(), &script, env));
        assert!(err.contains(&format!("[{code}]")), "{script}\n{err}");
        assert!(err.contains(text), "{script}\n{err}");
        assert_eq!(err.matches("Error:").count(), 1, "one error:\n{err}");
        err
    };
    let env = creds(&ep);
    // A missing bucket and a missing key.
    refuse(
        "print(zarr(\"s3://no-such-bucket-x/in.zarr\").sum())\n".into(),
        &env,
        "E0441",
        "NoSuchBucket",
    );
    refuse(
        format!("print(zarr(\"{s3}/missing.zarr\").sum())\n"),
        &env,
        "E0441",
        &format!("{s3}/missing.zarr: no Zarr array here"),
    );
    // Missing credentials: no environment, no profile file.
    let no_creds = vec![("AWS_ENDPOINT_URL".to_string(), ep.clone())];
    refuse(
        format!("print(zarr(\"{s3}/in.zarr\").sum())\n"),
        &no_creds,
        "E0442",
        "no AWS credentials",
    );
    refuse(
        format!("zarr(\"in.zarr\").write(\"{s3}/w.zarr\")\n"),
        &no_creds,
        "E0442",
        "no AWS credentials",
    );
    // An unreachable endpoint (a closed port), retried a bounded number of times.
    let mut dead = creds("http://127.0.0.1:9");
    dead.push(("TESSERA_REMOTE_RETRIES".into(), "1".into()));
    let t = Instant::now();
    refuse(
        format!("print(zarr(\"{s3}/in.zarr\").sum())\n"),
        &dead,
        "E0440",
        "http://127.0.0.1:9",
    );
    assert!(t.elapsed() < Duration::from_secs(30));
    // An existing S3 array is neither overwritten silently nor replaced non-atomically.
    refuse(
        format!("zarr(\"in.zarr\").write(\"{s3}/in.zarr\")\n"),
        &env,
        "E0404",
        "already exists",
    );
    refuse(
        format!("zarr(\"in.zarr\").write(\"{s3}/v2.zarr\", overwrite=true)\n"),
        &env,
        "E0444",
        "cannot be replaced atomically",
    );
    // Malformed URLs.
    refuse(
        "zarr(\"in.zarr\").write(\"s3://bucket-only\")\n".into(),
        &env,
        "E0445",
        "names no array of its own",
    );
    // Reading and writing one S3 array under two spellings.
    refuse(
        format!("zarr(\"{s3}/a/../in.zarr\").write(\"{s3}//in.zarr/\", overwrite=true)\n"),
        &env,
        "E0408",
        "this program reads",
    );
    // Nothing of any of this reached the bucket.
    let keys = s3_tool(&ep, &["keys", &b, ""]);
    assert!(
        keys.lines()
            .all(|k| k.starts_with("in.zarr/") || k.starts_with("v2.zarr/")),
        "{keys}"
    );
}

#[test]
fn a_live_lock_object_refuses_a_second_writer() {
    let ep = s3_endpoint();
    let b = bucket(&ep, "lock");
    let ws = workspace("remote-lock", &ep, &b);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let holder = format!(
        "{{\"tessera_lock\":1,\"pid\":{},\"host\":\"{}\",\"since\":0,\"boot\":\"{}\"}}",
        std::process::id(),
        host.trim(),
        boot.trim()
    );
    s3_tool(&ep, &["put", &b, "o.zarr/.tessera-lock", &holder]);
    let out = run_script(
        ws.path(),
        &format!("zarr(\"in.zarr\").write(\"s3://{b}/o.zarr\")\n"),
        &creds(&ep),
    );
    let err = failed(&out);
    assert!(err.contains("[E0413]"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    let keys = s3_tool(&ep, &["keys", &b, "o.zarr/"]);
    assert_eq!(keys.trim(), "o.zarr/.tessera-lock", "{keys}");
}

/// Distinct chunks the remote record's batches list.
fn recorded(ep: &str, b: &str, out: &str) -> usize {
    let keys = s3_tool(ep, &["keys", b, &format!("{out}/.tessera-resume/done/")]);
    keys.lines().count()
}

#[test]
fn kill_9_during_an_s3_write_then_resume_equals_an_uninterrupted_run() {
    let ep = s3_endpoint();
    let b = bucket(&ep, "resume");
    let ws = TempDir::new("remote-resume");
    let job = |out: &str| {
        format!(
            "random((8, 512, 512), dtype=\"f32\", chunks=(1, 64, 64), seed=3).map(gaussian((0, 2, 2))).write(\"{out}\")\n"
        )
    };
    let env = creds(&ep);
    ok(&run_script(ws.path(), &job("ref.zarr"), &env));
    let reference = files(&ws.path().join("ref.zarr"));
    // 512 chunks through a proxy adding 15 ms per request, one worker: slow enough to stop.
    let (_proxy, purl) = fault_proxy(&ep, &["--latency-ms", "15"]);
    let penv = creds(&purl);
    let out = format!("s3://{b}/out.zarr");
    std::fs::write(ws.path().join("job.tsr"), job(&out)).unwrap();
    let mut child = tessera_cmd(
        ws.path(),
        &["run", "job.tsr", "--quiet", "--workers", "1"],
        &penv,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let t = Instant::now();
    while recorded(&ep, &b, "out.zarr") < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job ended before it could be killed"
        );
        assert!(t.elapsed() < Duration::from_secs(120), "no batch recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    // Without --resume the interrupted output is refused, naming what a resume would keep.
    let err = failed(&run_script(ws.path(), &job(&out), &env));
    assert!(err.contains("rerun with --resume"), "{err}");
    let err = ok(&tessera(ws.path(), &["run", "job.tsr", "--resume"], &env));
    let (computed, skipped) = counts(&err);
    assert!(
        skipped > 0 && computed < 512,
        "computed {computed}, skipped {skipped}"
    );
    let dl = ws.path().join("dl.zarr");
    s3_tool(&ep, &["download", &b, "out.zarr", dl.to_str().unwrap()]);
    assert!(files(&dl) == reference, "the resumed output differs");
    assert_eq!(checksum(&dl), checksum(&ws.path().join("ref.zarr")));
    let _: PathBuf = dl;
}
