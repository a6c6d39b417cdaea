//! `perf_probe`: the driver's measuring tool (memory per idle tunnel, handshake rate, connect+echo latency
//! through a front door, one-stream throughput), one role per process, over loopback. The end-to-end
//! figures of the `revtun` program come from `revtun-bench`; this probe isolates the driver.
//!
//! ```sh
//! cargo build --release -p revtun-tests --example perf_probe
//! P=target/release/examples/perf_probe
//! $P service 7000 &                              # echo ('E…') and sink ('S…') service
//! $P responder tokio 7100 10 7001 &              # handshakes on 7100..7109, front door on 7001
//! $P initiator tokio 7100 10 1000 127.0.0.1:7000 # 10 hosts × 1000 idle tunnels; prints rss_kib
//! $P handshakes 127.0.0.1:7100 5 64              # handshakes/s for 5 s, 64 at a time
//! $P latency 127.0.0.1:7001 2000                 # connect + 64-byte echo through the front door
//! $P throughput 127.0.0.1:7001 1024              # one stream, 1 GiB through the front door
//! $P proxy 7002 127.0.0.1:7000 &                 # a plain TCP relay, to compare hops
//! ```
//! `tokio` or `smol` picks the runtime of the responder and initiator roles (`PROBE_ENVOY=1`: the
//! initiator does not offer the claim marker; `PROBE_WORKERS=n`: tokio worker threads, default 2). The responder, initiator, service and proxy roles run
//! until killed; the first two print `rss_kib` (VmRSS) with their tunnel counts once a second. The
//! front door and the initiator relay with [`revtun_driver::relay`], as the `revtun` program does.

#![allow(clippy::print_stdout)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use revtun_core::initiator::{InitiatorConfig, TargetCluster};
use revtun_core::responder::ResponderConfig;
use revtun_core::stats::TunnelCounts;
use revtun_driver::{
    BoxFuture, BoxStream, HostSource, Listener, ListenerOptions, ResponderHandle, ResponderOptions,
    ReverseListener, Runtime, ShutDown, relay,
};

const NODE: &str = "probe-node";

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map_or("", String::as_str);
    let text = |i: usize, name: &str| arg::<String>(&args, i, name);
    match role {
        "responder" => {
            let (base, ports) = (arg(&args, 2, "BASE")?, arg(&args, 3, "PORTS")?);
            let door = arg(&args, 4, "DOOR")?;
            on_runtime(&text(1, "RUNTIME")?, move |rt| {
                Box::pin(responder(rt, base, ports, door))
            })
        }
        "initiator" => {
            let (base, ports) = (arg(&args, 2, "BASE")?, arg(&args, 3, "PORTS")?);
            let (count, service) = (arg(&args, 4, "COUNT")?, arg(&args, 5, "SERVICE")?);
            on_runtime(&text(1, "RUNTIME")?, move |rt| {
                Box::pin(initiator(rt, base, ports, count, service))
            })
        }
        "service" => tokio_main(service(arg(&args, 1, "PORT")?)),
        "proxy" => tokio_main(proxy(arg(&args, 1, "PORT")?, text(2, "TO")?)),
        "handshakes" => tokio_main(handshakes(
            text(1, "ADDR")?,
            arg(&args, 2, "SECONDS")?,
            arg(&args, 3, "CONCURRENCY")?,
        )),
        "latency" => tokio_main(latency(text(1, "ADDR")?, arg(&args, 2, "N")?)),
        "throughput" => tokio_main(throughput(text(1, "ADDR")?, arg(&args, 2, "MIB")?)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: perf_probe ROLE ARGS… (see the example's documentation)",
        )),
    }
}

/// Argument `i`, parsed; an error names it.
fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> io::Result<T> {
    args.get(i).and_then(|a| a.parse().ok()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("argument {i} ({name}) missing or invalid"),
        )
    })
}

type Role = Box<dyn FnOnce(Arc<dyn Runtime>) -> BoxFuture<'static, io::Result<()>>>;

