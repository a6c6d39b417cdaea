//! Every loopback scenario inside an async-std program: async-std's executor blocks on the scenario
//! and runs every driver task (`async_std::task::spawn`), while sockets and timers are revtun-smol's
//! on async-io, the reactor async-std itself runs on. async-std is a dev-dependency only.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use revtun_smol::SmolRuntime;
use revtun_smol::driver::{BoxFuture, BoxStream, Listener, Runtime};
use revtun_tests::scenarios::Sides;

/// [`SmolRuntime`], but spawning on async-std's executor.
#[derive(Debug, Default)]
struct AsyncStdRuntime(SmolRuntime);

impl Runtime for AsyncStdRuntime {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        drop(async_std::task::spawn(future));
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        self.0.sleep_until(deadline)
    }
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<BoxStream>> {
        self.0.connect(addr)
    }
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        self.0.bind(addr)
    }
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        self.0.resolve(host, port)
    }
}

fn run<F, Fut>(scenario: F)
where
    F: FnOnce(Sides) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = Arc::new(AsyncStdRuntime::default());
    async_std::task::block_on(scenario(Sides::same(rt)));
}

revtun_tests::all_scenarios!(run);
