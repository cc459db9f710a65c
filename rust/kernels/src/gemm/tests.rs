//! Tests of the GEMM kernels against a naive f64 reference, for every SIMD level.

use super::*;
use crate::simd::Level;

/// Small deterministic generator (values in [-1, 1)).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
    fn vec<T: Float>(&mut self, len: usize) -> Vec<T> {
        (0..len).map(|_| T::from_f64(self.next())).collect()
    }
}

fn levels() -> Vec<Level> {
    [Level::Scalar, Level::Avx2Fma, Level::Avx512]
        .into_iter()
        .filter(|&l| l <= simd::level())
        .collect()
}

#[derive(Clone, Copy, Debug)]
struct Case {
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    /// Extra row-stride padding of A, B, C.
    pad: (usize, usize, usize),
    alpha: f64,
    beta: f64,
}

impl Case {
    fn new(m: usize, n: usize, k: usize) -> Case {
        Case {
            ta: false,
            tb: false,
            m,
            n,
            k,
            pad: (0, 0, 0),
            alpha: 1.0,
            beta: 0.0,
        }
    }
}

struct Data<T> {
    a: Vec<T>,
    lda: usize,
    b: Vec<T>,
    ldb: usize,
    c: Vec<T>,
    ldc: usize,
}

fn make<T: Float>(cs: &Case, seed: u64) -> Data<T> {
    let mut rng = Rng(seed);
    let (ar, ac) = if cs.ta { (cs.k, cs.m) } else { (cs.m, cs.k) };
    let (br, bc) = if cs.tb { (cs.n, cs.k) } else { (cs.k, cs.n) };
    let (lda, ldb, ldc) = (ac + cs.pad.0, bc + cs.pad.1, cs.n + cs.pad.2);
    let a = rng.vec(ar * lda);
    let b = rng.vec(br * ldb);
    let mut c: Vec<T> = rng.vec(cs.m * ldc);
    if cs.beta == 0.0 {
        // beta == 0 must ignore NaN in C.
        for (i, x) in c.iter_mut().enumerate() {
            if i % 3 == 0 {
                *x = T::NAN;
            }
        }
    }
    Data {
        a,
        lda,
        b,
        ldb,
        c,
        ldc,
    }
}

/// Checks `got` against the naive f64 product; padding columns of C must be untouched.
fn verify<T: Float>(cs: &Case, d: &Data<T>, got: &[T], what: &str) {
    let eps = if T::IS_F64 {
        f64::EPSILON
    } else {
        f32::EPSILON as f64
    };
    let at = |i: usize, p: usize| -> f64 {
        if cs.ta {
            d.a[p * d.lda + i]
        } else {
            d.a[i * d.lda + p]
        }
        .to_f64()
    };
    let bt = |p: usize, j: usize| -> f64 {
        if cs.tb {
            d.b[j * d.ldb + p]
        } else {
            d.b[p * d.ldb + j]
        }
        .to_f64()
    };
    for i in 0..cs.m {
        for j in 0..d.ldc {
            let idx = i * d.ldc + j;
            let old = d.c[idx].to_f64();
            let g = got[idx].to_f64();
            if j >= cs.n {
                assert!(
                    g.to_bits() == old.to_bits() || (g.is_nan() && old.is_nan()),
                    "{what} {cs:?}: padding C[{i},{j}] changed"
                );
                continue;
            }
            let (mut s, mut mag) = (0.0f64, 0.0f64);
            for p in 0..cs.k {
                s += at(i, p) * bt(p, j);
                mag += (at(i, p) * bt(p, j)).abs();
            }
            let cterm = if cs.beta == 0.0 { 0.0 } else { cs.beta * old };
            let want = cs.alpha * s + cterm;
            let tol =
                4.0 * (cs.k as f64 + 4.0) * eps * (cs.alpha.abs() * mag + cterm.abs()) + 1e-30;
            assert!(
                (g - want).abs() <= tol,
                "{what} {cs:?}: C[{i},{j}] = {g}, expected {want} (tol {tol})"
            );
        }
    }
}

