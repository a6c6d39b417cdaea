//! Criterion benchmarks of revtun-core's codecs: the rc:// grammar and both halves of the handshake.
//!
//! Run with `cargo bench -p revtun-core --bench codec`; the README's "Performance" section quotes the figures.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use revtun_core::RcAddress;
use revtun_core::handshake::{
    DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest, HeadLimits, RequestParser,
    RequestPolicy, ResponseParser, check_request, encode_accept,
};

const ADDRESS: &str = "rc://edge-node-0042:edge-cluster:tenant-a@upstream-cluster:8";

fn request(extra_headers: &[(String, String)]) -> HandshakeRequest<'_> {
    HandshakeRequest {
        method: DEFAULT_REQUEST_METHOD,
        path: DEFAULT_REQUEST_PATH,
        host: SocketAddr::from(([203, 0, 113, 7], 9000)),
        node: "edge-node-0042",
        cluster: "edge-cluster",
        tenant: "tenant-a",
        target_cluster: "upstream-cluster",
        initiation_time_ms: 1_764_201_600_000,
        upgrade: false,
        offer_claim_marker: true,
        extra_headers,
    }
}

fn address(c: &mut Criterion) {
    c.bench_function("address/parse", |b| {
        b.iter(|| black_box(ADDRESS).parse::<RcAddress>())
    });
    let parsed: RcAddress = ADDRESS.parse().expect("valid address");
    c.bench_function("address/display", |b| {
        b.iter(|| black_box(&parsed).to_string())
    });
}

fn handshake(c: &mut Criterion) {
    let extra = vec![(
        "authorization".to_string(),
        "Bearer 0123456789abcdef".to_string(),
    )];
    let req = request(&extra);
    let wire = req.to_bytes();

    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("request_encode", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            black_box(&req).encode(&mut out);
            black_box(out.len())
        })
    });
    group.bench_function("request_parse", |b| {
        b.iter(|| {
            let mut parser = RequestParser::new(HeadLimits::default());
            black_box(parser.push(black_box(&wire)))
        })
    });
    let policy = RequestPolicy::default();
    group.bench_function("request_parse_and_check", |b| {
        b.iter(|| {
            let mut parser = RequestParser::new(HeadLimits::default());
            let parsed = parser
                .push(black_box(&wire))
                .ok()
                .flatten()
                .expect("complete request");
            black_box(check_request(&parsed, &policy))
        })
    });
    let mut trickled = Vec::new();
    group.bench_function("request_parse_trickled_16b", |b| {
        b.iter(|| {
            let mut parser = RequestParser::new(HeadLimits::default());
            trickled.clear();
            for chunk in wire.chunks(16) {
                if let Ok(Some(parsed)) = parser.push(chunk) {
                    trickled.push(parsed);
                }
            }
            black_box(trickled.len())
        })
    });

    let response = encode_accept(false, true);
    group.throughput(Throughput::Bytes(response.len() as u64));
    group.bench_function("response_parse", |b| {
        b.iter(|| {
            let mut parser = ResponseParser::new(HeadLimits::default(), false, true);
            black_box(parser.push(black_box(&response)))
        })
    });
    group.finish();
}

criterion_group!(codec, address, handshake);
criterion_main!(codec);
