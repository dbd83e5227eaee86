//! What /proc says of a process (`self` or a pid): the tests and the benchmarks read it alike
//! (benches/common includes this file).

/// The first number of a `/proc/<pid>/status` field (`Threads:`, `VmRSS:` in kB, ...).
pub fn status_field(pid: impl std::fmt::Display, field: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// A `/proc/<pid>/status` field in kB, as MB (0 when it cannot be read).
pub fn status_mb(pid: impl std::fmt::Display, field: &str) -> f64 {
    status_field(pid, field).map_or(0.0, |kb| kb / 1024.0)
}
