use quicproquo_protocol::errors::WireError;

use super::*;

#[test]
fn recording_from_many_threads_loses_nothing() {
    let ok = Response::Authenticate;
    let slot = FAMILIES.requests.kind_slot("logout");
    let count = |f: &Families| f.requests.counts[slot * f.requests.codes.len()].load(Relaxed);
    let before = count(&FAMILIES);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    request("logout", &ok, Instant::now());
                }
            });
        }
    });
    assert!(count(&FAMILIES) - before >= 4000);
}

#[test]
fn every_family_is_in_the_scrape() {
    let refused = Response::Error(WireError::bare(ErrorCode::QueueFull));
    request("enqueue", &refused, Instant::now());
    request(
        "enqueueGroup",
        &Response::Error(WireError::bare(ErrorCode::InvalidCommit)),
        Instant::now(),
    );
    store_batch(Duration::from_millis(2), 7);
    let text = encode(5);
    for line in [
        "# TYPE qpq_requests_total counter",
        "qpq_requests_total{kind=\"enqueue\",code=\"E032\"} ",
        "qpq_requests_total{kind=\"health\",code=\"ok\"} ",
        "# TYPE qpq_request_duration_seconds histogram",
        "qpq_request_duration_seconds_bucket{kind=\"enqueue\",le=\"+Inf\"} ",
        "qpq_request_duration_seconds_count{kind=\"fetchWait\"} ",
        "qpq_connections_open ",
        "qpq_fetch_waits_held 5",
        "qpq_store_queue_depth ",
        "qpq_store_commit_seconds_bucket{le=\"0.0025\"} ",
        "qpq_group_commits_rejected_total{reason=\"invalid_commit\"} ",
        "qpq_group_commits_rejected_total{reason=\"stale_commit\"} ",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    // Codes that never occurred are not written (no thousand zero series).
    assert!(!text.contains("code=\"E048\""), "{text}");
}

#[test]
fn histogram_buckets_are_cumulative_and_match_the_count() {
    let h = Histogram::new(&[0.001, 0.01]);
    h.observe(Duration::from_micros(500));
    h.observe(Duration::from_millis(5));
    h.observe(Duration::from_secs(1));
    let mut registry = Registry::default();
    registry.register(
        "h_seconds",
        "test",
        Box::leak(Box::new(h)) as &'static Histogram,
    );
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
    for line in [
        "h_seconds_bucket{le=\"0.001\"} 1",
        "h_seconds_bucket{le=\"0.01\"} 2",
        "h_seconds_bucket{le=\"+Inf\"} 3",
        "h_seconds_count 3",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
}