fn on_runtime(
    name: &str,
    role: impl FnOnce(Arc<dyn Runtime>) -> BoxFuture<'static, io::Result<()>> + 'static,
) -> io::Result<()> {
    let role: Role = Box::new(role);
    match name {
        "smol" => smol::block_on(role(Arc::new(revtun_smol::SmolRuntime::new()))),
        "tokio" => {
            let workers = std::env::var("PROBE_WORKERS")
                .ok()
                .and_then(|w| w.parse().ok());
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.unwrap_or(2))
                .enable_all()
                .build()?;
            let rt: Arc<dyn Runtime> =
                Arc::new(revtun_tokio::TokioRuntime::new(tokio.handle().clone()));
            tokio.block_on(role(rt))
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("runtime {other:?}: tokio or smol"),
        )),
    }
}

fn tokio_main(f: impl std::future::Future<Output = io::Result<()>>) -> io::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(f)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Several listeners as one: a task per port feeds a channel.
struct Ports {
    rx: async_channel::Receiver<io::Result<(BoxStream, SocketAddr)>>,
    first: SocketAddr,
}

impl Listener for Ports {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            self.rx
                .recv()
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::NotConnected.into()))
        })
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.first)
    }
}

/// `127.0.0.1:base`, `127.0.0.1:base+1`, … (`ports` of them).
fn loopback_ports(base: u16, ports: u16) -> io::Result<Vec<SocketAddr>> {
    (0..ports)
        .map(|p| {
            let port = base.checked_add(p).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "BASE + PORTS exceeds 65535")
            })?;
            Ok(SocketAddr::from(([127, 0, 0, 1], port)))
        })
        .collect()
}

async fn bind_ports(rt: &Arc<dyn Runtime>, base: u16, ports: u16) -> io::Result<Ports> {
    let (tx, rx) = async_channel::bounded(1024);
    for addr in loopback_ports(base, ports)? {
        let mut listener = rt.bind(addr).await?;
        let tx = tx.clone();
        rt.spawn(Box::pin(async move {
            loop {
                let accepted = listener.accept().await;
                if tx.send(accepted).await.is_err() {
                    return;
                }
            }
        }));
    }
    Ok(Ports {
        rx,
        first: SocketAddr::from(([127, 0, 0, 1], base)),
    })
}

/// Prints the process's RSS now, then with the tunnel counts once a second until the machine stops.
async fn report(
    rt: &dyn Runtime,
    what: &str,
    counts: impl Fn() -> BoxFuture<'static, Result<TunnelCounts, ShutDown>>,
) -> io::Result<()> {
    println!("{what} start rss_kib={}", rss_kib());
    loop {
        rt.sleep_until(rt.now() + Duration::from_secs(1)).await;
        let c = counts().await?;
        println!(
            "{what} idle={} handshaking={} connecting={} in_use={} closed={} rss_kib={}",
            c.idle,
            c.handshaking,
            c.connecting,
            c.in_use,
            c.closed,
            rss_kib()
        );
    }
}

async fn responder(rt: Arc<dyn Runtime>, base: u16, ports: u16, door: u16) -> io::Result<()> {
    let listener = bind_ports(&rt, base, ports).await?;
    let config = ResponderConfig {
        claim_timeout: Duration::from_secs(2),
        max_pending_handshakes: 4096,
        max_pending_handshakes_per_ip: 4096,
        ..ResponderConfig::default()
    };
    let handle = ResponderHandle::serve(
        rt.clone(),
        Box::new(listener),
        config,
        ResponderOptions::default(),
    )
    .map_err(io::Error::from)?;
    let mut front = rt.bind(SocketAddr::from(([127, 0, 0, 1], door))).await?;
    let (rt2, handle2) = (rt.clone(), handle.clone());
    rt.spawn(Box::pin(async move {
        while let Ok((client, _)) = front.accept().await {
            let (rt3, handle3) = (rt2.clone(), handle2.clone());
            rt2.spawn(Box::pin(async move {
                if let Ok(tunnel) = handle3.connect(NODE).await {
                    let _ = relay(&*rt3, client, tunnel, None).await;
                }
            }));
        }
    }));
    report(&*rt, "responder", move || {
        let handle = handle.clone();
        Box::pin(async move { handle.counts().await })
    })
    .await
}

