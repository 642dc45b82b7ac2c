//! Phase spans: named timings of the session hot path (create, navigate, capture, release, and
//! the pool's background work), all under the tracing target `phase`.
//!
//! They cost nothing unless a subscriber enables that target. `RUST_LOG=warn,phase=info` with
//! `DRIFTSTACK_LOG_SPANS=1` logs one line per closed span with its duration (`time.busy` +
//! `time.idle`); `bench --perf` reads those lines to break a cycle down by phase.

/// A span for the phase `name` (a static dotted name such as `create.insert`), with optional
/// extra fields as `tracing` spells them (`route = %route`).
#[macro_export]
macro_rules! phase {
    ($name:literal $(, $($fields:tt)*)?) => {
        ::tracing::info_span!(target: "phase", "phase", phase = $name $(, $($fields)*)?)
    };
}
