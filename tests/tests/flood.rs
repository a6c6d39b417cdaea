//! The 10,000-connection flood against a responder on tokio and on smol (see
//! `revtun_tests::scenarios::flood`). The flood runs in its own process (`src/bin/flood.rs`).

use std::sync::Arc;

use revtun_smol::SmolRuntime;
use revtun_tests::scenarios::Sides;
use revtun_tests::scenarios::flood::flood_keeps_the_responder_responsive;
use revtun_tokio::TokioRuntime;

const FLOOD: &str = env!("CARGO_BIN_EXE_flood");

#[test]
fn flood_on_tokio() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rt = Arc::new(TokioRuntime::new(tokio.handle().clone()));
    tokio.block_on(flood_keeps_the_responder_responsive(Sides::same(rt), FLOOD));
}

#[test]
fn flood_on_smol() {
    smol::block_on(flood_keeps_the_responder_responsive(
        Sides::same(Arc::new(SmolRuntime::new())),
        FLOOD,
    ));
}