async fn initiator(
    rt: Arc<dyn Runtime>,
    base: u16,
    ports: u16,
    count: u32,
    service: SocketAddr,
) -> io::Result<()> {
    let mut config = InitiatorConfig::new(
        NODE,
        "probe",
        "",
        vec![TargetCluster {
            name: "responders".into(),
            count,
        }],
    );
    config.max_tunnels_per_host = count + 64;
    // `PROBE_ENVOY=1`: Envoy mode (no claim marker).
    config.offer_claim_marker = std::env::var_os("PROBE_ENVOY").is_none();
    let hosts = loopback_ports(base, ports)?;
    let sources = vec![("responders".to_owned(), HostSource::Static(hosts))];
    let listener = Arc::new(
        ReverseListener::bind(rt.clone(), config, sources, ListenerOptions::default())
            .await
            .map_err(io::Error::from)?,
    );
    let (rt2, l2) = (rt.clone(), listener.clone());
    rt.spawn(Box::pin(async move {
        while let Ok((tunnel, _)) = l2.accept().await {
            let rt3 = rt2.clone();
            rt2.spawn(Box::pin(async move {
                if let Ok(local) = rt3.connect(service).await {
                    let _ = relay(&*rt3, tunnel, local, None).await;
                }
            }));
        }
    }));
    report(&*rt, "initiator", move || {
        let listener = listener.clone();
        Box::pin(async move { listener.counts().await })
    })
    .await
}

/// Echo ('E' first) or sink ('S' first: reads to EOF, answers the byte count as 8 bytes).
async fn service(port: u16) -> io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut kind = [0u8; 1];
            if s.read_exact(&mut kind).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                total += n as u64;
                if kind[0] == b'E' && s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            if kind[0] == b'S' {
                let _ = s.write_all(&total.to_be_bytes()).await;
            }
        });
    }
}

/// A plain TCP relay (no revtun), for comparison: listens on `port`, connects each client to `to`.
async fn proxy(port: u16, to: String) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (mut client, _) = listener.accept().await?;
        client.set_nodelay(true)?;
        let to = to.clone();
        tokio::spawn(async move {
            if let Ok(mut server) = connect(&to).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

async fn connect(addr: &str) -> io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

const REQUEST: &str = "GET /reverse_connections/request HTTP/1.1\r\nhost: 127.0.0.1\r\nx-envoy-reverse-tunnel-node-id: load\r\nx-envoy-reverse-tunnel-cluster-id: load\r\nx-envoy-reverse-tunnel-tenant-id: \r\nx-envoy-reverse-tunnel-upstream-cluster-name: responders\r\nx-envoy-reverse-tunnel-initiation-time: 1\r\ncontent-length: 0\r\n\r\n";

async fn handshakes(addr: String, seconds: u64, concurrency: u64) -> io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut buf = [0u8; 256];
            while Instant::now() < end {
                let result: io::Result<bool> = async {
                    let mut s = connect(&addr).await?;
                    s.write_all(REQUEST.as_bytes()).await?;
                    let mut got = 0;
                    loop {
                        let n = s.read(&mut buf[got..]).await?;
                        if n == 0 {
                            return Ok(false);
                        }
                        got += n;
                        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                            return Ok(buf.starts_with(b"HTTP/1.1 200"));
                        }
                    }
                }
                .await;
                match result {
                    Ok(true) => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let started = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.map_err(io::Error::other)?;
        ok += o;
        failed += f;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "handshakes ok={ok} failed={failed} rate={:.0}/s",
        ok as f64 / secs
    );
    Ok(())
}

async fn latency(addr: String, n: u64) -> io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut times = Vec::new();
    let mut payload = [b'x'; 64];
    payload[0] = b'E';
    let mut back = [0u8; 63];
    for _ in 0..n {
        let t = Instant::now();
        let mut s = connect(&addr).await?;
        s.write_all(&payload).await?;
        s.read_exact(&mut back).await?;
        times.push(t.elapsed());
        drop(s);
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "latency n={n} p50={:?} p90={:?} p99={:?}",
        at(0.5),
        at(0.9),
        at(0.99)
    );
    Ok(())
}

async fn throughput(addr: String, mib: u64) -> io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let chunk = vec![7u8; 256 * 1024];
    let mut s = connect(&addr).await?;
    let t = Instant::now();
    s.write_all(b"S").await?;
    for _ in 0..mib * 4 {
        s.write_all(&chunk).await?;
    }
    s.shutdown().await?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count).await?;
    let secs = t.elapsed().as_secs_f64();
    let got = u64::from_be_bytes(count);
    println!(
        "throughput bytes={got} {:.0} MiB/s",
        got as f64 / secs / 1048576.0
    );
    Ok(())
}
