//! What the scenarios share: the runtimes of both sides, sub-second configs, tasks that can be
//! stopped, timeouts, waiting, an echo service, and loopback socket pairs — all on [`Runtime`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use revtun_core::initiator::{InitiatorConfig, TargetCluster};
use revtun_core::keepalive::KeepaliveConfig;
use revtun_core::responder::ResponderConfig;
use revtun_driver::{
    BoxStream, HostSource, ListenerOptions, ResponderHandle, ResponderOptions, ReverseListener,
    Runtime,
};

/// The initiator's node id.
pub const NODE: &str = "node-a";
/// The initiator's cluster id.
pub const CLUSTER: &str = "edge";
/// The target cluster the initiator dials.
pub const TARGET: &str = "responders";

/// The runtimes of a scenario: the same one twice, or two different ones (cross-runtime).
#[derive(Clone, Debug)]
pub struct Sides {
    /// Runs the initiator, the services behind it, and the scenario's own timers.
    pub initiator: Arc<dyn Runtime>,
    /// Runs the responder and the clients in front of it.
    pub responder: Arc<dyn Runtime>,
}

impl Sides {
    /// Both sides on `rt`.
    pub fn same(rt: Arc<dyn Runtime>) -> Self {
        Self {
            initiator: rt.clone(),
            responder: rt,
        }
    }

    /// The runtime the scenario's own timers and helper tasks use.
    pub fn rt(&self) -> &dyn Runtime {
        &*self.initiator
    }
}

/// A responder config with sub-second keepalive and claim timeout.
pub fn responder_config() -> ResponderConfig {
    ResponderConfig {
        keepalive: KeepaliveConfig {
            interval: Duration::from_millis(100),
            failure_threshold: 3,
        },
        claim_timeout: Duration::from_millis(400),
        handshake_timeout: Duration::from_secs(1),
        ..ResponderConfig::default()
    }
}

/// An initiator config for `count` tunnels, with sub-second timeouts and backoff.
pub fn initiator_config(count: u32, claim_marker: bool) -> InitiatorConfig {
    let target = TargetCluster {
        name: TARGET.into(),
        count,
    };
    let mut config = InitiatorConfig::new(NODE, CLUSTER, "", vec![target]);
    config.offer_claim_marker = claim_marker;
    config.connect_timeout = Duration::from_millis(500);
    config.handshake_timeout = Duration::from_secs(1);
    config.idle_timeout = Duration::from_secs(1);
    config.max_reconnect_backoff = Duration::from_millis(150);
    config
}

/// A responder on the responder side's runtime, bound to `addr`.
pub async fn responder_at(sides: &Sides, addr: SocketAddr) -> ResponderHandle {
    let options = ResponderOptions {
        seed: Some([7; 32]),
        ..ResponderOptions::default()
    };
    ResponderHandle::bind(sides.responder.clone(), addr, responder_config(), options)
        .await
        .expect("responder binds")
}

/// A responder on the responder side's runtime, on a free loopback port.
pub async fn responder(sides: &Sides) -> ResponderHandle {
    responder_at(sides, "127.0.0.1:0".parse().unwrap()).await
}

/// An initiator on `rt` whose target cluster has the hosts of `source`.
pub async fn initiator_with(
    rt: Arc<dyn Runtime>,
    count: u32,
    claim_marker: bool,
    source: HostSource,
) -> ReverseListener {
    let options = ListenerOptions {
        seed: Some([3; 32]),
        ..ListenerOptions::default()
    };
    let config = initiator_config(count, claim_marker);
    ReverseListener::bind(rt, config, vec![(TARGET.into(), source)], options)
        .await
        .expect("initiator starts")
}

/// An initiator on the initiator side's runtime with one static host, `responder`.
pub async fn initiator(
    sides: &Sides,
    responder: SocketAddr,
    count: u32,
    claim_marker: bool,
) -> ReverseListener {
    let source = HostSource::Static(vec![responder]);
    initiator_with(sides.initiator.clone(), count, claim_marker, source).await
}

/// Sleeps on `rt`.
pub async fn sleep(rt: &dyn Runtime, duration: Duration) {
    rt.sleep_until(rt.now() + duration).await;
}

/// `Err(())` if `future` did not complete within `limit` (it is then dropped).
pub async fn timeout<T>(
    rt: &dyn Runtime,
    limit: Duration,
    future: impl Future<Output = T>,
) -> Result<T, ()> {
    let expired = async {
        sleep(rt, limit).await;
        Err(())
    };
    future::or(async { Ok(future.await) }, expired).await
}

/// A task spawned on a [`Runtime`] that can be joined or stopped (the runtime's own spawn is detached).
#[must_use = "a task is stopped with `abort` or awaited with `join`"]
pub struct Task<T> {
    result: async_channel::Receiver<T>,
    stop: async_channel::Sender<()>,
}

