//! An initiator with no async runtime at all: revtun-core driven by `std::net` sockets, one thread per
//! socket, and `std::time::Instant`. It keeps tunnels to a responder and echoes (or, with a third
//! argument, proxies to a local address) every tunnel the responder claims.
//!
//! ```text
//! cargo run -p revtun-core --example blocking_initiator -- <responder ip:port> <node id> [local ip:port]
//! ```
//!
//! # How it drives the core
//! - One **machine thread** owns the [`Initiator`]. It waits on one channel with a timeout of
//!   `poll_timeout`, feeds each message with `Instant::now()`, then drains `poll_transmit` (written at
//!   once, blocking), `poll_command` (a dial thread per `Dial`, a shutdown per `Close`) and `poll_event`.
//! - One **thread per socket** dials, then reads. After each read it waits for the machine's answer
//!   before it reads again, so nothing is read past a claim; on `Claimed` the same thread owns the socket
//!   and serves it (the bytes the core already read first), then reports the end of the tunnel.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stdout,
    reason = "this example is a driver: it owns sockets, threads and clocks, which the core never does"
)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use revtun_core::command::{Command, ConnId};
use revtun_core::initiator::{
    ConnectFailure, Initiator, InitiatorConfig, InitiatorEvent, TargetCluster,
};

/// What the blocking initiator connects to and serves.
#[derive(Clone, Debug)]
pub struct Options {
    /// The responder's handshake address (the one host of the target cluster `responder`).
    pub responder: SocketAddr,
    /// The node id sent in the handshake (cluster `blocking`, empty tenant).
    pub node: String,
    /// Idle tunnels to keep.
    pub count: u32,
    /// Proxy claimed tunnels to this local service instead of echoing.
    pub proxy_to: Option<SocketAddr>,
}

/// Messages to the machine thread.
enum Msg {
    Connected(ConnId, TcpStream, Sender<Answer>),
    ConnectFailed(ConnId, io::ErrorKind),
    Input(ConnId, Vec<u8>),
    Closed(ConnId),
    Stop,
}

/// The machine's answer to a socket thread after each read.
enum Answer {
    ReadMore,
    Claimed(Vec<u8>),
}

/// A running blocking initiator; [`stop`](Self::stop) ends it.
pub struct Running {
    to_machine: Sender<Msg>,
    machine: JoinHandle<io::Result<()>>,
}

impl Running {
    /// Runs until the machine thread ends (it does not, unless stopped).
    pub fn wait(self) -> io::Result<()> {
        self.machine
            .join()
            .map_err(|_| io::Error::other("machine thread panicked"))?
    }

    /// Closes every tunnel not in use and waits for the machine thread. Claimed tunnels end when their
    /// peer closes them.
    pub fn stop(self) -> io::Result<()> {
        let _ = self.to_machine.send(Msg::Stop);
        self.machine
            .join()
            .map_err(|_| io::Error::other("machine thread panicked"))?
    }
}

/// Starts the initiator on its own threads.
pub fn start(options: Options) -> io::Result<Running> {
    let target = TargetCluster {
        name: "responder".into(),
        count: options.count,
    };
    let config = InitiatorConfig::new(&options.node, "blocking", "", vec![target]);
    let seed = u64::try_from(unix_ms())
        .unwrap_or(0)
        .to_le_bytes()
        .repeat(4);
    let seed: [u8; 32] = seed.try_into().unwrap_or([7; 32]);
    let mut core = Initiator::new(config, seed, Instant::now()).map_err(io::Error::other)?;
    core.set_hosts("responder", &[options.responder], Instant::now())
        .map_err(io::Error::other)?;
    let (to_machine, inbox) = mpsc::channel();
    let tx = to_machine.clone();
    let machine = thread::spawn(move || machine(core, inbox, tx, options.proxy_to));
    Ok(Running {
        to_machine,
        machine,
    })
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A connection the machine knows: its socket for writes and closes, and its reader's answer channel.
struct Conn {
    socket: TcpStream,
    answer: Sender<Answer>,
}

fn machine(
    mut core: Initiator,
    inbox: Receiver<Msg>,
    to_machine: Sender<Msg>,
    proxy_to: Option<SocketAddr>,
) -> io::Result<()> {
    let mut conns: BTreeMap<ConnId, Conn> = BTreeMap::new();
    let mut stopping = false;
    let mut reading: Option<ConnId> = None;
    loop {
        // Drain every output queue after every input (transmits before commands and events).
        while let Some(transmit) = core.poll_transmit() {
            if let Some(conn) = conns.get_mut(&transmit.conn) {
                // A failed write shows up as a failed read on the socket thread.
                let _ = conn.socket.write_all(&transmit.data);
            }
        }
        while let Some(command) = core.poll_command() {
            match command {
                Command::Dial { conn, addr } => dial(conn, addr, to_machine.clone(), proxy_to),
                Command::Close { conn } => {
                    if let Some(conn) = conns.remove(&conn) {
                        let _ = conn.socket.shutdown(Shutdown::Both);
                    }
                }
            }
        }
        let mut claimed = Vec::new();
        while let Some(event) = core.poll_event() {
            if let InitiatorEvent::Claimed { conn, data, .. } = event {
                claimed.push((conn, data.to_vec()));
            }
        }
        for (conn, data) in claimed {
            if let Some(conn) = conns.remove(&conn) {
                let _ = conn.answer.send(Answer::Claimed(data));
            }
        }
        // The socket thread waiting on this input reads on unless the input claimed or closed it.
        if let Some(conn) = reading.take().and_then(|conn| conns.get(&conn)) {
            let _ = conn.answer.send(Answer::ReadMore);
        }
        if stopping {
            return Ok(());
        }

        let message = match core.poll_timeout() {
            Some(at) => match inbox.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            },
            None => Some(inbox.recv().map_err(io::Error::other)?),
        };
        let now = Instant::now();
        match message {
            None => {}
            Some(Msg::Connected(conn, socket, answer)) => {
                conns.insert(conn, Conn { socket, answer });
                let ms = u64::try_from(unix_ms()).unwrap_or(u64::MAX);
                core.handle_connected(conn, now, ms);
            }
            Some(Msg::ConnectFailed(conn, kind)) => {
                core.handle_connect_failed(conn, ConnectFailure::from_io_kind(kind), now);
            }
            Some(Msg::Input(conn, bytes)) => {
                core.handle_input(conn, &bytes, now);
                reading = Some(conn);
            }
            Some(Msg::Closed(conn)) => {
                conns.remove(&conn);
                core.handle_closed(conn, now);
            }
            Some(Msg::Stop) => {
                core.shutdown(now);
                stopping = true;
            }
        }
        core.handle_timeout(Instant::now());
    }
}

