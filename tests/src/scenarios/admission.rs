//! Who may register: bearer tokens (401), allow-list patterns (403), the per-node cap (429 with
//! `retry-after`), tenant isolation (400 for `:`, tenant-scoped pools and gauges), and a token file
//! rotated while tunnels are up. The responder uses the core's `Policy` and the driver's token-file
//! watcher, as a library user would.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use revtun_core::handshake::{DEFAULT_REQUEST_METHOD, DEFAULT_REQUEST_PATH, HandshakeRequest};
use revtun_core::initiator::{InitiatorConfig, TargetCluster};
use revtun_core::policy::{AllowList, Policy, SharedTokens, TokenSet};
use revtun_core::responder::ResponderConfig;
use revtun_driver::auth_files::{BearerTokenFile, BearerTokenListener, watch_token_file};
use revtun_driver::{
    HeadersError, HostSource, ListenerOptions, ResponderHandle, ResponderOptions, ReverseListener,
    Runtime,
};

use super::hostile::{counter, responder_with};
use super::raw::read_until_closed;
use super::support::{
    CLUSTER, NODE, Sides, TARGET, Task, initiator_config, responder_config, shut_down, sleep,
    spawn, wait_until, within,
};
use super::tls::handshake_failed;

/// A handshake request of `node` in `tenant` with extra headers, as raw bytes.
pub fn request_as(
    node: &str,
    tenant: &str,
    headers: &[(String, String)],
    host: std::net::SocketAddr,
) -> bytes::Bytes {
    HandshakeRequest {
        method: DEFAULT_REQUEST_METHOD,
        path: DEFAULT_REQUEST_PATH,
        host,
        node,
        cluster: CLUSTER,
        tenant,
        target_cluster: TARGET,
        initiation_time_ms: 0,
        upgrade: false,
        offer_claim_marker: false,
        extra_headers: headers,
    }
    .to_bytes()
}

/// A fresh directory for one scenario's files.
fn scenario_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "revtun-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sends `bytes` on a new connection and returns everything the responder wrote before closing.
pub async fn answer(sides: &Sides, responder: &ResponderHandle, bytes: &[u8]) -> String {
    let mut sock = sides
        .responder
        .connect(responder.local_addr())
        .await
        .expect("connect");
    sock.write_all(bytes).await.expect("write");
    let got = read_until_closed(sides.rt(), &mut sock, Duration::from_secs(2)).await;
    String::from_utf8_lossy(&got).into_owned()
}

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("authorization".into(), format!("Bearer {token}"))]
}

fn options(policy: Policy) -> ResponderOptions {
    ResponderOptions {
        seed: Some([7; 32]),
        authorizer: Some(Arc::new(policy)),
        ..ResponderOptions::default()
    }
}

/// An initiator of `node` in `tenant` with `headers`, serving each claimed tunnel by writing `greeting`
/// (claim-marker mode, so the service may speak first) and closing.
async fn greeter(
    rt: Arc<dyn Runtime>,
    responder: std::net::SocketAddr,
    node: &str,
    tenant: &str,
    headers: Vec<(String, String)>,
    greeting: &'static [u8],
) -> (Arc<ReverseListener>, Task<()>) {
    let base = initiator_config(2, true);
    let target = TargetCluster {
        name: TARGET.into(),
        count: 2,
    };
    let mut config = InitiatorConfig::new(node, CLUSTER, tenant, vec![target]);
    config.offer_claim_marker = true;
    config.connect_timeout = base.connect_timeout;
    config.handshake_timeout = base.handshake_timeout;
    config.idle_timeout = base.idle_timeout;
    config.max_reconnect_backoff = base.max_reconnect_backoff;
    config.extra_headers = headers;
    let listener = ReverseListener::bind(
        rt.clone(),
        config,
        vec![(TARGET.into(), HostSource::Static(vec![responder]))],
        ListenerOptions {
            seed: Some([5; 32]),
            ..ListenerOptions::default()
        },
    )
    .await
    .expect("initiator starts");
    let listener = Arc::new(listener);
    let serving = listener.clone();
    let task_rt = rt.clone();
    let task = spawn(&*rt, async move {
        while let Ok((mut tunnel, _)) = serving.accept().await {
            task_rt.spawn(Box::pin(async move {
                let _ = tunnel.write_all(greeting).await;
                let _ = tunnel.close().await;
            }));
        }
    });
    (listener, task)
}

