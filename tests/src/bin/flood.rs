//! `flood ADDR TOTAL BURST FIRST_SOURCE SOURCES`: opens TOTAL connections to ADDR in bursts of at most
//! BURST, from the loopback source addresses `127.0.0.FIRST_SOURCE` … (SOURCES of them, round-robin),
//! for the hostile-input test. Even-numbered connections send garbage that is not HTTP (closed at once
//! by the responder); odd ones send the first line of a request and then nothing (half-open). Every
//! socket is held open. After each burst it prints `burst <n> opened <k> failed <f>`; at the end
//! `done <opened> <failed>`; then it waits for its standard input to close and exits.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Arguments as given.
struct Args {
    addr: SocketAddr,
    total: usize,
    burst: usize,
    first_source: u8,
    sources: u8,
}

fn args() -> Result<Args, String> {
    let v: Vec<String> = std::env::args().skip(1).collect();
    let [addr, total, burst, first, sources] = v.as_slice() else {
        return Err("usage: flood ADDR TOTAL BURST FIRST_SOURCE SOURCES".into());
    };
    let num = |s: &str, what: &str| s.parse::<usize>().map_err(|e| format!("{what}: {e}"));
    let octet = |s: &str, what: &str| s.parse::<u8>().map_err(|e| format!("{what}: {e}"));
    Ok(Args {
        addr: addr.parse().map_err(|e| format!("ADDR: {e}"))?,
        total: num(total, "TOTAL")?,
        burst: num(burst, "BURST")?.clamp(1, 1000),
        first_source: octet(first, "FIRST_SOURCE")?,
        sources: octet(sources, "SOURCES")?.max(1),
    })
}

/// One connection from `127.0.0.<source>`.
fn connect(source: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, source], 0)).into())?;
    socket.connect_timeout(&to.into(), Duration::from_millis(500))?;
    Ok(socket.into())
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut held = Vec::with_capacity(args.total);
    let (mut opened, mut failed) = (0usize, 0usize);
    let mut out = std::io::stdout().lock();
    let mut i = 0usize;
    let mut burst = 0usize;
    while i < args.total {
        let end = (i + args.burst).min(args.total);
        while i < end {
            let offset = u8::try_from(i % usize::from(args.sources)).unwrap_or(0);
            let source = args.first_source.saturating_add(offset);
            match connect(source, args.addr) {
                Ok(mut stream) => {
                    let bytes: &[u8] = if i % 2 == 0 {
                        b"\x16\x03\x01\x02\x00garbage\r\n\r\n"
                    } else {
                        b"GET /reverse_connections/request HTTP/1.1\r\n"
                    };
                    // The responder may already have closed it; that is its answer.
                    let _ = stream.write_all(bytes);
                    held.push(stream);
                    opened += 1;
                }
                Err(_) => failed += 1,
            }
            i += 1;
        }
        burst += 1;
        let _ = writeln!(out, "burst {burst} opened {opened} failed {failed}");
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = writeln!(out, "done {opened} {failed}");
    let _ = out.flush();
    // Hold every socket until the test closes our standard input (or kills us).
    let mut line = String::new();
    let stdin = std::io::stdin();
    while stdin.lock().read_line(&mut line).is_ok_and(|n| n > 0) {
        line.clear();
    }
    drop(held);
}
