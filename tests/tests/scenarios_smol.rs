//! Every loopback scenario on smol: from `smol::block_on` with tasks on smol's global executor, and
//! again on a supplied `async_executor::Executor` that the test drives itself.

use std::future::Future;
use std::sync::Arc;

use revtun_smol::SmolRuntime;
use revtun_tests::scenarios::Sides;

/// `smol::block_on`, tasks on smol's global executor.
fn run_global<F, Fut>(scenario: F)
where
    F: FnOnce(Sides) -> Fut,
    Fut: Future<Output = ()>,
{
    smol::block_on(scenario(Sides::same(Arc::new(SmolRuntime::new()))));
}

/// Tasks on an executor of the test's own, driven by this thread only (`Executor::run`); once the
/// scenario ends the executor is dropped with every task left on it.
fn run_executor<F, Fut>(scenario: F)
where
    F: FnOnce(Sides) -> Fut,
    Fut: Future<Output = ()>,
{
    let executor = Arc::new(smol::Executor::new());
    let rt = Arc::new(SmolRuntime::with_executor(executor.clone()));
    smol::block_on(executor.run(scenario(Sides::same(rt))));
}

mod global {
    revtun_tests::all_scenarios!(super::run_global);
}

mod executor {
    revtun_tests::all_scenarios!(super::run_executor);
}
