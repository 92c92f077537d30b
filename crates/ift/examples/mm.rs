use candle_core::{Device, Tensor};
fn bench(name: &str, f: &dyn Fn() -> Tensor, flops: f64) {
    for _ in 0..2 {
        f();
    }
    let it = 5;
    let t = std::time::Instant::now();
    for _ in 0..it {
        f();
    }
    let dt = t.elapsed().as_secs_f64() / it as f64;
    println!("{name:<40} {:.1} GF/s", flops / dt / 1e9);
}
fn main() {
    let dev = Device::Cpu;
    for (m, k, n) in [
        (1024usize, 512usize, 1408usize),
        (1024, 1408, 512),
        (1024, 512, 4096),
    ] {
        let x = Tensor::randn(0f32, 1., (m, k), &dev).unwrap();
        let w = Tensor::randn(0f32, 1., (n, k), &dev).unwrap(); // (out, in)
        let wt = w.t().unwrap().contiguous().unwrap();
        let dy = Tensor::randn(0f32, 1., (m, n), &dev).unwrap();
        let fl = 2.0 * (m * k * n) as f64;
        bench(
            &format!("{m}x{k}x{n} x·Wᵀ (strided)"),
            &|| x.matmul(&w.t().unwrap()).unwrap(),
            fl,
        );
        bench(
            &format!("{m}x{k}x{n} x·W' (contig)"),
            &|| x.matmul(&wt).unwrap(),
            fl,
        );
        bench(&format!("{m}x{k}x{n} dy·W"), &|| dy.matmul(&w).unwrap(), fl);
        bench(
            &format!("{m}x{k}x{n} dyᵀ·x"),
            &|| dy.t().unwrap().matmul(&x).unwrap(),
            fl,
        );
    }
}
