//! Host resolution of target clusters: STRICT_DNS and LOGICAL_DNS through the runtime's resolver, and —
//! through a runtime whose DNS answers are scripted — re-resolution every `dns_refresh_rate`, host
//! changes, and failures counted as `cannot_connect` without a crash.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use revtun_driver::{BoxFuture, DnsHosts, Listener, LookupFamily};

use super::*;

fn dns(family: LookupFamily, port: u16) -> DnsHosts {
    DnsHosts {
        family,
        refresh: Duration::from_millis(100),
        ..DnsHosts::new("localhost", port)
    }
}

/// Scenario: strict and logical dns resolve localhost.
pub async fn strict_and_logical_dns_resolve_localhost(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let responder = responder(&sides).await;
        let port = responder.local_addr().port();
        for source in [
            HostSource::StrictDns(dns(LookupFamily::V4Only, port)),
            HostSource::LogicalDns(dns(LookupFamily::V4Only, port)),
        ] {
            let listener = initiator_with(sides.initiator.clone(), 2, true, source).await;
            wait_idle(rt, &responder, 2).await;
            let host = format!("downstream_reverse_connection.host.127.0.0.1:{port}.idle");
            wait_until(
                rt,
                Duration::from_secs(2),
                "initiator idle on 127.0.0.1",
                || async { listener.stats().await.unwrap().get(&host) == Some(2) },
            )
            .await;
            shut_down(rt, "initiator", listener.shutdown()).await;
            wait_idle(rt, &responder, 0).await;
        }
        shut_down(rt, "responder", responder.shutdown()).await;
    })
    .await;
}

/// A runtime with a scripted resolver (`None` fails the lookup); everything else is `inner`'s.
#[derive(Debug)]
struct ScriptedDns {
    inner: Arc<dyn Runtime>,
    answer: Mutex<Option<Vec<SocketAddr>>>,
    lookups: Mutex<Vec<Instant>>,
}

impl ScriptedDns {
    fn set(&self, answer: Option<Vec<SocketAddr>>) {
        *self.answer.lock().unwrap() = answer;
    }
}

impl Runtime for ScriptedDns {
    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn unix_ms(&self) -> u64 {
        self.inner.unix_ms()
    }
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        self.inner.spawn(future);
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        self.inner.sleep_until(deadline)
    }
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<BoxStream>> {
        self.inner.connect(addr)
    }
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        self.inner.bind(addr)
    }
    fn resolve(&self, _host: &str, _port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        self.lookups.lock().unwrap().push(Instant::now());
        let answer = self.answer.lock().unwrap().clone();
        Box::pin(async move { answer.ok_or_else(|| io::Error::other("scripted failure")) })
    }
}

/// Scenario: re resolution follows changes and counts failures.
pub async fn re_resolution_follows_changes_and_counts_failures(sides: Sides) {
    let rt = sides.rt();
    within(rt, async {
        let (a, b) = (responder(&sides).await, responder(&sides).await);
        let scripted = Arc::new(ScriptedDns {
            inner: sides.initiator.clone(),
            answer: Mutex::new(None),
            lookups: Mutex::new(Vec::new()),
        });
        let source = HostSource::StrictDns(dns(LookupFamily::All, 0));
        let listener = initiator_with(scripted.clone(), 2, true, source).await;

        // Failing lookups: counted as cannot_connect, nothing dialled, nothing crashes.
        let cannot = format!("downstream_reverse_connection.cluster.{TARGET}.cannot_connect");
        wait_until(rt, Duration::from_secs(2), "failures counted", || async {
            listener.stats().await.unwrap().get(&cannot).unwrap_or(0) >= 2
        })
        .await;
        assert_eq!(listener.counts().await.unwrap().opened, 0);

        // The name now points at responder A, then moves to B: A's idle tunnels close, B gets the pool.
        scripted.set(Some(vec![a.local_addr()]));
        wait_idle(rt, &a, 2).await;
        scripted.set(Some(vec![b.local_addr()]));
        wait_idle(rt, &b, 2).await;
        wait_idle(rt, &a, 0).await;

        // A failure keeps the current hosts.
        scripted.set(None);
        let before = listener.stats().await.unwrap().get(&cannot).unwrap();
        wait_until(rt, Duration::from_secs(2), "failure counted", || async {
            listener.stats().await.unwrap().get(&cannot).unwrap() > before
        })
        .await;
        assert_eq!(idle_of(&b, NODE).await, 2);

        // Lookups come every refresh (100 ms), not faster.
        let lookups = scripted.lookups.lock().unwrap().clone();
        for pair in lookups.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(90),
                "{lookups:?}"
            );
        }

        shut_down(rt, "initiator", listener.shutdown()).await;
        shut_down(rt, "responder a", a.shutdown()).await;
        shut_down(rt, "responder b", b.shutdown()).await;
    })
    .await;
}
