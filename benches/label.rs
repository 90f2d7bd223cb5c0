//! Connected-component labelling of a 4096 × 4096 mask of random discs (about a fifth
//! foreground), whole in memory: the chunked path (512 × 512 chunks, pass 1 + resolve +
//! pass 2 on a two-thread pool) against the same code on the whole array as one chunk on
//! one thread. With `LABEL_NPY=path` the mask is also written as a `.npy` file for
//! `bench/label_scipy.py`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tessera::data::Buf;
use tessera::exec::label::label_in_memory;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 4096;

fn discs() -> Vec<u8> {
    let mut m = vec![0u8; N * N];
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for _ in 0..6000 {
        let cy = (next() % N as u64) as i64;
        let cx = (next() % N as u64) as i64;
        let r = 3 + (next() % 22) as i64;
        for y in (cy - r).max(0)..(cy + r + 1).min(N as i64) {
            for x in (cx - r).max(0)..(cx + r + 1).min(N as i64) {
                if (y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r {
                    m[y as usize * N + x as usize] = 1;
                }
            }
        }
    }
    m
}

fn write_npy(path: &str, data: &[u8]) {
    let dict = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({N}, {N}), }}");
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

fn bench(c: &mut Criterion) {
    let m = discs();
    if let Ok(p) = std::env::var("LABEL_NPY") {
        write_npy(&p, &m);
    }
    let fg = m.iter().filter(|x| **x != 0).count();
    let mask = Buf::U8(m);
    let shape = [N as u64, N as u64];
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (_, n) = two.install(|| label_in_memory(&mask, &shape, &[512, 512], 1));
    let (_, n1) = one.install(|| label_in_memory(&mask, &shape, &shape, 1));
    assert_eq!(n, n1);
    eprintln!("discs mask: {fg} foreground pixels, {n} components (connectivity 1)");

    let mut g = c.benchmark_group("label_4096x4096_u8_discs");
    g.throughput(Throughput::Elements((N * N) as u64));
    g.sample_size(10);
    g.bench_function("chunked_512_two_threads", |b| {
        b.iter(|| two.install(|| label_in_memory(&mask, &shape, &[512, 512], 1)))
    });
    g.bench_function("chunked_512_one_thread", |b| {
        b.iter(|| one.install(|| label_in_memory(&mask, &shape, &[512, 512], 1)))
    });
    g.bench_function("untiled_one_thread", |b| {
        b.iter(|| one.install(|| label_in_memory(&mask, &shape, &shape, 1)))
    });
    g.bench_function("chunked_512_two_threads_conn2", |b| {
        b.iter(|| two.install(|| label_in_memory(&mask, &shape, &[512, 512], 2)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
