//! The server's Prometheus metrics: every family is defined and recorded
//! here, and [`encode`] renders them in the Prometheus text format for
//! `GET /metrics` (served by [`http`], off unless `metrics_listen` is set).
//!
//! | family | type | labels |
//! | --- | --- | --- |
//! | `qpq_requests_total` | counter | `kind` (request kind), `code` (`ok` or `E032`…) |
//! | `qpq_request_duration_seconds` | histogram | `kind` |
//! | `qpq_connections_open` | gauge | |
//! | `qpq_fetch_waits_held` | gauge | |
//! | `qpq_store_queue_depth` | gauge | |
//! | `qpq_store_commit_seconds` | histogram | |
//! | `qpq_group_commits_rejected_total` | counter | `reason` |
//!
//! The families are process-wide statics: there is one server per process
//! (in-process tests that start several share them), and the SQLite writer
//! thread records its batches without a handle to pass around.
//!
//! Cost on the request path: every labelled family is a table of atomics
//! created once, with a slot for every label value known up front (request
//! kinds from `Request::KINDS`, codes from `ErrorCode::ALL`). Recording
//! finds the slot by a short scan of static tables and does relaxed
//! `fetch_add`s: no lock and no allocation. Checked by construction (nothing
//! here but atomics is touched when recording; prometheus-client's own
//! `Family` and `Histogram` take locks, so they are not used for labelled
//! or timed families). An allocation-counting test would need a global
//! allocator, which is `unsafe` code the workspace forbids. Only a scrape
//! allocates (the label sets and
//! the text it writes).

pub mod http;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::wire::{Request, Response};

/// Request-kind label of a request that could not be decoded.
pub const UNDECODABLE: &str = "undecodable";

/// Bounds of the request latency histogram, in seconds: sub-millisecond
/// reads up to a held `fetchWait` (which counts its wait).
const REQUEST_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bounds of one store batch (its jobs and the COMMIT with its fsync).
const COMMIT_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Why a group commit or proposal was refused: the refusals of
/// `enqueueGroup` that only a handshake message gets (E043 also refuses an
/// application message from the future, and is counted here too).
const COMMIT_REASONS: &[(ErrorCode, &str)] = &[
    (ErrorCode::StaleCommit, "stale_commit"),
    (ErrorCode::InvalidCommit, "invalid_commit"),
    (ErrorCode::FutureEpoch, "future_epoch"),
    (ErrorCode::GroupInfoMismatch, "group_info_mismatch"),
    (ErrorCode::EncryptedHandshake, "encrypted_handshake"),
];

struct Families {
    registry: Registry,
    requests: &'static Requests,
    latency: &'static PerKind,
    connections: Gauge,
    fetch_waits: Gauge,
    queue_depth: Gauge,
    commit: &'static Histogram,
    rejected: &'static Rejected,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    // Leaked once: the registry and the recorders share them for the
    // process's life.
    let requests: &'static Requests = Box::leak(Box::new(Requests::new()));
    let latency: &'static PerKind = Box::leak(Box::new(PerKind::new()));
    let commit: &'static Histogram = Box::leak(Box::new(Histogram::new(COMMIT_BOUNDS)));
    let rejected: &'static Rejected = Box::leak(Box::new(Rejected::new()));
    let (connections, fetch_waits, queue_depth) =
        (Gauge::default(), Gauge::default(), Gauge::default());
    let mut registry = Registry::with_prefix("qpq");
    registry.register(
        "requests",
        "Requests answered, by kind and by result (ok or the error code)",
        requests,
    );
    registry.register(
        "request_duration_seconds",
        "Time from a decoded request to its answer; a fetchWait counts its wait",
        latency,
    );
    registry.register(
        "connections_open",
        "QUIC connections past the handshake",
        connections.clone(),
    );
    registry.register(
        "fetch_waits_held",
        "fetchWait requests parked until mail arrives",
        fetch_waits.clone(),
    );
    registry.register(
        "store_queue_depth",
        "Store jobs waiting for the SQLite writer, sampled at each batch",
        queue_depth.clone(),
    );
    registry.register(
        "store_commit_seconds",
        "Time of one SQLite writer batch: its jobs and the COMMIT (fsync)",
        commit,
    );
    registry.register(
        "group_commits_rejected",
        "Group commits and proposals refused, by reason",
        rejected,
    );
    Families {
        registry,
        requests,
        latency,
        connections,
        fetch_waits,
        queue_depth,
        commit,
        rejected,
    }
});

/// Records one answered request: `kind` is `Request::kind` (or
/// [`UNDECODABLE`]), `started` when it was decoded.
pub fn request(kind: &'static str, response: &Response, started: Instant) {
    let f = &*FAMILIES;
    let kind_slot = f.requests.kind_slot(kind);
    let code = match response {
        Response::Error(e) => Some(e.code),
        _ => None,
    };
    f.requests.add(kind_slot, code);
    f.latency.observe(kind_slot, started.elapsed());
    if let (Some(code), "enqueueGroup") = (code, kind) {
        f.rejected.add(code);
    }
}

