//! Resumable runs: a completion record next to each output lists the chunks finished for
//! one plan, so `--resume` after a kill, a crash or Ctrl-C recomputes only the rest.
//!
//! The record is `<output>/.tessera-resume.log`, a text file: a JSON header line naming the
//! plan (hashes of the script, of every input's metadata documents, of the output's own
//! metadata, and of the Tessera version), then one line per finished chunk (`c FLAT`),
//! appended with a single `write` after the chunk's rename. A line without its newline (a
//! kill in the middle of an append) is ignored. Every `CHECKPOINT` the store is synced and a
//! marker `s OFFSET` says every line before OFFSET names a durable chunk (a final `e` says
//! the output was finished); after a reboot
//! (the header's boot id differs) only lines before the last marker are trusted, so a
//! power loss can never make a resumed run skip a chunk that did not reach the disk.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::diag::{codes, Diagnostic};
use crate::io::{IoError, ObjectDir, ZarrWriter, REMOTE_RECORD, RESUME_RECORD};

/// How often finished chunks are made durable and marked so in the record.
const CHECKPOINT: Duration = Duration::from_secs(30);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `script_hash` extended by the path and bytes of every Python module file the program's
/// block functions import (unchanged when there are none; an unreadable file counts as
/// empty, and the import then fails by itself).
pub fn with_code_files(script_hash: &str, program: &crate::ir::Program) -> String {
    let mut files: Vec<&std::path::Path> = program
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            crate::ir::Op::PyBlock(b) => b.func.file.as_deref(),
            _ => None,
        })
        .collect();
    // An image stack's files are identified by name, size and modification time.
    let stacks: Vec<Vec<u8>> = program
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            crate::ir::Op::Images { stack } => serde_json::to_vec(&**stack).ok(),
            _ => None,
        })
        .collect();
    if files.is_empty() && stacks.is_empty() {
        return script_hash.to_string();
    }
    files.sort();
    files.dedup();
    let texts: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| {
            (
                f.display().to_string(),
                std::fs::read(f).unwrap_or_default(),
            )
        })
        .collect();
    let mut parts: Vec<&[u8]> = vec![script_hash.as_bytes()];
    for (name, bytes) in &texts {
        parts.push(name.as_bytes());
        parts.push(bytes);
    }
    parts.extend(stacks.iter().map(|s| s.as_slice()));
    sha(&parts)
}

fn sha(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

/// The metadata documents of the array at `dir` (v3 `zarr.json`, v2 `.zarray`), hashed:
/// shape, dtype, chunks, codecs and fill value all live there.
pub(crate) fn metadata_hash(dir: &Path) -> String {
    let (v3, v2) = crate::io::metadata_documents(dir);
    sha(&[&v3, &v2])
}

/// What makes two runs compute the same chunks: the script, the standard library and the
/// interpreter version, and every input's metadata. Worker count, memory limit and
/// progress settings change nothing in the output and are left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub script: String,
    pub runtime: String,
    /// (path as the script wrote it, hash of its metadata), sorted by path.
    pub inputs: Vec<(String, String)>,
    /// The script's arguments (name, value as the script sees it), sorted by name.
    pub args: Vec<(String, String)>,
}

impl Fingerprint {
    pub fn new<'a>(
        script: &str,
        inputs: impl IntoIterator<Item = (&'a str, &'a Path)>,
    ) -> Fingerprint {
        let mut stdlib: Vec<&[u8]> = vec![env!("CARGO_PKG_VERSION").as_bytes()];
        stdlib.extend(crate::stdlib::FILES.iter().map(|(_, t)| t.as_bytes()));
        let mut inputs: Vec<(String, String)> = inputs
            .into_iter()
            .map(|(name, dir)| (name.to_string(), metadata_hash(dir)))
            .collect();
        inputs.sort();
        Fingerprint {
            script: sha(&[script.as_bytes()]),
            runtime: sha(&stdlib),
            inputs,
            args: Vec::new(),
        }
    }

    /// The same plan run with these script arguments (`arg(name, default)`).
    /// Fold in the module files of the program's Python block functions, so a changed
    /// function makes `--resume` start over as a changed script does.
    pub fn with_code(mut self, program: &crate::ir::Program) -> Self {
        self.script = with_code_files(&self.script, program);
        self
    }

    pub fn with_args<'a>(mut self, args: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.args = args
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.args.sort();
        self
    }

    fn header(&self, output_meta: &str) -> Value {
        json!({
            "tessera_resume": 1,
            "script": self.script,
            "runtime": self.runtime,
            "inputs": self.inputs,
            "args": self.args,
            "output": output_meta,
            "boot": boot_id(),
        })
    }
}