fn check_with<T: Float>(level: Level, mode: Mode, cs: &Case) {
    let d = make::<T>(cs, (cs.m * 31 + cs.n * 17 + cs.k) as u64 + 7);
    let mut c = d.c.clone();
    gemm_with_level(
        level,
        mode,
        cs.ta,
        cs.tb,
        cs.m,
        cs.n,
        cs.k,
        T::from_f64(cs.alpha),
        &d.a,
        d.lda,
        &d.b,
        d.ldb,
        T::from_f64(cs.beta),
        &mut c,
        d.ldc,
    )
    .unwrap();
    verify(cs, &d, &c, &format!("{level:?} {mode:?}"));
}

fn check_all_levels(cs: &Case) {
    for level in levels() {
        check_with::<f32>(level, Mode::Inline, cs);
        check_with::<f64>(level, Mode::Inline, cs);
    }
}

#[test]
fn gemm_small_shapes_all_transposes() {
    let dims = [0usize, 1, 2, 3, 5, 7, 13];
    for &m in &dims {
        for &n in &dims {
            for &k in &[0usize, 1, 4, 11] {
                for ta in [false, true] {
                    for tb in [false, true] {
                        let cs = Case {
                            ta,
                            tb,
                            alpha: 1.5,
                            beta: if (m + n) % 2 == 0 { 0.0 } else { -0.5 },
                            ..Case::new(m, n, k)
                        };
                        check_all_levels(&cs);
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_tile_edges() {
    // Just below / at / above every MR and NR of every kernel and their multiples.
    let ms = [3usize, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 27, 28, 29, 41, 43];
    let ns = [7usize, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65];
    for (x, &m) in ms.iter().enumerate() {
        for (y, &n) in ns.iter().enumerate() {
            let cs = Case {
                ta: x % 2 == 1,
                tb: y % 2 == 1,
                pad: (x % 3, y % 2, (x + y) % 3),
                alpha: 1.0,
                beta: if (x + y) % 3 == 0 { 0.0 } else { 1.0 },
                ..Case::new(m, n, 3 + x + y)
            };
            check_all_levels(&cs);
        }
    }
}

#[test]
fn gemm_block_edges() {
    // Around KC (256, 512), MC (96, 128, 144, 168, 336) and NC (2048, 4096).
    let cases = [
        (5, 9, 255),
        (5, 9, 256),
        (5, 9, 257),
        (17, 33, 511),
        (17, 33, 513),
        (95, 17, 20),
        (97, 17, 20),
        (127, 9, 3),
        (129, 9, 3),
        (143, 9, 3),
        (145, 9, 3),
        (167, 40, 30),
        (169, 40, 30),
        (335, 33, 7),
        (336, 33, 7),
        (337, 33, 7),
        (673, 20, 5),
        (3, 2047, 5),
        (3, 2049, 5),
        (3, 4095, 5),
        (2, 4097, 3),
        (2, 8193, 2),
        (101, 103, 263),
    ];
    for (x, &(m, n, k)) in cases.iter().enumerate() {
        let cs = Case {
            ta: x % 2 == 0,
            tb: x % 3 == 0,
            pad: (1, 2, 3),
            alpha: -0.75,
            beta: if x % 2 == 0 { 0.25 } else { 0.0 },
            ..Case::new(m, n, k)
        };
        check_all_levels(&cs);
    }
}

#[test]
fn gemm_alpha_beta() {
    for &(alpha, beta) in &[
        (1.0, 0.0),
        (1.0, 1.0),
        (2.0, -1.0),
        (0.0, 0.5),
        (0.0, 0.0),
        (-1.0, 3.0),
    ] {
        for ta in [false, true] {
            for tb in [false, true] {
                let cs = Case {
                    ta,
                    tb,
                    alpha,
                    beta,
                    pad: (2, 1, 5),
                    ..Case::new(37, 45, 29)
                };
                check_all_levels(&cs);
            }
        }
    }
}

#[test]
fn gemm_alpha_zero_ignores_nan_in_a() {
    let a = [f32::NAN; 4];
    let b = [1.0f32; 4];
    let mut c = [1.0f32, 2.0, 3.0, 4.0];
    gemm(false, false, 2, 2, 2, 0.0, &a, 2, &b, 2, 2.0, &mut c, 2).unwrap();
    assert_eq!(c, [2.0, 4.0, 6.0, 8.0]);
    gemm(false, false, 2, 2, 0, 1.0, &[], 0, &[], 2, 0.0, &mut c, 2).unwrap();
    assert_eq!(c, [0.0; 4]);
}

#[test]
fn gemm_public_entry_large() {
    // Through the public API (pool, SIMD level of this CPU), all transposes.
    for ta in [false, true] {
        for tb in [false, true] {
            let cs = Case {
                ta,
                tb,
                alpha: 1.0,
                beta: 0.5,
                pad: (3, 0, 1),
                ..Case::new(301, 277, 300)
            };
            let d = make::<f32>(&cs, 99);
            let mut c = d.c.clone();
            gemm(
                ta, tb, cs.m, cs.n, cs.k, 1.0f32, &d.a, d.lda, &d.b, d.ldb, 0.5, &mut c, d.ldc,
            )
            .unwrap();
            verify(&cs, &d, &c, "public");
        }
    }
}

#[test]
fn gemm_forced_threads_grids() {
    // Every grid the task splitter can pick, on small problems, against the reference.
    for threads in [2usize, 3] {
        crate::threading::with_threads(threads, || {
            for &(m, n, k) in &[
                (1, 1, 1),
                (5, 70, 9),
                (64, 64, 64),
                (100, 3, 20),
                (200, 130, 300),
                (15, 700, 17),
            ] {
                for level in levels() {
                    let cs = Case {
                        ta: m % 2 == 0,
                        tb: n % 2 == 0,
                        beta: 1.0,
                        ..Case::new(m, n, k)
                    };
                    check_with::<f32>(level, Mode::Forced(threads), &cs);
                    check_with::<f64>(level, Mode::Forced(threads), &cs);
                }
            }
        });
    }
}

fn run_case<T: Float>(level: Level, mode: Mode, cs: &Case, d: &Data<T>) -> Vec<T> {
    let mut c = d.c.clone();
    gemm_with_level(
        level,
        mode,
        cs.ta,
        cs.tb,
        cs.m,
        cs.n,
        cs.k,
        T::from_f64(cs.alpha),
        &d.a,
        d.lda,
        &d.b,
        d.ldb,
        T::from_f64(cs.beta),
        &mut c,
        d.ldc,
    )
    .unwrap();
    c
}

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

#[test]
fn gemm_deterministic_across_thread_counts() {
    let cases = [
        Case {
            beta: 0.5,
            ..Case::new(517, 611, 700)
        },
        Case {
            ta: true,
            tb: true,
            ..Case::new(33, 1500, 530)
        },
        Case {
            tb: true,
            ..Case::new(700, 40, 300)
        },
    ];
    for level in levels() {
        for cs in &cases {
            let d32 = make::<f32>(cs, 5);
            let d64 = make::<f64>(cs, 6);
            let r32 = bits(&run_case(level, Mode::Inline, cs, &d32));
            let r64 = bits(&run_case(level, Mode::Inline, cs, &d64));
            for threads in [1usize, 2, 3, 4] {
                for mode in [Mode::Auto, Mode::Forced(threads)] {
                    let (g32, g64) = crate::threading::with_threads(threads, || {
                        (
                            bits(&run_case(level, mode, cs, &d32)),
                            bits(&run_case(level, mode, cs, &d64)),
                        )
                    });
                    assert!(g32 == r32, "{level:?} f32 {cs:?}: {threads} threads differ");
                    assert!(g64 == r64, "{level:?} f64 {cs:?}: {threads} threads differ");
                }
            }
        }
    }
}

#[test]
fn gemm_batched_broadcast_and_parallel() {
    let (batch, m, n, k) = (7usize, 19usize, 23usize, 17usize);
    for (sa, sb) in [(true, true), (false, true), (true, false), (false, false)] {
        for (ta, tb) in [(false, false), (true, true)] {
            let mut rng = Rng(42);
            let (lda, ldb, ldc) = (
                if ta { m } else { k } + 1,
                if tb { k } else { n } + 2,
                n + 3,
            );
            let len_a = if ta { k } else { m } * lda;
            let len_b = if tb { n } else { k } * ldb;
            let stride_a = if sa { 0 } else { len_a + 5 };
            let stride_b = if sb { 0 } else { len_b };
            let stride_c = m * ldc + 1;
            let a: Vec<f32> = rng.vec(stride_a * (batch - 1) + len_a);
            let b: Vec<f32> = rng.vec(stride_b * (batch - 1) + len_b);
            let c0: Vec<f32> = rng.vec(stride_c * batch);
            let mut c = c0.clone();
            gemm_batched(
                batch, ta, tb, m, n, k, 0.5, &a, lda, stride_a, &b, ldb, stride_b, 2.0, &mut c,
                ldc, stride_c,
            )
            .unwrap();
            for i in 0..batch {
                let mut want = c0[i * stride_c..][..m * ldc].to_vec();
                gemm(
                    ta,
                    tb,
                    m,
                    n,
                    k,
                    0.5,
                    &a[i * stride_a..],
                    lda,
                    &b[i * stride_b..],
                    ldb,
                    2.0,
                    &mut want,
                    ldc,
                )
                .unwrap();
                assert_eq!(
                    bits(&c[i * stride_c..][..m * ldc]),
                    bits(&want),
                    "batch {i}"
                );
                // The gap between matrices is untouched.
                assert_eq!(
                    c[i * stride_c + m * ldc].to_bits(),
                    c0[i * stride_c + m * ldc].to_bits()
                );
            }
        }
    }
    // Many small matrices take the batch-parallel path; compare with one-by-one.
    let (batch, m) = (64usize, 48usize);
    let mut rng = Rng(3);
    let a: Vec<f64> = rng.vec(batch * m * m);
    let b: Vec<f64> = rng.vec(m * m);
    let mut c = vec![0.0f64; batch * m * m];
    gemm_batched(
        batch,
        false,
        true,
        m,
        m,
        m,
        1.0,
        &a,
        m,
        m * m,
        &b,
        m,
        0,
        0.0,
        &mut c,
        m,
        m * m,
    )
    .unwrap();
    for i in 0..batch {
        let mut want = vec![0.0f64; m * m];
        gemm(
            false,
            true,
            m,
            m,
            m,
            1.0,
            &a[i * m * m..],
            m,
            &b,
            m,
            0.0,
            &mut want,
            m,
        )
        .unwrap();
        assert_eq!(bits(&c[i * m * m..][..m * m]), bits(&want));
    }
}

#[test]
fn gemm_errors() {
    let a = vec![0.0f32; 12];
    let b = vec![0.0f32; 12];
    let mut c = vec![0.0f32; 12];
    // Fits: 3x4 * 4x3.
    assert!(gemm(false, false, 3, 3, 4, 1.0, &a, 4, &b, 3, 0.0, &mut c, 3).is_ok());
    // Bad leading dimensions.
    assert!(gemm(false, false, 3, 3, 4, 1.0, &a, 3, &b, 3, 0.0, &mut c, 3).is_err());
    assert!(gemm(true, false, 3, 3, 4, 1.0, &a, 2, &b, 3, 0.0, &mut c, 3).is_err());
    assert!(gemm(false, false, 3, 3, 4, 1.0, &a, 4, &b, 2, 0.0, &mut c, 3).is_err());
    assert!(gemm(false, true, 3, 3, 4, 1.0, &a, 4, &b, 3, 0.0, &mut c, 3).is_err());
    assert!(gemm(false, false, 3, 3, 4, 1.0, &a, 4, &b, 3, 0.0, &mut c, 2).is_err());
    // Short buffers.
    assert!(gemm(
        false,
        false,
        3,
        3,
        4,
        1.0,
        &a[..11],
        4,
        &b,
        3,
        0.0,
        &mut c,
        3
    )
    .is_err());
    assert!(gemm(
        false,
        false,
        3,
        3,
        4,
        1.0,
        &a,
        4,
        &b[..11],
        3,
        0.0,
        &mut c,
        3
    )
    .is_err());
    assert!(gemm(
        false,
        false,
        3,
        3,
        4,
        1.0,
        &a,
        4,
        &b,
        3,
        0.0,
        &mut c[..8],
        3
    )
    .is_err());
    assert!(gemm(false, false, 3, 3, 4, 1.0, &a, 5, &b, 3, 0.0, &mut c, 3).is_err());
    // Overflow.
    assert!(gemm(
        false,
        false,
        usize::MAX,
        2,
        2,
        1.0,
        &a,
        usize::MAX,
        &b,
        2,
        0.0,
        &mut c,
        2
    )
    .is_err());
    assert!(gemm(
        false,
        false,
        2,
        2,
        2,
        1.0,
        &a,
        2,
        &b,
        2,
        0.0,
        &mut c,
        usize::MAX
    )
    .is_err());
    // Empty problems are fine with empty buffers.
    assert!(gemm::<f64>(
        false,
        false,
        0,
        5,
        3,
        1.0,
        &[],
        3,
        &[0.0; 15],
        5,
        0.0,
        &mut [],
        5
    )
    .is_ok());
    assert!(gemm::<f64>(
        false,
        false,
        4,
        0,
        3,
        1.0,
        &[0.0; 12],
        3,
        &[],
        0,
        0.0,
        &mut [],
        0
    )
    .is_ok());
    // Batched: overlap, short, overflow, broadcast ok.
    let mut c = vec![0.0f32; 24];
    assert!(
        gemm_batched(2, false, false, 3, 3, 4, 1.0, &a, 4, 0, &b, 3, 0, 0.0, &mut c, 3, 8).is_err()
    );
    assert!(
        gemm_batched(2, false, false, 3, 3, 4, 1.0, &a, 4, 0, &b, 3, 0, 0.0, &mut c, 3, 9).is_ok()
    );
    assert!(
        gemm_batched(2, false, false, 3, 3, 4, 1.0, &a, 4, 1, &b, 3, 0, 0.0, &mut c, 3, 9).is_err()
    );
    assert!(
        gemm_batched(3, false, false, 3, 3, 4, 1.0, &a, 4, 0, &b, 3, 0, 0.0, &mut c, 3, 9).is_err()
    );
    assert!(gemm_batched(
        usize::MAX,
        false,
        false,
        3,
        3,
        4,
        1.0,
        &a,
        4,
        0,
        &b,
        3,
        0,
        0.0,
        &mut c,
        3,
        9
    )
    .is_err());
    assert!(gemm_batched(
        0,
        false,
        false,
        3,
        3,
        4,
        1.0,
        &[],
        4,
        0,
        &[],
        3,
        0,
        0.0,
        &mut [],
        3,
        9
    )
    .is_ok());
}

#[test]
fn gemm_grid_covers_panels() {
    for threads in 1..=4 {
        for pm in 1..40 {
            for pn in [1usize, 2, 3, 7, 64] {
                let g = choose_grid(pm, pn, 14, 32, 24, threads);
                assert!(g.gm >= 1 && g.gn >= 1 && g.gm <= pm.max(1) && g.gn <= pn.max(1));
                assert!(pm.div_ceil(g.gm) <= 24 || g.gm >= pm.div_ceil(24));
            }
        }
    }
}

/// Runs the blocked driver of kernel `K` with or without packing, on one thread.
fn run_blocked<K: MicroKernel>(cs: &Case, d: &Data<K::T>, direct: bool) -> Vec<u64> {
    let mut c = d.c.clone();
    let args = Args {
        transa: cs.ta,
        transb: cs.tb,
        m: cs.m,
        n: cs.n,
        k: cs.k,
        alpha: K::T::from_f64(cs.alpha),
        a: &d.a,
        lda: d.lda,
        b: &d.b,
        ldb: d.ldb,
        beta: K::T::from_f64(cs.beta),
        c: SendPtr(c.as_mut_ptr()),
        ldc: d.ldc,
    };
    // SAFETY: the data was built for this case (validated by make); c is owned here.
    unsafe { blocked::<K>(&args, 1, direct) };
    bits(&c)
}

#[cfg(target_arch = "x86_64")]
#[test]
fn gemm_direct_equals_packed_bitwise() {
    if simd::level() < Level::Avx512 {
        return;
    }
    for (x, &(m, n, k)) in [(64, 64, 64), (37, 100, 300), (15, 33, 1), (130, 70, 520)]
        .iter()
        .enumerate()
    {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let cs = Case {
                ta,
                tb,
                pad: (x, 1, 2),
                beta: 0.5,
                ..Case::new(m, n, k)
            };
            let d32 = make::<f32>(&cs, 11);
            let d64 = make::<f64>(&cs, 12);
            assert!(
                run_blocked::<kernels::Avx512F32>(&cs, &d32, true)
                    == run_blocked::<kernels::Avx512F32>(&cs, &d32, false),
                "f32 {cs:?}"
            );
            assert!(
                run_blocked::<kernels::Avx512F64>(&cs, &d64, true)
                    == run_blocked::<kernels::Avx512F64>(&cs, &d64, false),
                "f64 {cs:?}"
            );
            verify(
                &cs,
                &d32,
                &run_case(Level::Avx512, Mode::Inline, &cs, &d32),
                "direct",
            );
        }
    }
}

#[test]
fn gemm_grid_examples() {
    // Print a few grids (visible with --nocapture) and check basic sanity.
    for &(pm, pn) in &[(74usize, 32usize), (5, 2), (19, 8), (3, 64), (147, 64)] {
        let g = choose_grid(pm, pn, 14, 32, 24, 2);
        println!("pm {pm} pn {pn}: {g:?}");
        assert!(g.gm * g.gn >= 1);
    }
}

#[test]
fn gemm_unit_alpha_beta_exact() {
    // alpha == 1 and beta == 1 take shortcuts in the AVX-512 epilogue; the bits must be
    // those of the general formula: alpha * acc + beta * c with one rounding each.
    fn one<T: Float>(level: Level, m: usize, n: usize, k: usize) {
        let base = Case {
            pad: (1, 2, 3),
            ..Case::new(m, n, k)
        };
        let d = make::<T>(&Case { beta: 1.0, ..base }, 5);
        let plain = run_case(level, Mode::Inline, &base, &d); // alpha 1, beta 0
        let twice = run_case(level, Mode::Inline, &Case { alpha: 2.0, ..base }, &d);
        let accum = run_case(level, Mode::Inline, &Case { beta: 1.0, ..base }, &d);
        for i in 0..m {
            for j in 0..n {
                let x = i * d.ldc + j;
                let what = format!("{level:?} {m}x{n}x{k} C[{i},{j}]");
                assert_eq!(bits(&[twice[x]]), bits(&[plain[x] + plain[x]]), "{what}");
                assert_eq!(bits(&[accum[x]]), bits(&[plain[x] + d.c[x]]), "{what}");
            }
        }
    }
    // k within every kernel's KC (one depth block), direct and packed paths.
    for &(m, n, k) in &[(64, 64, 64), (37, 45, 100), (150, 140, 120), (15, 33, 256)] {
        for level in levels() {
            one::<f32>(level, m, n, k);
            one::<f64>(level, m, n, k);
        }
    }
}

#[test]
fn gemm_grid_balanced_for_two_threads() {
    // Square problems on two threads: as many tasks on each thread, of equal size.
    for &(pm, pn) in &[(147usize, 64usize), (74, 32), (37, 16), (19, 8), (10, 4)] {
        let g = choose_grid(pm, pn, 14, 32, 12, 2);
        assert_eq!((g.gm * g.gn) % 2, 0, "pm {pm} pn {pn}: {g:?}");
        assert!(pm.div_ceil(g.gm) <= 12, "pm {pm} pn {pn}: {g:?}");
    }
}

#[test]
fn gemm_batched_threads_do_not_change_bits() {
    let (m, n, k) = (20usize, 24usize, 16usize);
    let per = PAR_MIN_MNK.div_ceil(m * n * k);
    for batch in [per - 1, per, 3 * per + 1, 40] {
        let mut rng = Rng(9);
        let a: Vec<f32> = rng.vec(batch * m * k);
        let b: Vec<f32> = rng.vec(k * n);
        let c0: Vec<f32> = rng.vec(batch * m * n);
        let mut outs = Vec::new();
        for threads in [1usize, 2, 3] {
            let mut c = c0.clone();
            crate::threading::with_threads(threads, || {
                gemm_batched(
                    batch,
                    false,
                    false,
                    m,
                    n,
                    k,
                    1.5,
                    &a,
                    k,
                    m * k,
                    &b,
                    n,
                    0,
                    0.5,
                    &mut c,
                    n,
                    m * n,
                )
                .unwrap()
            });
            outs.push(bits(&c));
        }
        assert!(outs[1] == outs[0] && outs[2] == outs[0], "batch {batch}");
    }
}
