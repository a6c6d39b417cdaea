//! The "TLS-Enabled Reverse Connections" examples (`examples/tls-{upstream,downstream}.yaml`) as two
//! `revtun` processes on loopback, with certificates made at test time: tunnel mTLS, data-leg TLS inside
//! the tunnels and a TLS front door; a TLS client through the front door gets its bytes back.

mod program;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use program::{Proc, echo_service, eventually, free_port, http, stat, temp_dir};
use revtun_tests::certs::{TestCa, write_example_certs};
use revtun_tokio::tls::{ClientTlsFiles, PemSource, ServerName, TlsClientSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An example file with its ports replaced (`(from, to)` pairs), written into `dir`.
fn example(dir: &Path, name: &str, ports: &[(u16, u16)]) -> std::path::PathBuf {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/");
    let mut text = std::fs::read_to_string(format!("{path}{name}")).expect("example");
    for (from, to) in ports {
        let from = format!("port_value: {from}\n");
        assert!(text.contains(&from), "{name} has no {from}");
        text = text.replace(&from, &format!("port_value: {to}\n"));
    }
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write");
    file
}

/// Starts `revtun` in `dir` and waits until `/ready` answers 200.
async fn start_ready(dir: &Path, file: &Path, admin: SocketAddr) -> Proc {
    let proc = Proc::start_in(dir, file);
    eventually("/ready", Duration::from_secs(10), || async {
        matches!(http(admin, "GET", "/ready").await, Some((200, _)))
    })
    .await;
    proc
}

/// A TLS client through the front door: `payload` goes out, the echo comes back.
async fn echo_through_tls(door: SocketAddr, ca: &TestCa, payload: &[u8]) -> Vec<u8> {
    let client = TlsClientSource::new(ClientTlsFiles {
        trusted_ca: PemSource::Inline(ca.pem()),
        certificate: None,
        sni: None,
    })
    .expect("client TLS");
    let tcp = TcpStream::connect(door).await.expect("connect front door");
    let name = ServerName::IpAddress(door.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(client.config())
        .connect(name, tcp)
        .await
        .expect("front door TLS");
    tls.write_all(payload).await.expect("write");
    tls.shutdown().await.expect("half-close");
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut back))
        .await
        .expect("echo within 10 s")
        .expect("read");
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_examples_run_with_tunnel_mtls_data_leg_tls_and_a_tls_front_door() {
    let dir = temp_dir("e2e-tls");
    let ca = write_example_certs(&dir.join("examples/certs"));
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("echo");
    let service = echo.local_addr().expect("addr").port();
    tokio::spawn(echo_service(echo));
    let (r_admin, handshake, door, i_admin) = (free_port(), free_port(), free_port(), free_port());
    let responder_file = example(
        &dir,
        "tls-upstream.yaml",
        &[(9902, r_admin), (8443, handshake), (8444, door)],
    );
    let initiator_file = example(
        &dir,
        "tls-downstream.yaml",
        &[(9901, i_admin), (8443, handshake), (8000, service)],
    );

    let (r_admin, i_admin) = (addr(r_admin), addr(i_admin));
    let mut responder = start_ready(&dir, &responder_file, r_admin).await;
    let mut initiator = start_ready(&dir, &initiator_file, i_admin).await;
    eventually("node-1's 2 tunnels", Duration::from_secs(10), || async {
        stat(r_admin, "upstream_rc.nodes.node-1").await == Some(2)
    })
    .await;

    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for _ in 0..3 {
        assert_eq!(echo_through_tls(addr(door), &ca, &payload).await, payload);
    }
    let accepted = stat(r_admin, "reverse_tunnel.handshake.accepted").await;
    assert!(accepted.is_some_and(|n| n >= 2), "{accepted:?}");
    let tls_failed = stat(r_admin, "reverse_tunnel.handshake.tls_failed").await;
    assert_eq!(tls_failed, Some(0));
    let tls_failures = format!("downstream_rc.host.127.0.0.1:{handshake}.handshake_failed.tls");
    assert_eq!(stat(i_admin, &tls_failures).await, Some(0));

    assert!(initiator.terminate(Duration::from_secs(10)).success());
    assert!(responder.terminate(Duration::from_secs(10)).success());
    let _ = std::fs::remove_dir_all(dir);
}
