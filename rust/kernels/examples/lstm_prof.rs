//! Where the time of one LSTM layer goes: the kernel crate's forward and backward
//! (T = 50, B = 32, I = 16, H = 128 by default, as the Python train-step benchmark) and
//! the GEMMs and activations they are made of, timed alone.
//!
//!     cargo run --release --example lstm_prof -p ferrograd-kernels [THREADS [T B I H]]
//!
//! `ONLY_RNN=1` stops after the layer timings; `LAST_ONLY=1` gives the output gradient of
//! the last step only (a loss on the last output, as in the benchmark). Each figure is
//! the minimum and the median over nine batches of calls.

use ferrograd_kernels::rnn::{self, Cell, Dims, Grads, Weights};
use ferrograd_kernels::{gemm, threading};
use std::time::Instant;

fn v(n: usize, s: u64) -> Vec<f32> {
    let mut x = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

fn time<F: FnMut()>(name: &str, reps: usize, mut f: F) -> f64 {
    for _ in 0..reps / 5 + 1 {
        f();
    }
    let mut best = Vec::new();
    for _ in 0..9 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best.push(t.elapsed().as_secs_f64() / reps as f64 * 1e3);
    }
    best.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{name:40} min {:.3} ms, median {:.3} ms", best[0], best[4]);
    best[0]
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2);
    let (t, b, i, h) = (50, 32, 16, 128);
    let args: Vec<usize> = std::env::args()
        .skip(2)
        .map(|s| s.parse().unwrap())
        .collect();
    let (t, b, i, h) = if args.len() == 4 {
        (args[0], args[1], args[2], args[3])
    } else {
        (t, b, i, h)
    };
    threading::set_num_threads(threads).unwrap();
    let d = Dims {
        seq: t,
        batch: b,
        input: i,
        hidden: h,
        batch_first: false,
        reverse: false,
    };
    let x = v(t * b * i, 1);
    let w_ih = v(4 * h * i, 2);
    let w_hh = v(4 * h * h, 3);
    let b_ih = v(4 * h, 4);
    let b_hh = v(4 * h, 5);
    let w = Weights {
        w_ih: &w_ih,
        w_hh: &w_hh,
        b_ih: Some(&b_ih),
        b_hh: Some(&b_hh),
    };
    let mut hn = vec![0f32; b * h];
    let mut cn = vec![0f32; b * h];
    let wl = rnn::workspace_len(Cell::Lstm, &d).unwrap();
    let ws = &mut vec![0f32; wl][..];
    let out = &mut vec![0f32; t * b * h][..];
    let reps = if h >= 256 { 5 } else { 60 };
    time("forward no save", reps, || {
        rnn::forward(
            Cell::Lstm,
            &d,
            &x,
            &w,
            None,
            None,
            None,
            out,
            h,
            0,
            &mut hn,
            Some(&mut cn),
            None,
        )
        .unwrap();
    });
    time("forward save", reps, || {
        rnn::forward(
            Cell::Lstm,
            &d,
            &x,
            &w,
            None,
            None,
            None,
            out,
            h,
            0,
            &mut hn,
            Some(&mut cn),
            Some(ws),
        )
        .unwrap();
    });
    let mut g_out = v(t * b * h, 9);
    if std::env::var_os("LAST_ONLY").is_some() {
        // Like the Python benchmark: a loss on the last step's output only.
        for gv in &mut g_out[..(t - 1) * b * h] {
            *gv = 0.0;
        }
    }
    let mut dx = vec![0f32; t * b * i];
    let mut dh0 = vec![0f32; b * h];
    let mut dc0 = vec![0f32; b * h];
    let mut dw_ih = vec![0f32; 4 * h * i];
    let mut dw_hh = vec![0f32; 4 * h * h];
    let mut db_ih = vec![0f32; 4 * h];
    let mut db_hh = vec![0f32; 4 * h];
    time("backward", reps, || {
        let gr = Grads {
            dx: Some(&mut dx),
            accumulate_dx: false,
            dh0: &mut dh0,
            dc0: Some(&mut dc0),
            dw_ih: &mut dw_ih,
            dw_hh: &mut dw_hh,
            db_ih: Some(&mut db_ih),
            db_hh: Some(&mut db_hh),
        };
        rnn::backward(
            Cell::Lstm,
            &d,
            &x,
            &w_ih,
            &w_hh,
            None,
            ws,
            Some(&g_out),
            h,
            0,
            None,
            None,
            gr,
        )
        .unwrap();
    });
    time("forward save + backward (no dx)", reps, || {
        rnn::forward(
            Cell::Lstm,
            &d,
            &x,
            &w,
            None,
            None,
            None,
            out,
            h,
            0,
            &mut hn,
            Some(&mut cn),
            Some(ws),
        )
        .unwrap();
        let gr = Grads {
            dx: None,
            accumulate_dx: false,
            dh0: &mut dh0,
            dc0: Some(&mut dc0),
            dw_ih: &mut dw_ih,
            dw_hh: &mut dw_hh,
            db_ih: Some(&mut db_ih),
            db_hh: Some(&mut db_hh),
        };
        rnn::backward(
            Cell::Lstm,
            &d,
            &x,
            &w_ih,
            &w_hh,
            None,
            ws,
            Some(&g_out),
            h,
            0,
            None,
            None,
            gr,
        )
        .unwrap();
    });
    if std::env::var("ONLY_RNN").is_ok() {
        return;
    }
    // Math throughput: sigmoid over an L1-resident array on one thread.
    {
        use ferrograd_kernels::elementwise::{forward_inplace, Unary};
        threading::set_num_threads(1).unwrap();
        let mut a = v(4096, 21);
        let ms = time("sigmoid 4096 x 100 (1 thread)", 20, || {
            for _ in 0..100 {
                forward_inplace(Unary::Sigmoid, &mut a).unwrap();
            }
        });
        println!("   {:.2} ns/element", ms * 1e6 / (4096.0 * 100.0));
        let ms = time("tanh 4096 x 100 (1 thread)", 20, || {
            for _ in 0..100 {
                forward_inplace(Unary::Tanh, &mut a).unwrap();
            }
        });
        println!("   {:.2} ns/element", ms * 1e6 / (4096.0 * 100.0));
        threading::set_num_threads(threads).unwrap();
    }
    // GEMM pieces.
    let n = t * b;
    let gh = 4 * h;
    let dg = v(n * gh, 11);
    let hs = v(b * h, 12);
    let mut c = vec![0f32; b * gh];
    let whh_t = v(h * gh, 13);
    let ms = time("per-step fwd gemm x T (B x 4H x H)", reps, || {
        for _ in 0..t {
            gemm::gemm(
                false, false, b, gh, h, 1.0, &hs, h, &whh_t, gh, 0.0, &mut c, gh,
            )
            .unwrap();
        }
    });
    println!("   {:.1} GFLOPS", 2.0 * (t * b * gh * h) as f64 / ms / 1e6);
    let ms = time("per-step fwd gemm x T, 2 x M=16", reps, || {
        for _ in 0..t {
            for c0 in [0, 16] {
                gemm::gemm(
                    false,
                    false,
                    16,
                    gh,
                    h,
                    1.0,
                    &hs[c0 * h..],
                    h,
                    &whh_t,
                    gh,
                    0.0,
                    &mut c[c0 * gh..],
                    gh,
                )
                .unwrap();
            }
        }
    });
    println!("   {:.1} GFLOPS", 2.0 * (t * b * gh * h) as f64 / ms / 1e6);
    let mut pend = vec![0f32; b * h];
    let ms = time("per-step bwd gemm x T (B x H x 4H)", reps, || {
        for s in 0..t {
            gemm::gemm(
                false,
                false,
                b,
                h,
                gh,
                1.0,
                &dg[s * b * gh..],
                gh,
                &w_hh,
                h,
                1.0,
                &mut pend,
                h,
            )
            .unwrap();
        }
    });
    println!("   {:.1} GFLOPS", 2.0 * (t * b * gh * h) as f64 / ms / 1e6);
    let hprev = v(n * h, 14);
    let ms = time("dW_hh (4H x H x TB, A^T)", reps, || {
        gemm::gemm(
            true, false, gh, h, n, 1.0, &dg, gh, &hprev, h, 0.0, &mut dw_hh, h,
        )
        .unwrap();
    });
    println!("   {:.1} GFLOPS", 2.0 * (n * gh * h) as f64 / ms / 1e6);
    let ms = time("dW_ih (4H x I x TB, A^T)", reps, || {
        gemm::gemm(
            true, false, gh, i, n, 1.0, &dg, gh, &x, i, 0.0, &mut dw_ih, i,
        )
        .unwrap();
    });
    println!("   {:.1} GFLOPS", 2.0 * (n * gh * i) as f64 / ms / 1e6);
    let ms = time("dx (TB x I x 4H)", reps, || {
        gemm::gemm(
            false, false, n, i, gh, 1.0, &dg, gh, &w_ih, i, 0.0, &mut dx, i,
        )
        .unwrap();
    });
    println!("   {:.1} GFLOPS", 2.0 * (n * gh * i) as f64 / ms / 1e6);
    let mut xp = vec![0f32; n * gh];
    let ms = time("x proj (TB x 4H x I, B^T)", reps, || {
        gemm::gemm(
            false, true, n, gh, i, 1.0, &x, i, &w_ih, i, 0.0, &mut xp, gh,
        )
        .unwrap();
    });
    println!("   {:.1} GFLOPS", 2.0 * (n * gh * i) as f64 / ms / 1e6);
}
