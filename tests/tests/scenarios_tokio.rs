//! Every loopback scenario on tokio (a two-worker runtime per test).

use std::future::Future;
use std::sync::Arc;

use revtun_tests::scenarios::Sides;
use revtun_tokio::TokioRuntime;

/// Builds a runtime, runs the scenario on it, and shuts the runtime down (every task ends with it).
fn run<F, Fut>(scenario: F)
where
    F: FnOnce(Sides) -> Fut,
    Fut: Future<Output = ()>,
{
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rt = Arc::new(TokioRuntime::new(tokio.handle().clone()));
    tokio.block_on(scenario(Sides::same(rt)));
}

revtun_tests::all_scenarios!(run);
