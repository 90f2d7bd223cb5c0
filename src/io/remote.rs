//! Object stores and HTTP: arrays at `s3://bucket/path.zarr` (read and write) and at
//! `http(s)://host/path.zarr` (read only), through zarrs' object-store adapter
//! (`zarrs_object_store` over `object_store`).
//!
//! - Credentials and endpoint come from the standard AWS environment variables
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//!   `AWS_ENDPOINT_URL`, ...) and, for what they leave unset, from the profile files
//!   (`AWS_PROFILE`, default `default`, in `~/.aws/credentials` and `~/.aws/config`).
//! - One tokio runtime (two threads) drives every request; compute workers block on it.
//! - Throttling (429, 503 SlowDown), other 5xx, timeouts and dropped connections are
//!   retried by `object_store` with exponential backoff and jitter, a bounded number of
//!   times (`TESSERA_REMOTE_RETRIES`, default 6) within 60 s; 4xx answers (403, 404, bad
//!   credentials) are never retried. Every error names the URL and the status.
//! - Latency hiding: a reader fetches the chunks a region needs, and the next ones in
//!   storage order, concurrently (at most `in_flight()` requests, 128 unless
//!   `TESSERA_REMOTE_IN_FLIGHT` says otherwise) into a prefetch buffer bounded in bytes
//!   (`set_prefetch_budget`, a share of `--memory`). One client (one connection pool,
//!   kept alive) serves every request of a store; nothing asks for an object's size
//!   before fetching it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    AsyncListableStorageTraits, AsyncReadableStorageTraits, AsyncWritableStorageTraits, Bytes,
    ListableStorageTraits, MaybeBytes, MaybeBytesIterator, OffsetBytesIterator,
    ReadableStorageTraits, StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix,
    WritableStorageTraits,
};
use zarrs_object_store::object_store::{
    self, aws::AmazonS3Builder, http::HttpBuilder, path::Path as ObjPath, prefix::PrefixStore,
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use zarrs_object_store::AsyncObjectStore;

use super::{IoError, RemoteKind};

/// Requests in flight for prefetching, over all readers, unless `TESSERA_REMOTE_IN_FLIGHT`
/// says otherwise (1..=1024). 128 requests of 256 KiB chunks behind 50 ms of latency move
/// about 600 MB/s; with larger chunks the prefetch budget bounds them first.
const IN_FLIGHT: usize = 128;

/// The bound on prefetch requests in flight.
pub(crate) fn in_flight() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("TESSERA_REMOTE_IN_FLIGHT")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(IN_FLIGHT, |n| n.clamp(1, 1024))
    })
}

/// How many chunks past the last one read a reader fetches ahead: three quarters of the
/// requests in flight, so the chunks a task needs now always find a free request.
pub(crate) fn read_ahead() -> u64 {
    (in_flight() as u64 * 3 / 4).max(1)
}

/// What kind of remote location a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Http,
}

/// A remote array location, normalised: no `.` or `..` segments, no empty segments, no
/// trailing slash. Two spellings of one location normalise to the same text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub scheme: Scheme,
    /// `s3://bucket` or `https://host:port`.
    pub origin: String,
    /// The S3 bucket (empty for HTTP).
    pub bucket: String,
    /// Path segments below the origin (S3: below the bucket).
    pub segments: Vec<String>,
}

impl Location {
    /// The normalised URL.
    pub fn url(&self) -> String {
        let mut s = self.origin.clone();
        for seg in &self.segments {
            s.push('/');
            s.push_str(seg);
        }
        s
    }

    /// The key prefix of the array inside the bucket (S3) or below the host (HTTP).
    fn prefix(&self) -> String {
        self.segments.join("/")
    }
}