/// Stops a [`greeter`].
async fn stop(rt: &dyn Runtime, (listener, task): (Arc<ReverseListener>, Task<()>)) {
    task.abort().await;
    let listener = Arc::into_inner(listener).expect("one reference");
    shut_down(rt, "initiator", listener.shutdown()).await;
}

/// Idle tunnels of `node` in `tenant`.
async fn idle_in(responder: &ResponderHandle, node: &str, tenant: &str) -> u64 {
    let nodes = responder.nodes().await.unwrap_or_default();
    nodes
        .iter()
        .filter(|n| n.node == node && n.tenant == tenant)
        .map(|n| n.idle)
        .sum()
}

/// Claims `id` (in `tenant`) and reads what the service behind the tunnel wrote.
async fn greeting_of(responder: &ResponderHandle, id: &str, tenant: Option<&str>) -> Vec<u8> {
    let mut stream = match tenant {
        Some(t) => responder.connect_in_tenant(id, t).await,
        None => responder.connect(id).await,
    }
    .expect("claim");
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.expect("read");
    got
}

/// Waits until [`NODE`] (no tenant) holds `idle` idle tunnels, then claims one and checks what the
/// service behind it wrote.
async fn registers_and_greets(
    rt: &dyn Runtime,
    responder: &ResponderHandle,
    idle: u64,
    greeting: &[u8],
) {
    wait_until(rt, Duration::from_secs(5), "registration", || async {
        idle_in(responder, NODE, "").await == idle
    })
    .await;
    assert_eq!(greeting_of(responder, NODE, None).await, greeting);
}

/// A wrong or missing bearer token is answered 401 and counted `auth_failed`; the right one registers.
pub async fn bearer_token_mismatch_is_401(sides: Sides) {
    within(sides.rt(), async {
        let policy = Policy {
            tokens: Some(SharedTokens::new(TokenSet::parse("s3cret\nother\n"))),
            ..Policy::default()
        };
        let responder = responder_with(&sides, responder_config(), options(policy)).await;
        let host = responder.local_addr();
        let wrong = answer(
            &sides,
            &responder,
            &request_as(NODE, "", &bearer("guess"), host),
        )
        .await;
        assert!(wrong.starts_with("HTTP/1.1 401 "), "{wrong}");
        assert!(wrong.ends_with("Authentication failed"), "{wrong}");
        let none = answer(&sides, &responder, &request_as(NODE, "", &[], host)).await;
        assert!(none.starts_with("HTTP/1.1 401 "), "{none}");
        assert_eq!(counter(&responder, "auth_failed").await, 2);
        let good = greeter(
            sides.initiator.clone(),
            host,
            NODE,
            "",
            bearer("s3cret"),
            b"hi",
        )
        .await;
        registers_and_greets(sides.rt(), &responder, 2, b"hi").await;
        stop(sides.rt(), good).await;
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
    })
    .await;
}

/// Node and cluster allow-lists with `prefix*` / `*suffix` patterns: a node outside them is answered
/// 403 and counted `validation_failed`.
pub async fn allow_list_patterns_answer_403(sides: Sides) {
    within(sides.rt(), async {
        let policy = Policy {
            nodes: AllowList::parse(&["node-*", "*.prod"]).unwrap(),
            clusters: AllowList::parse(&[CLUSTER]).unwrap(),
            ..Policy::default()
        };
        let responder = responder_with(&sides, responder_config(), options(policy)).await;
        let host = responder.local_addr();
        for (node, status) in [("node-7", "200"), ("db.prod", "200"), ("core-1", "403")] {
            let mut sock = sides.responder.connect(host).await.unwrap();
            sock.write_all(&request_as(node, "", &[], host))
                .await
                .unwrap();
            let head = super::raw::read_head(&mut sock).await;
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status} ")),
                "{node}: {head}"
            );
        }
        assert_eq!(counter(&responder, "validation_failed").await, 1);
        assert_eq!(counter(&responder, "accepted").await, 2);
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
    })
    .await;
}