/// Changes with every boot: tells a resume after a reboot from one after a killed process.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Why a record cannot be resumed; `None` when it matches.
fn mismatch(header: &Value, fp: &Fingerprint, output_meta: &str) -> Option<String> {
    let s = |k: &str| header.get(k).and_then(Value::as_str).unwrap_or("");
    if header.get("tessera_resume").and_then(Value::as_u64) != Some(1) {
        return Some("its completion record is from an unknown version of the format".into());
    }
    if s("script") != fp.script {
        return Some(
            "the script changed since the interrupted run (or a Python module it imports did)"
                .into(),
        );
    }
    if s("runtime") != fp.runtime {
        return Some("the interrupted run used another version of Tessera".into());
    }
    let before: Vec<(String, String)> =
        serde_json::from_value(header.get("inputs").cloned().unwrap_or(Value::Null))
            .unwrap_or_default();
    for (name, hash) in &fp.inputs {
        match before.iter().find(|(n, _)| n == name) {
            None => return Some(format!("the interrupted run did not read input {name:?}")),
            Some((_, h)) if h != hash => {
                return Some(format!(
                    "the metadata of input {name:?} changed since the interrupted run (shape, dtype, chunks or codecs)"
                ))
            }
            _ => {}
        }
    }
    if let Some((name, _)) = before
        .iter()
        .find(|(n, _)| !fp.inputs.iter().any(|(m, _)| m == n))
    {
        return Some(format!("the interrupted run also read input {name:?}"));
    }
    let args_before: Vec<(String, String)> =
        serde_json::from_value(header.get("args").cloned().unwrap_or(Value::Null))
            .unwrap_or_default();
    if args_before != fp.args {
        let show = |v: &[(String, String)]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|(k, x)| format!("{k}={x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        return Some(format!(
            "the script's arguments changed since the interrupted run ({} then, {} now)",
            show(&args_before),
            show(&fp.args)
        ));
    }
    if s("output") != output_meta {
        return Some("the output's own metadata changed since the interrupted run".into());
    }
    None
}

/// The chunks a record proves finished: all of them when the record was written since the
/// last boot, else only those before its last durability marker.
fn parse(text: &[u8]) -> Option<(Value, Vec<u64>)> {
    let mut lines = Vec::new();
    let mut pos = 0usize;
    while let Some(n) = text[pos..].iter().position(|b| *b == b'\n') {
        lines.push((&text[pos..pos + n], pos + n + 1));
        pos += n + 1;
    }
    let (first, _) = lines.first()?;
    let header: Value = serde_json::from_slice(first).ok()?;
    let same_boot = header.get("boot").and_then(Value::as_str) == Some(boot_id().as_str());
    let mut entries: Vec<(u64, usize)> = Vec::new();
    let mut durable = 0usize;
    for (line, end) in &lines[1..] {
        let line = std::str::from_utf8(line).unwrap_or("");
        if let Some(v) = line.strip_prefix("c ") {
            if let Ok(flat) = v.parse() {
                entries.push((flat, *end));
            }
        } else if let Some(v) = line.strip_prefix("s ") {
            if let Ok(off) = v.parse::<usize>() {
                durable = durable.max(off);
            }
        }
    }
    let mut done: Vec<u64> = entries
        .into_iter()
        .filter(|(_, end)| same_boot || *end <= durable)
        .map(|(f, _)| f)
        .collect();
    done.sort_unstable();
    done.dedup();
    Some((header, done))
}

