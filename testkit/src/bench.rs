//! What every bench binary starts with: the runtime it measures on (two
//! workers, like the machine) and the machine's load, printed beside the
//! figures so a noisy run shows as one.

/// A multi-threaded tokio runtime with two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `/proc/loadavg` as it reads now (empty where there is none).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}