/// At `max_tunnels_per_node` a further handshake of the node gets 429 with `retry-after`, counted
/// `rejected`; another node still registers.
pub async fn per_node_cap_answers_429_with_retry_after(sides: Sides) {
    within(sides.rt(), async {
        let config = ResponderConfig {
            max_tunnels_per_node: Some(2),
            retry_after: Some(Duration::from_millis(2500)),
            ..responder_config()
        };
        let responder = responder_with(&sides, config, ResponderOptions::default()).await;
        let host = responder.local_addr();
        let node = greeter(sides.initiator.clone(), host, NODE, "", vec![], b"a").await;
        wait_until(
            sides.rt(),
            Duration::from_secs(5),
            "two tunnels",
            || async { idle_in(&responder, NODE, "").await == 2 },
        )
        .await;
        let third = answer(&sides, &responder, &request_as(NODE, "", &[], host)).await;
        assert!(third.starts_with("HTTP/1.1 429 "), "{third}");
        assert!(third.contains("\r\nretry-after: 3\r\n"), "{third}");
        assert!(counter(&responder, "rejected").await >= 1);
        let other = answer(&sides, &responder, &request_as("node-b", "", &[], host)).await;
        assert!(
            other.is_empty() || other.starts_with("HTTP/1.1 200 "),
            "{other}"
        );
        stop(sides.rt(), node).await;
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
    })
    .await;
}

/// Tenant isolation: an id with `:` is answered 400; two tenants register the same node id; a claim
/// in one tenant only ever gets that tenant's tunnel; gauges are per tenant.
pub async fn tenant_isolation_keeps_tenants_apart(sides: Sides) {
    within(sides.rt(), async {
        let mut config = responder_config();
        config.policy.tenant_isolation = true;
        let responder = responder_with(&sides, config, ResponderOptions::default()).await;
        let host = responder.local_addr();
        let colon = answer(&sides, &responder, &request_as("a:b", "t1", &[], host)).await;
        assert!(colon.starts_with("HTTP/1.1 400 "), "{colon}");
        assert!(
            colon.ends_with("must not contain ':' when tenant isolation is enabled"),
            "{colon}"
        );
        assert_eq!(counter(&responder, "parse_error").await, 1);

        let a = greeter(
            sides.initiator.clone(),
            host,
            NODE,
            "tenant-a",
            vec![],
            b"from A",
        )
        .await;
        let b = greeter(
            sides.initiator.clone(),
            host,
            NODE,
            "tenant-b",
            vec![],
            b"from B",
        )
        .await;
        wait_until(
            sides.rt(),
            Duration::from_secs(5),
            "both tenants",
            || async {
                idle_in(&responder, NODE, "tenant-a").await == 2
                    && idle_in(&responder, NODE, "tenant-b").await == 2
            },
        )
        .await;
        let stats = responder.stats().await.unwrap();
        for tenant in ["tenant-a", "tenant-b"] {
            let gauge = format!("reverse_connections.tenants.{tenant}.nodes.{NODE}");
            assert_eq!(stats.get(&gauge), Some(2), "{gauge}");
        }
        assert_eq!(
            stats.get(&format!("reverse_connections.nodes.{NODE}")),
            None
        );
        for _ in 0..4 {
            assert_eq!(
                greeting_of(&responder, NODE, Some("tenant-a")).await,
                b"from A"
            );
            assert_eq!(
                greeting_of(&responder, NODE, Some("tenant-b")).await,
                b"from B"
            );
        }
        // A tenant with no tunnel of the node gets none (the claim times out).
        assert!(responder.connect_in_tenant(NODE, "tenant-c").await.is_err());
        stop(sides.rt(), a).await;
        stop(sides.rt(), b).await;
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
    })
    .await;
}