/// Does this script path name a remote location (`s3://`, `http://`, `https://`)?
pub fn is_url(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["s3://", "http://", "https://"]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// Parse and normalise a remote location; `Err` says what is wrong with it.
pub fn parse(url: &str) -> Result<Location, String> {
    let (scheme_name, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL"))?;
    let scheme = match scheme_name.to_ascii_lowercase().as_str() {
        "s3" => Scheme::S3,
        "http" | "https" => Scheme::Http,
        other => return Err(format!("unsupported URL scheme {other:?} in {url:?}")),
    };
    if rest.contains(['?', '#']) {
        return Err(format!(
            "{url:?} has a query or fragment; name the array by its path alone"
        ));
    }
    let mut parts = rest.split('/');
    let host = parts.next().unwrap_or("");
    if host.is_empty() {
        return Err(format!(
            "{url:?} names no {}",
            if scheme == Scheme::S3 {
                "bucket"
            } else {
                "host"
            }
        ));
    }
    let mut segments: Vec<String> = Vec::new();
    for seg in parts {
        match seg {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(format!("{url:?} climbs above its {}", origin_word(&scheme)));
                }
            }
            s => segments.push(s.to_string()),
        }
    }
    let (origin, bucket) = match scheme {
        Scheme::S3 => (format!("s3://{host}"), host.to_string()),
        Scheme::Http => (
            format!(
                "{}://{}",
                scheme_name.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            ),
            String::new(),
        ),
    };
    Ok(Location {
        scheme,
        origin,
        bucket,
        segments,
    })
}

fn origin_word(s: &Scheme) -> &'static str {
    match s {
        Scheme::S3 => "bucket",
        Scheme::Http => "host",
    }
}

/// The normalised spelling of a URL (the URL unchanged when it does not parse).
pub fn normalise(url: &str) -> String {
    parse(url)
        .map(|l| l.url())
        .unwrap_or_else(|_| url.to_string())
}

/// The runtime every remote request runs on. Two threads: they only drive sockets.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tessera-net")
            .enable_all()
            .build()
            .unwrap_or_else(|e| {
                // Without threads nothing remote can run; a current-thread runtime still can.
                eprintln!(
                    "warning: cannot start network threads ({e}); requests run one at a time"
                );
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|_| std::process::exit(70))
            })
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// Bytes the prefetch buffer may hold (finished, not yet consumed).
static PREFETCH_BUDGET: AtomicU64 = AtomicU64::new(256 << 20);
static PREFETCHED: AtomicU64 = AtomicU64::new(0);
static IN_FLIGHT_NOW: AtomicUsize = AtomicUsize::new(0);

/// Bound the prefetch buffer of every remote reader (part of the run's memory limit).
pub fn set_prefetch_budget(bytes: u64) {
    PREFETCH_BUDGET.store(bytes.max(1 << 20), Ordering::Relaxed);
}

fn retries() -> usize {
    std::env::var("TESSERA_REMOTE_RETRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(4),
            base: 2.0,
        },
        max_retries: retries(),
        retry_timeout: Duration::from_secs(60),
    }
}

fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60))
        .with_pool_max_idle_per_host(in_flight())
}

/// `key = value` lines of section `[section]` of an INI-style AWS profile file.
fn profile_section(text: &str, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    out
}

fn home_file(var: &str, rel: &str) -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var(var) {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(rel))
}

/// Credentials and settings of the active profile: `(credentials file, config file)`.
fn profile() -> (HashMap<String, String>, HashMap<String, String>) {
    let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string());
    let read = |p: Option<std::path::PathBuf>| p.and_then(|p| std::fs::read_to_string(p).ok());
    let creds = read(home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"))
        .map(|t| profile_section(&t, &name))
        .unwrap_or_default();
    let config_section = if name == "default" {
        name.clone()
    } else {
        format!("profile {name}")
    };
    let config = read(home_file("AWS_CONFIG_FILE", ".aws/config"))
        .map(|t| profile_section(&t, &config_section))
        .unwrap_or_default();
    (creds, config)
}

fn env_set(k: &str) -> bool {
    std::env::var(k).is_ok_and(|v| !v.is_empty())
}

