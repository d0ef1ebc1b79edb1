//! Machine probes: peak resident memory and a STREAM-like memory bandwidth.

use rayon::prelude::*;
use std::time::Instant;

/// A `kB` field of /proc/self/status, in bytes (None off Linux).
fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub fn peak_rss() -> Option<u64> {
    status_kb("VmHWM:")
}

/// Current resident set size (VmRSS), in bytes.
pub fn current_rss() -> Option<u64> {
    status_kb("VmRSS:")
}

/// Reset VmHWM to the current RSS, so the next `peak_rss` is the peak of one phase. Returns
/// false where the kernel does not allow it (the peak is then the process-wide one).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Bandwidth figures in bytes per second.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Bandwidth {
    /// STREAM "Copy" (`c = a`), counted as STREAM does: 2 × bytes per element (read + write).
    pub copy: f64,
    /// Read-only (sum of a large array in 512-bit loads where the CPU has them): the traffic
    /// pattern of reading weights.
    pub read: f64,
    pub threads: usize,
    pub bytes: usize,
}

/// Best of `reps` runs over arrays of `bytes` each (use ≫ last-level cache), on the rayon
/// pool's threads (as candle's matmuls use).
pub fn bandwidth(bytes: usize, reps: usize) -> Bandwidth {
    let n = (bytes / 4).max(1 << 16);
    let threads = rayon::current_num_threads();
    let part = n.div_ceil(threads);
    let a: Vec<f32> = (0..n).into_par_iter().map(|i| (i % 1024) as f32).collect();
    let mut c = vec![0f32; n];
    let mut best_copy = f64::MAX;
    let mut best_read = f64::MAX;
    let mut sink = 0f32;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        c.par_chunks_mut(part)
            .zip(a.par_chunks(part))
            .for_each(|(d, s)| d.copy_from_slice(s));
        best_copy = best_copy.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        sink += a.par_chunks(part).map(read_sum).sum::<f32>();
        best_read = best_read.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box((sink, &c));
    let b = (n * 4) as f64;
    Bandwidth {
        copy: 2.0 * b / best_copy,
        read: b / best_read,
        threads,
        bytes: n * 4,
    }
}

/// `Σ s`, as fast as this CPU streams reads: the baseline build's loop uses 128-bit loads,
/// which on an AVX-512 machine read slower than the sampler's own kernels do.
fn read_sum(s: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present.
        return unsafe { read_sum_avx512(s) };
    }
    // 32 accumulators (4 vectors) so the adds are not latency bound.
    let mut acc = [0f32; 32];
    for ch in s.chunks_exact(32) {
        for (a, x) in acc.iter_mut().zip(ch) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>()
}

/// Eight 512-bit accumulators, two cache lines per step (the remainder is not read: the
/// probe needs the traffic, not the exact sum).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn read_sum_avx512(s: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); 8];
    for ch in s.chunks_exact(128) {
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm512_add_ps(*a, _mm512_loadu_ps(ch.as_ptr().add(16 * j)));
        }
    }
    let t = acc
        .iter()
        .fold(_mm512_setzero_ps(), |t, &a| _mm512_add_ps(t, a));
    _mm512_reduce_add_ps(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_and_peak_is_at_least_current() {
        let cur = current_rss().expect("VmRSS on Linux");
        let peak = peak_rss().expect("VmHWM on Linux");
        assert!(cur > 1 << 20, "rss {cur}");
        assert!(peak >= cur);
    }

    /// The read probe's sum is the array's (small integers: exact in f32 either way).
    #[test]
    fn read_probe_sums_what_it_reads() {
        let v: Vec<f32> = (0..4096).map(|i| (i % 5) as f32).collect();
        assert_eq!(read_sum(&v), v.iter().sum::<f32>());
        assert_eq!(read_sum(&v), 8190.0);
    }
}
