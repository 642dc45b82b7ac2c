//! Percentiles of a sample (p50, p95, p99), as every benchmark reports them.

#[derive(Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
}

pub(crate) fn stats(mut xs: Vec<f64>) -> Stats {
    if xs.is_empty() {
        return Stats::default();
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| xs[((xs.len() - 1) as f64 * p).floor() as usize];
    Stats {
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
    }
}