/// Records a request refused before it was decoded (cut off, too large,
/// too slow, undecodable) and returns its answer.
pub fn undecodable(e: WireError) -> Response {
    let refused = Response::Error(e);
    request(UNDECODABLE, &refused, Instant::now());
    refused
}

/// Counts an open connection until the guard is dropped.
pub fn connection_opened() -> ConnectionGuard {
    FAMILIES.connections.inc();
    ConnectionGuard(())
}

/// Held for a connection's life; see [`connection_opened`].
pub struct ConnectionGuard(());

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        FAMILIES.connections.dec();
    }
}

/// One SQLite writer batch: how long it took and how many jobs were still
/// queued behind it when it started.
pub fn store_batch(took: Duration, queued: usize) {
    let f = &*FAMILIES;
    f.commit.observe(took);
    f.queue_depth.set(i64::try_from(queued).unwrap_or(i64::MAX));
}

/// The metrics in the Prometheus text format (version 0.0.4), with the
/// gauges read at scrape time set first.
pub fn encode(fetch_waits: usize) -> String {
    let f = &*FAMILIES;
    f.fetch_waits
        .set(i64::try_from(fetch_waits).unwrap_or(i64::MAX));
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in
    // a metric's encode, and an empty scrape says so plainly.
    if prometheus_client::encoding::prometheus_text::encode(&mut out, &f.registry).is_err() {
        out.clear();
    }
    out
}

/// `qpq_requests_total`: one counter per (kind, code), all created up
/// front. Only `ok` and the codes that occurred are written.
#[derive(Debug)]
struct Requests {
    /// `Request::KINDS` and then [`UNDECODABLE`].
    kinds: Vec<&'static str>,
    /// `ok`, then `ErrorCode::ALL` as `E001`….
    codes: Vec<String>,
    counts: Box<[AtomicU64]>,
}

impl Requests {
    fn new() -> Self {
        let kinds: Vec<&'static str> = Request::KINDS
            .iter()
            .copied()
            .chain([UNDECODABLE])
            .collect();
        let codes: Vec<String> = std::iter::once("ok".to_string())
            .chain(ErrorCode::ALL.iter().map(|c| c.to_string()))
            .collect();
        let counts = (0..kinds.len() * codes.len())
            .map(|_| AtomicU64::new(0))
            .collect();
        Self {
            kinds,
            codes,
            counts,
        }
    }

    fn kind_slot(&self, kind: &str) -> usize {
        self.kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(self.kinds.len() - 1)
    }

    fn add(&self, kind_slot: usize, code: Option<ErrorCode>) {
        let code_slot = code
            .and_then(|c| ErrorCode::ALL.iter().position(|a| *a == c))
            .map_or(0, |i| i + 1);
        self.counts[kind_slot * self.codes.len() + code_slot].fetch_add(1, Relaxed);
    }
}

impl EncodeMetric for &'static Requests {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (k, kind) in self.kinds.iter().enumerate() {
            for (c, code) in self.codes.iter().enumerate() {
                let n = self.counts[k * self.codes.len() + c].load(Relaxed);
                if n == 0 && c != 0 {
                    continue;
                }
                let labels = [("kind", *kind), ("code", code.as_str())];
                encoder
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&n, None)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A histogram of atomics with fixed bounds (prometheus-client's locks).
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then +Inf; not cumulative (the encoder sums them).
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    fn write(&self, encoder: &mut MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.buckets.iter().map(|b| b.load(Relaxed)))
            .collect();
        // The count is the buckets' sum, so a scrape is consistent with itself.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

impl EncodeMetric for &'static Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.write(&mut encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// `qpq_request_duration_seconds`: one histogram per request kind, in the
/// order of [`Requests::kinds`].
#[derive(Debug)]
struct PerKind {
    kinds: Vec<(&'static str, Histogram)>,
}

impl PerKind {
    fn new() -> Self {
        Self {
            kinds: Request::KINDS
                .iter()
                .copied()
                .chain([UNDECODABLE])
                .map(|k| (k, Histogram::new(REQUEST_BOUNDS)))
                .collect(),
        }
    }

    fn observe(&self, kind_slot: usize, d: Duration) {
        if let Some((_, h)) = self.kinds.get(kind_slot) {
            h.observe(d);
        }
    }
}

impl EncodeMetric for &'static PerKind {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (kind, h) in &self.kinds {
            h.write(&mut encoder.encode_family(&[("kind", *kind)])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// `qpq_group_commits_rejected_total`, one counter per [`COMMIT_REASONS`].
#[derive(Debug)]
struct Rejected {
    counts: Box<[AtomicU64]>,
}

impl Rejected {
    fn new() -> Self {
        Self {
            counts: COMMIT_REASONS.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn add(&self, code: ErrorCode) {
        if let Some(i) = COMMIT_REASONS.iter().position(|(c, _)| *c == code) {
            self.counts[i].fetch_add(1, Relaxed);
        }
    }
}

impl EncodeMetric for &'static Rejected {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for ((_, reason), n) in COMMIT_REASONS.iter().zip(self.counts.iter()) {
            encoder
                .encode_family(&[("reason", *reason)])?
                .encode_counter::<NoLabelSet, u64, u64>(&n.load(Relaxed), None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

#[cfg(test)]
mod tests;
