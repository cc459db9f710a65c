//! f32 square GEMM throughput: ferrograd's kernel against the `gemm` crate (0.19).
//!
//! Throughput is reported in "elements" that are floating-point operations (2 n^3 per
//! product), so criterion's elem/s reads as FLOP/s. Both run on two threads
//! (`FERROGRAD_NUM_THREADS` / `GEMM_BENCH_THREADS` override).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrograd_kernels::{gemm, threading};
use std::hint::black_box;

fn threads() -> usize {
    std::env::var("GEMM_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn data(n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let a = (0..n * n)
        .map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6)
        .collect();
    let b = (0..n * n)
        .map(|i| ((i * 5) % 11) as f32 * 0.1 - 0.5)
        .collect();
    (a, b, vec![0.0; n * n])
}

fn bench_square(cr: &mut Criterion) {
    let t = threads();
    threading::set_num_threads(t).expect("thread pool");
    let mut group = cr.benchmark_group("sgemm_square");
    for &n in &[64usize, 128, 256, 512, 1024] {
        let (a, b, mut c) = data(n);
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        if n >= 1024 {
            group.sample_size(20);
        }
        group.bench_with_input(BenchmarkId::new("ferrograd", n), &n, |bch, &n| {
            bch.iter(|| {
                gemm::gemm(false, false, n, n, n, 1.0f32, &a, n, &b, n, 0.0, &mut c, n).unwrap();
                black_box(&c);
            })
        });
        let par = if t > 1 {
            ::gemm::Parallelism::Rayon(t)
        } else {
            ::gemm::Parallelism::None
        };
        group.bench_with_input(BenchmarkId::new("gemm_crate", n), &n, |bch, &n| {
            bch.iter(|| {
                // SAFETY: a, b, c are n x n row-major (column stride 1, row stride n).
                unsafe {
                    ::gemm::gemm(
                        n,
                        n,
                        n,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        n as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        par,
                    )
                };
                black_box(&c);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_square);
criterion_main!(benches);
