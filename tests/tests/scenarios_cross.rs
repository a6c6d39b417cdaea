//! Every loopback scenario across runtimes in one process: a tokio initiator with a smol responder, and
//! a smol initiator with a tokio responder. Data crosses both ways in the claim, echo, relay and raw-peer
//! scenarios.

use std::future::Future;
use std::sync::Arc;

use revtun_smol::SmolRuntime;
use revtun_tests::scenarios::Sides;
use revtun_tokio::TokioRuntime;

/// A tokio runtime and smol's global executor side by side; `smol::block_on` drives the scenario.
fn run_with<F, Fut>(tokio_initiates: bool, scenario: F)
where
    F: FnOnce(Sides) -> Fut,
    Fut: Future<Output = ()>,
{
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tokio_rt = Arc::new(TokioRuntime::new(tokio.handle().clone()));
    let smol_rt = Arc::new(SmolRuntime::new());
    let sides = if tokio_initiates {
        Sides {
            initiator: tokio_rt,
            responder: smol_rt,
        }
    } else {
        Sides {
            initiator: smol_rt,
            responder: tokio_rt,
        }
    };
    smol::block_on(scenario(sides));
}

fn tokio_initiator_smol_responder<F, Fut>(scenario: F)
where
    F: FnOnce(Sides) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with(true, scenario);
}

fn smol_initiator_tokio_responder<F, Fut>(scenario: F)
where
    F: FnOnce(Sides) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with(false, scenario);
}

mod tokio_initiator {
    revtun_tests::all_scenarios!(super::tokio_initiator_smol_responder);
}

mod smol_initiator {
    revtun_tests::all_scenarios!(super::smol_initiator_tokio_responder);
}
