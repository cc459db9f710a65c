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

/// One LSTM layer's data, buffers and gradients.
struct Layer {
    d: Dims,
    x: Vec<f32>,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
    out: Vec<f32>,
    hn: Vec<f32>,
    cn: Vec<f32>,
    ws: Vec<f32>,
    g_out: Vec<f32>,
    dx: Vec<f32>,
    dh0: Vec<f32>,
    dc0: Vec<f32>,
    dw_ih: Vec<f32>,
    dw_hh: Vec<f32>,
    db_ih: Vec<f32>,
    db_hh: Vec<f32>,
}

impl Layer {
    fn forward(&mut self, save: bool) {
        let w = Weights {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: Some(&self.b_ih),
            b_hh: Some(&self.b_hh),
        };
        rnn::forward(
            Cell::Lstm,
            &self.d,
            &self.x,
            &w,
            None,
            None,
            None,
            &mut self.out,
            self.d.hidden,
            0,
            &mut self.hn,
            Some(&mut self.cn),
            save.then_some(&mut self.ws[..]),
        )
        .unwrap();
    }

    /// Backpropagation through the last saving forward, with or without dx.
    fn backward(&mut self, with_dx: bool) {
        let gr = Grads {
            dx: with_dx.then_some(&mut self.dx[..]),
            accumulate_dx: false,
            dh0: &mut self.dh0,
            dc0: Some(&mut self.dc0),
            dw_ih: &mut self.dw_ih,
            dw_hh: &mut self.dw_hh,
            db_ih: Some(&mut self.db_ih),
            db_hh: Some(&mut self.db_hh),
        };
        rnn::backward(
            Cell::Lstm,
            &self.d,
            &self.x,
            &self.w_ih,
            &self.w_hh,
            None,
            &self.ws,
            Some(&self.g_out),
            self.d.hidden,
            0,
            None,
            None,
            gr,
        )
        .unwrap();
    }
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
    let mut g_out = v(t * b * h, 9);
    if std::env::var_os("LAST_ONLY").is_some() {
        // Like the Python benchmark: a loss on the last step's output only.
        for gv in &mut g_out[..(t - 1) * b * h] {
            *gv = 0.0;
        }
    }
    let mut l = Layer {
        x: v(t * b * i, 1),
        w_ih: v(4 * h * i, 2),
        w_hh: v(4 * h * h, 3),
        b_ih: v(4 * h, 4),
        b_hh: v(4 * h, 5),
        out: vec![0.0; t * b * h],
        hn: vec![0.0; b * h],
        cn: vec![0.0; b * h],
        ws: vec![0.0; rnn::workspace_len(Cell::Lstm, &d).unwrap()],
        g_out,
        dx: vec![0.0; t * b * i],
        dh0: vec![0.0; b * h],
        dc0: vec![0.0; b * h],
        dw_ih: vec![0.0; 4 * h * i],
        dw_hh: vec![0.0; 4 * h * h],
        db_ih: vec![0.0; 4 * h],
        db_hh: vec![0.0; 4 * h],
        d,
    };
    let reps = if h >= 256 { 5 } else { 60 };
    time("forward no save", reps, || l.forward(false));
    time("forward save", reps, || l.forward(true));
    time("backward", reps, || l.backward(true));
    time("forward save + backward (no dx)", reps, || {
        l.forward(true);
        l.backward(false);
    });
    let Layer {
        x,
        w_ih,
        w_hh,
        mut dx,
        mut dw_ih,
        mut dw_hh,
        ..
    } = l;
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