/// The open completion record of one output.
pub(crate) struct Record {
    path: PathBuf,
    sink: Sink,
    last_checkpoint: Mutex<Instant>,
}

/// Where a record's lines go: an appended local file, or batch objects in an object store.
enum Sink {
    File(File),
    Objects(Batches),
}

/// Finished chunks of a remote output not yet in a batch object, and how batches are named.
struct Batches {
    dir: ObjectDir,
    pending: Mutex<Vec<u64>>,
    /// Unique to this run: `PID-NANOS`.
    tag: String,
    seq: AtomicU64,
}

/// A batch object holds at most this many chunks (or what `REMOTE_CHECKPOINT` gathered).
const BATCH: usize = 256;
/// How often a remote output's finished chunks are listed in a new batch object.
const REMOTE_CHECKPOINT: Duration = Duration::from_secs(2);

fn batch_key(tag: &str, seq: u64) -> String {
    format!("{REMOTE_RECORD}/done/{tag}-{seq:08}")
}

impl Batches {
    /// PUT the pending chunks as one batch object (their own PUTs have all returned).
    fn flush(&self) -> Result<(), IoError> {
        let chunks = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if chunks.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for f in &chunks {
            text.push_str(&format!("c {f}\n"));
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.dir.put(&batch_key(&self.tag, seq), text.into_bytes())
    }
}

fn record_err(path: &Path, e: impl std::fmt::Display) -> IoError {
    IoError::Write {
        path: path.display().to_string(),
        chunk: None,
        detail: format!("cannot update the completion record: {e}"),
    }
}

impl Record {
    /// A record of a remote output: a fresh start deletes any old record objects before
    /// the header is written (an old batch must never count for a new run); a resumed start
    /// writes the header and one batch of `done` first, then deletes the older batches.
    fn start_remote(dir: ObjectDir, header: &Value, done: &[u64]) -> Result<Record, IoError> {
        let old = dir.list(REMOTE_RECORD)?;
        let header_key = format!("{REMOTE_RECORD}/header.json");
        if done.is_empty() {
            for k in &old {
                dir.delete(k)?;
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let batches = Batches {
            dir: dir.clone(),
            pending: Mutex::new(done.to_vec()),
            tag: format!("{}-{nanos}", std::process::id()),
            seq: AtomicU64::new(0),
        };
        let text = serde_json::to_string(header).unwrap_or_default();
        dir.put(&header_key, text.into_bytes())?;
        if !done.is_empty() {
            batches.flush()?;
            for k in old.iter().filter(|k| **k != header_key) {
                dir.delete(k)?;
            }
        }
        Ok(Record {
            path: PathBuf::from(dir.url_of(REMOTE_RECORD)),
            sink: Sink::Objects(batches),
            last_checkpoint: Mutex::new(Instant::now()),
        })
    }

    /// Write a record holding `header` and `done` atomically (temporary file, rename), then
    /// open it for appending.
    fn start(output: &Path, header: &Value, done: &[u64]) -> Result<Record, IoError> {
        if let Some(dir) = ObjectDir::open(output)? {
            return Record::start_remote(dir, header, done);
        }
        Record::start_local(output, header, done).map_err(|e| record_err(output, e))
    }

    fn start_local(output: &Path, header: &Value, done: &[u64]) -> std::io::Result<Record> {
        let path = output.join(RESUME_RECORD);
        let tmp = output.join(format!(".{RESUME_RECORD}.tmp.{}", std::process::id()));
        let mut text = serde_json::to_string(header).unwrap_or_default();
        text.push('\n');
        for f in done {
            text.push_str(&format!("c {f}\n"));
        }
        if !done.is_empty() {
            // Resumed entries were synced before this record was written (see `resume`).
            text.push_str(&format!("s {}\n", text.len()));
        }
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Record {
            path,
            sink: Sink::File(file),
            last_checkpoint: Mutex::new(Instant::now()),
        })
    }

    /// Note chunk `flat` as finished; every `CHECKPOINT`, make finished chunks durable.
    pub(crate) fn completed(&self, flat: u64, writer: &ZarrWriter) -> Result<(), IoError> {
        let file = match &self.sink {
            Sink::File(f) => f,
            Sink::Objects(b) => {
                let full = {
                    let mut p = b.pending.lock().unwrap_or_else(|e| e.into_inner());
                    p.push(flat);
                    p.len() >= BATCH
                };
                let due = match self.last_checkpoint.try_lock() {
                    Ok(mut t) if full || t.elapsed() >= REMOTE_CHECKPOINT => {
                        *t = Instant::now();
                        true
                    }
                    _ => false,
                };
                return if due { b.flush() } else { Ok(()) };
            }
        };
        // One write(2) on an O_APPEND file: concurrent lines never interleave.
        (&*file)
            .write_all(format!("c {flat}\n").as_bytes())
            .map_err(|e| record_err(&self.path, e))?;
        let due = match self.last_checkpoint.try_lock() {
            Ok(mut t) if t.elapsed() >= CHECKPOINT => {
                *t = Instant::now();
                true
            }
            _ => false,
        };
        if due {
            self.checkpoint(writer)?;
        }
        Ok(())
    }

    /// Every line before the current end names a chunk renamed into place; sync them all,
    /// then say so with a marker.
    pub(crate) fn checkpoint(&self, writer: &ZarrWriter) -> Result<(), IoError> {
        let file = match &self.sink {
            Sink::File(f) => f,
            Sink::Objects(b) => {
                writer.finish()?;
                return b.flush();
            }
        };
        let end = file
            .metadata()
            .map_err(|e| record_err(&self.path, e))?
            .len();
        writer.finish()?;
        file.sync_data().map_err(|e| record_err(&self.path, e))?;
        (&*file)
            .write_all(format!("s {end}\n").as_bytes())
            .map_err(|e| record_err(&self.path, e))
    }

    /// Say the output is finished.
    fn mark_complete(&self) -> Result<(), IoError> {
        match &self.sink {
            Sink::File(f) => (&*f)
                .write_all(b"e\n")
                .map_err(|e| record_err(&self.path, e)),
            Sink::Objects(b) => {
                b.flush()?;
                b.dir.put(&format!("{REMOTE_RECORD}/end"), b"e\n".to_vec())
            }
        }
    }
}

/// Flush every dirty page of the filesystem holding `dir` (chunks a killed process wrote
/// and nobody synced yet).
fn sync_filesystem(dir: &Path) -> std::io::Result<()> {
    let f = File::open(dir)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor stays open for the call.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    f.sync_all()?;
    Ok(())
}

/// Delete the temporary files a killed process left in `dir` (names `.KEY.tmp.PID.N`, see
/// `io::store`); never the current process's own.
fn remove_stale_temps(dir: &Path) {
    let own = format!(".tmp.{}.", std::process::id());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        match e.file_type() {
            Ok(t) if t.is_dir() => remove_stale_temps(&e.path()),
            Ok(_) if name.starts_with('.') && name.contains(".tmp.") && !name.contains(&own) => {
                let _ = std::fs::remove_file(e.path());
            }
            _ => {}
        }
    }
}

/// The chunks already finished for this plan, when `output` holds a record that matches.
/// `Ok(None)`: no record (nothing to resume). A record for another plan is an error that
/// says what changed.
pub(crate) fn load(
    output: &Path,
    shown: &str,
    fp: &Fingerprint,
) -> Result<Option<Vec<u64>>, Diagnostic> {
    let remote = ObjectDir::open(output)
        .map_err(|e| Diagnostic::error(codes::READ_FAILED, crate::diag::escape(&e.to_string())))?;
    if let Some(dir) = remote {
        let record = crate::io::remote_record(&dir).map_err(|e| {
            Diagnostic::error(
                codes::READ_FAILED,
                crate::diag::escape(&format!("cannot read the completion record: {e}")),
            )
        })?;
        let Some((header, done, _)) = record else {
            return Ok(None);
        };
        let header: Value = serde_json::from_slice(&header).map_err(|_| {
            Diagnostic::error(
                codes::RESUME_MISMATCH,
                format!("cannot resume {shown}: its completion record is damaged"),
            )
            .note(format!("record: {}", dir.url_of(REMOTE_RECORD)))
        })?;
        return check_header(&header, fp, output, shown).map(|()| Some(done));
    }
    let path = output.join(RESUME_RECORD);
    let mut text = Vec::new();
    match File::open(&path) {
        Ok(mut f) => f.read_to_end(&mut text).map_err(|e| {
            Diagnostic::error(
                codes::READ_FAILED,
                format!("cannot read the completion record {}: {e}", path.display()),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Diagnostic::error(
                codes::READ_FAILED,
                format!("cannot read the completion record {}: {e}", path.display()),
            ))
        }
    };
    let Some((header, done)) = parse(&text) else {
        return Err(Diagnostic::error(
            codes::RESUME_MISMATCH,
            format!("cannot resume {shown}: its completion record is damaged"),
        )
        .note(format!("record: {}", path.display()))
        .help("run without --resume (and with overwrite=true) to start the output over"));
    };
    check_header(&header, fp, output, shown)?;
    Ok(Some(done))
}

/// A record for another plan is an error that says what changed.
fn check_header(
    header: &Value,
    fp: &Fingerprint,
    output: &Path,
    shown: &str,
) -> Result<(), Diagnostic> {
    if let Some(why) = mismatch(header, fp, &metadata_hash(output)) {
        return Err(Diagnostic::error(
            codes::RESUME_MISMATCH,
            format!("cannot resume {shown}: {why}"),
        )
        .note("the chunks already written were computed by a different plan; reusing them would mix two results")
        .help("restore the script and inputs of the interrupted run to resume it, or run without --resume (and with overwrite=true) to start the output over"));
    }
    Ok(())
}

/// Whether the array `output`, updated in place by this script, already holds the
/// finished update: its completion record (the staged copy's, which took the array's place)
/// is this script's, with these arguments and this Tessera, says the output was finished,
/// and describes the array's metadata as it is now. (The inputs' metadata is not compared:
/// the updated array is one of them, and a whole-array update may have changed it.)
pub(crate) fn finished_in_place(output: &Path, fp: &Fingerprint) -> bool {
    let Ok(text) = std::fs::read(output.join(RESUME_RECORD)) else {
        return false;
    };
    let Some((header, _)) = parse(&text) else {
        return false;
    };
    let ended = text.split(|b| *b == b'\n').any(|l| l == b"e");
    let mut same = fp.clone();
    same.inputs = serde_json::from_value(header.get("inputs").cloned().unwrap_or(Value::Null))
        .unwrap_or_default();
    ended && mismatch(&header, &same, &metadata_hash(output)).is_none()
}

/// Chunks of one output already finished (skipped) and the record new ones go to.
#[derive(Default)]
pub(crate) struct Ledger {
    done: Vec<u64>,
    record: Option<Record>,
    /// Every chunk is done (`finished`).
    all: Option<u64>,
}

impl Ledger {
    /// A ledger of an output whose `tasks` chunks are all done already.
    pub(crate) fn finished(tasks: u64) -> Ledger {
        Ledger {
            all: Some(tasks),
            ..Ledger::default()
        }
    }

    pub(crate) fn is_done(&self, flat: u64) -> bool {
        self.all.is_some() || self.done.binary_search(&flat).is_ok()
    }

    pub(crate) fn skipped(&self) -> u64 {
        self.all.unwrap_or(self.done.len() as u64)
    }

    pub(crate) fn completed(&self, flat: u64, writer: &ZarrWriter) -> Result<(), IoError> {
        match &self.record {
            Some(r) => r.completed(flat, writer),
            None => Ok(()),
        }
    }

    /// Say in the record that every chunk of the output is written (a later run without
    /// `--resume` then has nothing to suggest resuming).
    pub(crate) fn mark_complete(&self) -> Result<(), IoError> {
        match &self.record {
            Some(r) => r.mark_complete(),
            None => Ok(()),
        }
    }

    /// Sync the output and mark everything recorded as durable.
    pub(crate) fn finish(&self, writer: &ZarrWriter) -> Result<(), IoError> {
        match &self.record {
            Some(r) => r.checkpoint(writer),
            None => writer.finish(),
        }
    }
}

/// How an output is opened for a run.
pub(crate) struct OpenRequest<'a> {
    pub output: &'a Path,
    pub shown: &'a str,
    /// Record finished chunks (scripts run from the command line).
    pub fingerprint: Option<&'a Fingerprint>,
    pub resume: bool,
}

/// Open (or create) an output and its ledger. With `resume` and a matching record, the
/// existing output is opened as it is and its finished chunks are skipped; otherwise
/// `create` makes the output as usual and any old record is replaced by a fresh one.
pub(crate) fn open(
    req: &OpenRequest,
    create: impl FnOnce() -> Result<ZarrWriter, IoError>,
    fail: impl Fn(IoError) -> Diagnostic,
) -> Result<(ZarrWriter, Ledger), Diagnostic> {
    if let (true, Some(fp)) = (req.resume, req.fingerprint) {
        if let Some(done) = load(req.output, req.shown, fp)? {
            let writer = ZarrWriter::open_existing(req.output).map_err(&fail)?;
            if writer.objects().is_none() {
                remove_stale_temps(req.output);
                // Chunks a killed process renamed into place may still sit in the page cache.
                sync_filesystem(req.output).map_err(|e| fail(record_err(req.output, e)))?;
            }
            let header = fp.header(&metadata_hash(req.output));
            let record = Record::start(req.output, &header, &done).map_err(&fail)?;
            return Ok((
                writer,
                Ledger {
                    done,
                    record: Some(record),
                    all: None,
                },
            ));
        }
    }
    let writer = create().map_err(&fail)?;
    let record_path = req.output.join(RESUME_RECORD);
    let record = match req.fingerprint {
        Some(fp) => {
            let header = fp.header(&metadata_hash(req.output));
            Some(Record::start(req.output, &header, &[]).map_err(&fail)?)
        }
        None if writer.objects().is_some() => {
            // Chunks are about to change without being recorded: an old record would lie.
            if let Some(d) = writer.objects() {
                for k in d.list(REMOTE_RECORD).map_err(&fail)? {
                    d.delete(&k).map_err(&fail)?;
                }
            }
            None
        }
        None => {
            // Chunks are about to change without being recorded: an old record would lie.
            match std::fs::remove_file(&record_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(record_err(req.output, e))),
            }
            None
        }
    };
    Ok((
        writer,
        Ledger {
            done: Vec::new(),
            record,
            all: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_lines_are_ignored_and_markers_bound_other_boots() {
        let h = json!({"tessera_resume": 1, "boot": boot_id()}).to_string();
        let text = format!("{h}\nc 3\nc 1\ns 9999\nc 7\nc 1");
        let (_, done) = parse(text.as_bytes()).unwrap();
        assert_eq!(done, vec![1, 3, 7]);
        let other = json!({"tessera_resume": 1, "boot": "another boot"}).to_string();
        let head = format!("{other}\nc 3\nc 1\n");
        let text = format!("{head}s {}\nc 7\n", head.len());
        let (_, done) = parse(text.as_bytes()).unwrap();
        assert_eq!(done, vec![1, 3]);
        assert!(parse(b"{\"tessera_resume\": 1").is_none());
    }

    #[test]
    fn mismatch_names_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let fp = Fingerprint::new("x", [("a.zarr", dir.path())]);
        let h = fp.header("out");
        assert_eq!(mismatch(&h, &fp, "out"), None);
        let other = Fingerprint::new("y", [("a.zarr", dir.path())]);
        assert!(mismatch(&h, &other, "out").unwrap().contains("script"));
        std::fs::write(dir.path().join("zarr.json"), "{}").unwrap();
        let changed = Fingerprint::new("x", [("a.zarr", dir.path())]);
        assert!(mismatch(&h, &changed, "out")
            .unwrap()
            .contains("\"a.zarr\""));
        assert!(mismatch(&h, &fp, "other").unwrap().contains("output"));
    }
}
