//! The admin endpoint (hyper 1, HTTP/1.1): `/stats`, `/stats?format=json`, `/stats/prometheus`,
//! `/ready`, `/reverse_connections`; 404 for other paths, 405 for methods other than GET. hyper answers
//! malformed requests with 400; heads are bounded (16 KiB buffer, 10 s to send one) and so is the number
//! of connections served at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use revtun_core::policy::SourceAllowList;
use revtun_core::responder::NodeSummary;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::prometheus;
use crate::stats::App;

/// Admin connections served at once; more wait in the kernel's backlog.
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Serves the admin endpoint on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, app: Arc<App>, allow: Option<SourceAllowList>) {
    let permits = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, peer)) => {
                if allow.as_ref().is_some_and(|a| !a.allows(peer.ip())) {
                    tracing::debug!(%peer, "admin: source not allowed (admin.source_allow); closed");
                    continue;
                }
                if let Err(e) = revtun_tokio::configure_socket(&stream) {
                    tracing::debug!(error = %e, "admin socket options");
                }
                stream
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, &req).await) }
            });
            let conn = http1::Builder::new()
                .max_buf_size(16 * 1024)
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection");
            }
            drop(permit);
        });
    }
}

/// Answers one request.
async fn handle(app: &App, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(
        path,
        "/stats" | "/stats/prometheus" | "/ready" | "/reverse_connections"
    );
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    if req.method() != Method::GET {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    match path {
        "/stats" if wants_json(req.uri().query()) => {
            let stats = app.snapshot().await;
            let list: Vec<Value> = stats
                .iter()
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect();
            json_response(&json!({ "stats": list }))
        }
        "/stats" => {
            let stats = app.snapshot().await;
            let mut body = String::new();
            for (name, value) in stats.iter() {
                body.push_str(name);
                body.push_str(": ");
                body.push_str(&value.to_string());
                body.push('\n');
            }
            text(StatusCode::OK, body)
        }
        "/stats/prometheus" => {
            let stats = app.snapshot().await;
            let nodes = app.nodes().await;
            let body = prometheus::render(
                &stats,
                &nodes,
                &app.initiator_prefixes,
                app.responder_prefix.as_deref(),
            );
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/ready" => {
            if app.draining.load(Ordering::Relaxed) {
                text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n".into())
            } else if app.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "LIVE\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n".into())
            }
        }
        _ => json_response(&reverse_connections(&app.nodes().await)),
    }
}

/// `format=json` among the query's parameters.
fn wants_json(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == "format=json"))
}

/// DESIGN.md's `/reverse_connections` document. A node's `cluster` is its clusters joined by `,`
/// (normally one); under tenant isolation the same node id may appear in two tenants, so the key is then
/// `<tenant>:<node>` (ids cannot contain `:` under isolation). A cluster's `idle` / `in_use` sum its
/// nodes' (a node registered under two clusters counts in both).
pub fn reverse_connections(nodes: &[NodeSummary]) -> Value {
    let repeated = |n: &NodeSummary| nodes.iter().filter(|m| m.node == n.node).count() > 1;
    let mut by_node = Map::new();
    let mut by_cluster: std::collections::BTreeMap<&str, (u64, u64, u64)> = Default::default();
    for node in nodes {
        let idle = node.idle;
        let key = if repeated(node) {
            format!("{}:{}", node.tenant, node.node)
        } else {
            node.node.clone()
        };
        by_node.insert(
            key,
            json!({
                "cluster": node.clusters.join(","),
                "tenant": node.tenant,
                "idle": idle,
                "in_use": node.in_use,
            }),
        );
        for cluster in &node.clusters {
            let entry = by_cluster.entry(cluster).or_default();
            entry.0 += 1;
            entry.1 += idle;
            entry.2 += node.in_use;
        }
    }
    let clusters: Map<String, Value> = by_cluster
        .into_iter()
        .map(|(id, (nodes, idle, in_use))| {
            (
                id.to_owned(),
                json!({ "nodes": nodes, "idle": idle, "in_use": in_use }),
            )
        })
        .collect();
    json!({ "nodes": by_node, "clusters": clusters })
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