/// The S3 store of `loc`'s bucket. Fails (without a request) when no credentials are
/// configured anywhere.
fn s3_store(loc: &Location) -> Result<Arc<dyn ObjectStore>, String> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(&loc.bucket);
    let (creds, config) = profile();
    let anonymous = std::env::var("AWS_SKIP_SIGNATURE").is_ok_and(|v| v == "true" || v == "1");
    if !env_set("AWS_ACCESS_KEY_ID") {
        match (
            creds.get("aws_access_key_id"),
            creds.get("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(t) = creds.get("aws_session_token") {
                    b = b.with_token(t);
                }
            }
            _ if anonymous
                || env_set("AWS_WEB_IDENTITY_TOKEN_FILE")
                || env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                || env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI") => {}
            _ => {
                let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
                return Err(format!(
                    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile [{name}] in ~/.aws/credentials (AWS_SKIP_SIGNATURE=true for a public bucket)"
                ));
            }
        }
    } else if !env_set("AWS_SECRET_ACCESS_KEY") {
        return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".to_string());
    }
    if !env_set("AWS_REGION") && !env_set("AWS_DEFAULT_REGION") {
        b = b.with_region(config.get("region").map_or("us-east-1", String::as_str));
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .or_else(|| config.get("endpoint_url").cloned());
    let allow_http = endpoint
        .as_deref()
        .is_some_and(|e| e.to_ascii_lowercase().starts_with("http://"));
    if let Some(e) = &endpoint {
        b = b.with_endpoint(e);
    }
    let store = b
        .with_allow_http(allow_http)
        .with_client_options(client_options(allow_http))
        .with_retry(retry_config())
        .build()
        .map_err(super::one_line)?;
    let prefix = loc.prefix();
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

fn http_store(loc: &Location) -> Result<Arc<dyn ObjectStore>, String> {
    let store = HttpBuilder::new()
        .with_url(loc.url())
        .with_client_options(client_options(true))
        .with_retry(retry_config())
        .build()
        .map_err(super::one_line)?;
    Ok(Arc::new(store))
}

/// GET one object into the prefetch buffer (its bytes count there until consumed).
async fn fetch(
    inner: &AsyncObjectStore<Arc<dyn ObjectStore>>,
    key: &StoreKey,
) -> Result<MaybeBytes, String> {
    let r = inner.get(key).await.map_err(|e| e.to_string());
    if let Ok(Some(b)) = &r {
        PREFETCHED.fetch_add(b.len() as u64, Ordering::Relaxed);
    }
    r
}

/// One slot of the prefetch buffer: the fetch, shared by the task that started it and the
/// reader that waits for it, and how many more reads it serves.
struct Slot {
    cell: Arc<tokio::sync::OnceCell<Result<MaybeBytes, String>>>,
    reads_left: u32,
}

/// A remote array store: sync zarrs traits over the async object store, plus prefetching.
pub(crate) struct RemoteStore {
    loc: Location,
    raw: Arc<dyn ObjectStore>,
    inner: Arc<AsyncObjectStore<Arc<dyn ObjectStore>>>,
    slots: Mutex<HashMap<String, Slot>>,
    permits: Arc<tokio::sync::Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn other(e: impl std::fmt::Display) -> StorageError {
    StorageError::Other(super::one_line(e))
}

impl RemoteStore {
    pub(crate) fn open(loc: &Location) -> Result<RemoteStore, String> {
        let raw = match loc.scheme {
            Scheme::S3 => s3_store(loc)?,
            Scheme::Http => http_store(loc)?,
        };
        Ok(RemoteStore {
            loc: loc.clone(),
            inner: Arc::new(AsyncObjectStore::new(raw.clone())),
            raw,
            slots: Mutex::new(HashMap::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(in_flight())),
        })
    }

    pub(crate) fn location(&self) -> &Location {
        &self.loc
    }

    /// Start fetching `keys` (each read `reads` times by the decoder) unless already
    /// buffered or in flight, while the prefetch buffer has room. `expect` bounds one
    /// object's size (its chunk's decoded bytes): that much is reserved in the buffer while
    /// a request is in flight, so requests in flight count against the budget too.
    pub(crate) fn prefetch(&self, keys: &[StoreKey], reads: u32, expect: u64) {
        let mut slots = lock(&self.slots);
        for key in keys {
            if slots.contains_key(key.as_str()) {
                continue;
            }
            let room = PREFETCHED.load(Ordering::Relaxed) < PREFETCH_BUDGET.load(Ordering::Relaxed);
            if !room || IN_FLIGHT_NOW.load(Ordering::Relaxed) >= in_flight() {
                break;
            }
            let cell = Arc::new(tokio::sync::OnceCell::new());
            slots.insert(
                key.as_str().to_string(),
                Slot {
                    cell: cell.clone(),
                    reads_left: reads,
                },
            );
            let inner = self.inner.clone();
            let permits = self.permits.clone();
            let key = key.clone();
            IN_FLIGHT_NOW.fetch_add(1, Ordering::Relaxed);
            PREFETCHED.fetch_add(expect, Ordering::Relaxed);
            runtime().spawn(async move {
                let _permit = permits.acquire_owned().await;
                cell.get_or_init(|| fetch(&inner, &key)).await;
                PREFETCHED.fetch_sub(expect, Ordering::Relaxed);
                IN_FLIGHT_NOW.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    /// Forget buffered chunks nobody will read (a reader that stops early).
    pub(crate) fn drop_prefetched(&self) {
        for (_, s) in lock(&self.slots).drain() {
            if let Some(Ok(Some(b))) = s.cell.get() {
                PREFETCHED.fetch_sub(b.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// A whole object, from the prefetch buffer when it is there.
    fn get_buffered(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        let cell = {
            let mut slots = lock(&self.slots);
            match slots.get_mut(key.as_str()) {
                Some(s) => {
                    s.reads_left = s.reads_left.saturating_sub(1);
                    let cell = s.cell.clone();
                    if s.reads_left == 0 {
                        slots.remove(key.as_str());
                    }
                    Some((cell, slots.contains_key(key.as_str())))
                }
                None => None,
            }
        };
        let Some((cell, still_buffered)) = cell else {
            return block_on(self.inner.get(key));
        };
        let r = block_on(cell.get_or_init(|| fetch(&self.inner, key))).clone();
        if !still_buffered {
            if let Ok(Some(b)) = &r {
                PREFETCHED.fetch_sub(b.len() as u64, Ordering::Relaxed);
            }
        }
        r.map_err(StorageError::Other)
    }

    /// Store `value` at `key` only if nothing is there yet (a conditional PUT,
    /// `If-None-Match: *`). `Ok(false)`: the key exists.
    pub(crate) fn put_if_absent(&self, key: &str, value: Vec<u8>) -> Result<bool, String> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match block_on(
            self.raw
                .put_opts(&ObjPath::from(key), PutPayload::from(value), opts),
        ) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(super::one_line(e)),
        }
    }

    /// A whole object at `key` (below the array), `None` when absent.
    pub(crate) fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        match block_on(async {
            let r = self.raw.get(&ObjPath::from(key)).await?;
            r.bytes().await
        }) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(super::one_line(e)),
        }
    }

    pub(crate) fn put_object(&self, key: &str, value: Vec<u8>) -> Result<(), String> {
        block_on(self.raw.put(&ObjPath::from(key), PutPayload::from(value)))
            .map(|_| ())
            .map_err(super::one_line)
    }

    pub(crate) fn delete_object(&self, key: &str) -> Result<(), String> {
        match block_on(self.raw.delete(&ObjPath::from(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(super::one_line(e)),
        }
    }

    /// Keys (relative to the array) below `prefix`, sorted.
    pub(crate) fn list_objects(&self, prefix: &str) -> Result<Vec<String>, String> {
        use futures::TryStreamExt;
        let p = ObjPath::from(prefix);
        let metas: Vec<object_store::ObjectMeta> =
            block_on(self.raw.list(Some(&p)).try_collect()).map_err(super::one_line)?;
        let mut keys: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
        keys.sort();
        Ok(keys)
    }

    /// Does the bucket (or host) answer at all? `Err` names the URL and what went wrong.
    pub(crate) fn probe(&self) -> Result<(), String> {
        use futures::StreamExt;
        match self.loc.scheme {
            Scheme::S3 => {
                let mut s = self.raw.list(None);
                match block_on(s.next()) {
                    None | Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(super::one_line(e)),
                }
            }
            Scheme::Http => Ok(()),
        }
    }
}

impl ReadableStorageTraits for RemoteStore {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        self.get_buffered(key)
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let r = block_on(async {
            match self.inner.get_partial_many(key, byte_ranges).await? {
                None => Ok::<_, StorageError>(None),
                Some(stream) => {
                    use futures::TryStreamExt;
                    let parts: Vec<Bytes> = stream.try_collect().await?;
                    Ok(Some(parts))
                }
            }
        })?;
        Ok(r.and_then(|parts| {
            let it: MaybeBytesIterator<'a> = Some(Box::new(parts.into_iter().map(Ok)));
            it
        }))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        block_on(self.inner.size_key(key))
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl WritableStorageTraits for RemoteStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        block_on(self.inner.set(key, value))
    }

    fn set_partial_many(
        &self,
        _key: &StoreKey,
        _offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        Err(other("an object store cannot update part of an object"))
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        block_on(self.inner.erase(key))
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        block_on(self.inner.erase_prefix(prefix))
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

impl ListableStorageTraits for RemoteStore {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        block_on(self.inner.list())
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        block_on(self.inner.list_prefix(prefix))
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        block_on(self.inner.list_dir(prefix))
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        block_on(self.inner.size_prefix(prefix))
    }
}

/// The remote location `path` names, if it names one (`Err` for a malformed URL).
pub(crate) fn location_of(path: &std::path::Path) -> Result<Option<Location>, IoError> {
    let Some(text) = path.to_str() else {
        return Ok(None);
    };
    if !is_url(text) {
        return Ok(None);
    }
    parse(text).map(Some).map_err(|detail| IoError::Remote {
        url: text.to_string(),
        kind: RemoteKind::BadUrl,
        detail,
    })
}

/// An S3 error body (`<Error><Code>C</Code><Message>M</Message>...</Error>`) in an error
/// message, shortened to `C: M`.
pub(crate) fn tidy(detail: String) -> String {
    let Some(start) = detail.find("<?xml").or_else(|| detail.find("<Error>")) else {
        return detail;
    };
    let tag = |t: &str| -> Option<String> {
        let open = format!("<{t}>");
        let a = detail[start..].find(&open)? + start + open.len();
        let b = detail[a..].find(&format!("</{t}>"))? + a;
        Some(detail[a..b].to_string())
    };
    let summary = match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => return detail,
    };
    let end = detail[start..]
        .find("</Error>")
        .map_or(detail.len(), |e| start + e + "</Error>".len());
    format!("{}{summary}{}", &detail[..start], &detail[end..])
}

pub(crate) fn remote_err(loc: &Location, detail: impl std::fmt::Display) -> IoError {
    let detail = tidy(super::one_line(detail));
    IoError::Remote {
        url: loc.url(),
        kind: RemoteKind::of(&detail),
        detail,
    }
}

/// Open the store of the array at `loc` and make sure an array is there: a missing
/// bucket, a missing key, refused credentials and an unreachable endpoint each get their
/// own error before anything else happens.
pub(crate) fn open_array_store(loc: &Location) -> Result<RemoteStore, IoError> {
    let store = RemoteStore::open(loc).map_err(|e| remote_err(loc, e))?;
    let v3 = store
        .get_object("zarr.json")
        .map_err(|e| remote_err(loc, e))?;
    if v3.is_some() {
        return Ok(store);
    }
    if store
        .get_object(".zarray")
        .map_err(|e| remote_err(loc, e))?
        .is_some()
    {
        return Ok(store);
    }
    store.probe().map_err(|e| remote_err(loc, e))?;
    Err(IoError::Remote {
        url: loc.url(),
        kind: RemoteKind::NotFound,
        detail: "no Zarr array here (no zarr.json or .zarray)".to_string(),
    })
}

pub(crate) fn open_failed(loc: &Location, e: zarrs::array::ArrayCreateError) -> IoError {
    IoError::NotZarr {
        path: loc.url(),
        detail: super::one_line(e),
    }
}

/// Small objects beside a remote array's chunks (its completion record, its lock), by key
/// relative to the array.
#[derive(Clone)]
pub struct ObjectDir(pub(crate) Arc<RemoteStore>);

impl ObjectDir {
    /// The objects under the remote location `path` names, or `None` for a local path.
    /// Opening sends no request.
    pub fn open(path: &std::path::Path) -> Result<Option<ObjectDir>, IoError> {
        match location_of(path)? {
            Some(loc) => Ok(Some(ObjectDir(Arc::new(
                RemoteStore::open(&loc).map_err(|e| remote_err(&loc, e))?,
            )))),
            None => Ok(None),
        }
    }

    /// The URL of the object at `key`.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.0.location().url())
    }

    fn err(&self, key: &str, e: String) -> IoError {
        let e = tidy(e);
        IoError::Remote {
            url: self.url_of(key),
            kind: RemoteKind::of(&e),
            detail: e,
        }
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, IoError> {
        self.0.get_object(key).map_err(|e| self.err(key, e))
    }

    /// One PUT: the object is there whole, or not at all.
    pub fn put(&self, key: &str, value: Vec<u8>) -> Result<(), IoError> {
        self.0.put_object(key, value).map_err(|e| self.err(key, e))
    }

    /// A conditional PUT (`If-None-Match: *`); `Ok(false)` when `key` already exists.
    pub fn put_if_absent(&self, key: &str, value: Vec<u8>) -> Result<bool, IoError> {
        self.0
            .put_if_absent(key, value)
            .map_err(|e| self.err(key, e))
    }

    pub fn delete(&self, key: &str) -> Result<(), IoError> {
        self.0.delete_object(key).map_err(|e| self.err(key, e))
    }

    /// Keys below `prefix` (relative to the array), sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, IoError> {
        self.0.list_objects(prefix).map_err(|e| self.err(prefix, e))
    }
}

impl Drop for RemoteStore {
    fn drop(&mut self) {
        self.drop_prefetched();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_normalise() {
        assert_eq!(normalise("s3://b/x//y/./z.zarr/"), "s3://b/x/y/z.zarr");
        assert_eq!(normalise("s3://b/x/../z.zarr"), "s3://b/z.zarr");
        assert_eq!(
            normalise("HTTPS://Host:8080/a.zarr"),
            "https://host:8080/a.zarr"
        );
        assert!(parse("s3:///x.zarr").is_err());
        assert!(parse("s3://b/../..").is_err());
        assert!(parse("ftp://h/x").is_err());
        assert!(is_url("s3://b/x") && is_url("http://h/x") && !is_url("s3.zarr"));
    }

    #[test]
    fn s3_error_bodies_are_shortened() {
        let d = "GET http://h/b 404 Not Found: <?xml version=\"1.0\"?> <Error><Code>NoSuchBucket</Code><Message>gone</Message><RequestId>x</RequestId></Error>";
        assert_eq!(
            tidy(d.into()),
            "GET http://h/b 404 Not Found: NoSuchBucket: gone"
        );
        assert_eq!(tidy("plain".into()), "plain");
    }

    #[test]
    fn profile_sections() {
        let t = "[default]\naws_access_key_id = A\n[profile p]\nregion=eu-west-1\n# c\n";
        assert_eq!(profile_section(t, "default")["aws_access_key_id"], "A");
        assert_eq!(profile_section(t, "profile p")["region"], "eu-west-1");
        assert!(profile_section(t, "x").is_empty());
    }
}