/// Spawns `future` on `rt`.
pub fn spawn<T: Send + 'static>(
    rt: &dyn Runtime,
    future: impl Future<Output = T> + Send + 'static,
) -> Task<T> {
    let (done, result) = async_channel::bounded(1);
    let (stop, stopped) = async_channel::bounded::<()>(1);
    rt.spawn(Box::pin(async move {
        let stopped = async {
            let _ = stopped.recv().await;
            None
        };
        if let Some(value) = future::or(async { Some(future.await) }, stopped).await {
            let _ = done.send(value).await;
        }
    }));
    Task { result, stop }
}

impl<T> Task<T> {
    /// Waits for the task's result.
    ///
    /// # Panics
    /// If the task panicked.
    pub async fn join(self) -> T {
        self.result.recv().await.expect("the task panicked")
    }

    /// Stops the task and waits until it has ended.
    pub async fn abort(self) {
        drop(self.stop);
        let _ = self.result.recv().await;
    }
}

/// Polls `check` every 10 ms until it returns true; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(rt: &dyn Runtime, limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        sleep(rt, Duration::from_millis(10)).await;
    }
}

/// Idle tunnels of `node` as the responder lists them (0 if the node is not listed).
pub async fn idle_of(responder: &ResponderHandle, node: &str) -> u64 {
    let nodes = responder.nodes().await.unwrap_or_default();
    nodes
        .iter()
        .filter(|n| n.node == node)
        .map(|n| n.idle)
        .sum()
}

/// Waits until the responder holds `count` idle tunnels of [`NODE`].
pub async fn wait_idle(rt: &dyn Runtime, responder: &ResponderHandle, count: u64) {
    wait_until(rt, Duration::from_secs(5), "idle tunnels", || async {
        idle_of(responder, NODE).await == count
    })
    .await;
}

/// Echoes everything `stream` sends until EOF, then half-closes.
pub async fn echo(mut stream: impl futures_io::AsyncRead + futures_io::AsyncWrite + Unpin) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        if stream.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = stream.close().await;
}

/// Serves every accepted tunnel with [`echo`] (one detached task each, which ends at the tunnel's EOF).
pub fn spawn_echo(rt: Arc<dyn Runtime>, listener: Arc<ReverseListener>) -> Task<()> {
    let spawner = rt.clone();
    spawn(&*spawner, async move {
        while let Ok((tunnel, _info)) = listener.accept().await {
            rt.spawn(Box::pin(echo(tunnel)));
        }
    })
}

/// Writes `payload`, half-closes, and reads everything back until EOF.
pub async fn exchange<S>(rt: &dyn Runtime, stream: &mut S, payload: &[u8]) -> Vec<u8>
where
    S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
{
    stream.write_all(payload).await.expect("write");
    stream.close().await.expect("half-close");
    let mut back = Vec::new();
    timeout(rt, Duration::from_secs(5), stream.read_to_end(&mut back))
        .await
        .expect("echo within 5 s")
        .expect("read");
    back
}

/// Shuts a handle down, and checks that every task it spawned ended within two seconds.
pub async fn shut_down<F: Future<Output = ()>>(rt: &dyn Runtime, what: &str, shutdown: F) {
    timeout(rt, Duration::from_secs(2), shutdown)
        .await
        .unwrap_or_else(|()| panic!("{what}: tasks still running after shutdown"));
}

/// A responder, an initiator with `count` tunnels and an echo service behind it, the pool full.
pub struct EchoSetup {
    /// The runtimes.
    pub sides: Sides,
    /// The responder.
    pub responder: ResponderHandle,
    /// The initiator.
    pub listener: Arc<ReverseListener>,
    echo: Task<()>,
}

impl EchoSetup {
    /// Starts both sides and waits until the pool is full.
    pub async fn start(sides: &Sides, count: u32, claim_marker: bool) -> Self {
        let responder = responder(sides).await;
        let listener = initiator(sides, responder.local_addr(), count, claim_marker).await;
        let listener = Arc::new(listener);
        let echo = spawn_echo(sides.initiator.clone(), listener.clone());
        wait_idle(sides.rt(), &responder, u64::from(count)).await;
        Self {
            sides: sides.clone(),
            responder,
            listener,
            echo,
        }
    }

    /// Stops the echo, shuts both sides down, and checks that every task ended.
    pub async fn finish(self) {
        self.echo.abort().await;
        let listener =
            Arc::into_inner(self.listener).expect("the echo task held the other reference");
        let rt = self.sides.rt();
        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "responder", self.responder.shutdown()).await;
    }
}

/// Runs a scenario body with an upper bound, so a broken driver fails the test instead of hanging it.
pub async fn within<T>(rt: &dyn Runtime, body: impl Future<Output = T>) -> T {
    timeout(rt, Duration::from_secs(15), body)
        .await
        .expect("the test did not finish within 15 s")
}

/// A connected loopback pair made with `rt`'s sockets: (the dialling side, the accepted side).
pub async fn pair(rt: &dyn Runtime) -> io::Result<(BoxStream, BoxStream)> {
    let mut listener = rt.bind("127.0.0.1:0".parse().unwrap()).await?;
    let addr = listener.local_addr()?;
    let (client, server) = future::zip(rt.connect(addr), listener.accept()).await;
    Ok((client?, server?.0))
}
