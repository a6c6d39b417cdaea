//! Criterion benchmarks of the codecs (in progress).
use criterion::{Criterion, criterion_group, criterion_main};

fn benches(_c: &mut Criterion) {}

criterion_group!(codec, benches);
criterion_main!(codec);
