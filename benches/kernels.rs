//! Kernel throughput on one core: a 1024×1024 float32 tile through the native filters
//! (the whole-array path, single-threaded). Throughput is in elements (pixels) per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tessera::data::Buf;
use tessera::exec::stencil::filter_array;
use tessera::ir::{Boundary, Kernel, KernelKind};

// The same allocator as the `tessera` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn tile(n: usize) -> Buf {
    // Deterministic, smooth-plus-noise content (values do not affect speed much).
    Buf::F32(
        (0..n * n)
            .map(|i| ((i % 977) as f32 * 0.37).sin() * 100.0 + (i / n) as f32)
            .collect(),
    )
}

fn kernel(kind: KernelKind, p: f64) -> Kernel {
    Kernel {
        kind,
        params: vec![p],
        truncate: 4.0,
        axis: -1,
        unit: None,
    }
}

fn bench(c: &mut Criterion) {
    let n = 1024usize;
    let data = tile(n);
    let shape = [n as u64, n as u64];
    let mut g = c.benchmark_group("kernel_1024x1024_f32");
    g.throughput(Throughput::Elements((n * n) as u64));
    g.sample_size(10);
    for (name, k) in [
        ("gaussian_sigma5", kernel(KernelKind::Gaussian, 5.0)),
        ("gaussian_sigma1", kernel(KernelKind::Gaussian, 1.0)),
        ("uniform_5", kernel(KernelKind::Uniform, 5.0)),
        ("median_3", kernel(KernelKind::Median, 3.0)),
        ("sobel", kernel(KernelKind::Sobel, 0.0)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| filter_array(&k, &data, &shape, Boundary::Reflect))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