/// Dials `addr` on a thread of its own, which then reads the socket for the machine.
fn dial(conn: ConnId, addr: SocketAddr, to_machine: Sender<Msg>, proxy_to: Option<SocketAddr>) {
    thread::spawn(move || {
        let socket = match TcpStream::connect(addr) {
            Ok(socket) => socket,
            Err(e) => {
                let _ = to_machine.send(Msg::ConnectFailed(conn, e.kind()));
                return;
            }
        };
        let _ = socket.set_nodelay(true);
        let (answer_tx, answers) = mpsc::channel();
        let Ok(writer) = socket.try_clone() else {
            let _ = to_machine.send(Msg::ConnectFailed(conn, io::ErrorKind::Other));
            return;
        };
        if to_machine
            .send(Msg::Connected(conn, writer, answer_tx))
            .is_err()
        {
            return;
        }
        read_for_machine(conn, socket, &to_machine, &answers, proxy_to);
    });
}

/// Reads and reports until the socket ends or the tunnel is claimed (then serves it).
fn read_for_machine(
    conn: ConnId,
    mut socket: TcpStream,
    to_machine: &Sender<Msg>,
    answers: &Receiver<Answer>,
    proxy_to: Option<SocketAddr>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to_machine
            .send(Msg::Input(conn, buf[..n].to_vec()))
            .is_err()
        {
            return;
        }
        match answers.recv() {
            Ok(Answer::ReadMore) => {}
            Ok(Answer::Claimed(data)) => {
                let _ = serve(socket, &data, proxy_to);
                break;
            }
            Err(_) => return, // the machine closed the connection
        }
    }
    let _ = to_machine.send(Msg::Closed(conn));
}

/// Serves a claimed tunnel: echo, or a relay to `proxy_to` with half-close each way.
fn serve(mut tunnel: TcpStream, first: &[u8], proxy_to: Option<SocketAddr>) -> io::Result<()> {
    let Some(local) = proxy_to else {
        tunnel.write_all(first)?;
        let mut reader = tunnel.try_clone()?;
        io::copy(&mut reader, &mut tunnel)?;
        return tunnel.shutdown(Shutdown::Write);
    };
    let mut service = TcpStream::connect(local)?;
    service.write_all(first)?;
    let (mut tunnel_r, mut service_w) = (tunnel.try_clone()?, service.try_clone()?);
    let up = thread::spawn(move || {
        let _ = io::copy(&mut tunnel_r, &mut service_w);
        let _ = service_w.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut service, &mut tunnel);
    let _ = tunnel.shutdown(Shutdown::Write);
    up.join()
        .map_err(|_| io::Error::other("relay thread panicked"))
}

#[allow(
    dead_code,
    reason = "the test includes this file and calls `start` instead"
)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: blocking_initiator <responder ip:port> <node id> [local ip:port]";
    let responder = args.next().ok_or(usage)?.parse()?;
    let node = args.next().ok_or(usage)?;
    let proxy_to = args.next().map(|a| a.parse()).transpose()?;
    let options = Options {
        responder,
        node,
        count: 2,
        proxy_to,
    };
    println!("keeping {} tunnels to {responder}", options.count);
    start(options)?.wait()?;
    Ok(())
}