/// The token file is rewritten while tunnels are up: the new token registers, the old one is refused
/// from then on, and the tunnels registered with the old token stay.
pub async fn token_file_rotation_takes_effect_and_keeps_tunnels(sides: Sides) {
    within(sides.rt(), async {
        let dir = scenario_dir("rotation");
        let path = dir.join("tokens");
        std::fs::write(&path, "# before\nold-token\n").unwrap();
        let tokens = watch_token_file(&sides.responder, &path, Duration::from_millis(50))
            .expect("token file");
        let policy = Policy {
            tokens: Some(tokens),
            ..Policy::default()
        };
        let responder = responder_with(&sides, responder_config(), options(policy)).await;
        let host = responder.local_addr();
        let old = greeter(
            sides.initiator.clone(),
            host,
            NODE,
            "",
            bearer("old-token"),
            b"o",
        )
        .await;
        wait_until(
            sides.rt(),
            Duration::from_secs(5),
            "old tunnels",
            || async { idle_in(&responder, NODE, "").await == 2 },
        )
        .await;

        let staged = dir.join("tokens.new");
        std::fs::write(&staged, "new-token\n").unwrap();
        std::fs::rename(&staged, &path).unwrap();
        wait_until(
            sides.rt(),
            Duration::from_secs(5),
            "the old token refused",
            || async {
                let reply = answer(
                    &sides,
                    &responder,
                    &request_as("probe", "", &bearer("old-token"), host),
                )
                .await;
                reply.starts_with("HTTP/1.1 401 ")
            },
        )
        .await;
        let new = greeter(
            sides.initiator.clone(),
            host,
            "node-new",
            "",
            bearer("new-token"),
            b"n",
        )
        .await;
        wait_until(
            sides.rt(),
            Duration::from_secs(5),
            "new tunnels",
            || async { idle_in(&responder, "node-new", "").await == 2 },
        )
        .await;
        assert_eq!(
            idle_in(&responder, NODE, "").await,
            2,
            "existing tunnels stay"
        );
        assert_eq!(greeting_of(&responder, NODE, None).await, b"o");
        stop(sides.rt(), old).await;
        stop(sides.rt(), new).await;
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// An initiator refused with its token (401s, counted `handshake_failed.http_401`) registers once
/// [`ReverseListener::set_extra_headers`] gives it the right one, without a restart; an invalid header
/// is refused and changes nothing.
pub async fn set_extra_headers_gives_the_initiator_a_new_token(sides: Sides) {
    within(sides.rt(), async {
        let policy = Policy {
            tokens: Some(SharedTokens::new(TokenSet::parse("token-b\n"))),
            ..Policy::default()
        };
        let responder = responder_with(&sides, responder_config(), options(policy)).await;
        let host = responder.local_addr();
        let init = greeter(
            sides.initiator.clone(),
            host,
            NODE,
            "",
            bearer("token-a"),
            b"b",
        )
        .await;
        let listener = &init.0;
        wait_until(sides.rt(), Duration::from_secs(5), "a 401", || async {
            handshake_failed(listener, host, "http_401").await >= 1
        })
        .await;
        let bad = listener
            .set_extra_headers(vec![("authorization".into(), "Bearer x\r\ny".into())])
            .await;
        assert!(matches!(bad, Err(HeadersError::Invalid(_))), "{bad:?}");
        listener
            .set_extra_headers(bearer("token-b"))
            .await
            .expect("headers replaced");
        registers_and_greets(sides.rt(), &responder, 2, b"b").await;
        stop(sides.rt(), init).await;
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
    })
    .await;
}

/// The initiator's bearer token file is watched ([`BearerTokenFile`]): emptied, the token in force
/// stays (a replacement tunnel still registers); rewritten, new handshakes carry the new token while
/// the responder accepts only that one. No restart, and the tunnels up stay.
pub async fn bearer_token_file_rotation_needs_no_initiator_restart(sides: Sides) {
    within(sides.rt(), async {
        let dir = scenario_dir("bearer-file");
        let path = dir.join("token");
        std::fs::write(&path, "token-a\n").unwrap();
        let tokens = SharedTokens::new(TokenSet::parse("token-a\n"));
        let policy = Policy {
            tokens: Some(tokens.clone()),
            ..Policy::default()
        };
        let responder = responder_with(&sides, responder_config(), options(policy)).await;
        let host = responder.local_addr();
        let interval = Duration::from_millis(50);
        let file = BearerTokenFile::read(&path, interval).expect("token file");
        let init = greeter(
            sides.initiator.clone(),
            host,
            NODE,
            "",
            bearer(file.token()),
            b"g",
        )
        .await;
        file.watch(
            &sides.initiator,
            vec![BearerTokenListener::new(&init.0, Vec::new())],
        );
        let registered = || async { idle_in(&responder, NODE, "").await == 2 };
        wait_until(
            sides.rt(),
            Duration::from_secs(5),
            "registration",
            registered,
        )
        .await;

        // Emptied: the old token stays, so the claimed tunnel's replacement registers.
        std::fs::write(&path, " \n").unwrap();
        sleep(sides.rt(), interval * 4).await;
        assert_eq!(greeting_of(&responder, NODE, None).await, b"g");
        wait_until(
            sides.rt(),
            Duration::from_secs(5),
            "replacement",
            registered,
        )
        .await;

        // Rotated: the responder takes only the new token; the replacement needs it.
        tokens.replace(TokenSet::parse("token-b\n"));
        let staged = dir.join("token.new");
        std::fs::write(&staged, "token-b\n").unwrap();
        std::fs::rename(&staged, &path).unwrap();
        assert_eq!(greeting_of(&responder, NODE, None).await, b"g");
        wait_until(
            sides.rt(),
            Duration::from_secs(5),
            "replacement with the new token",
            registered,
        )
        .await;
        stop(sides.rt(), init).await;
        shut_down(sides.rt(), "responder", responder.shutdown()).await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
