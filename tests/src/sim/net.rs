//! Simulated TCP pipes between initiators and responders.
//!
//! A [`Pipe`] is one TCP connection: two ends (the initiator's and the responder's) and one byte flow per
//! direction. The model:
//! - **Latency.** Each pipe has a fixed one-way latency drawn when it is opened. Bytes written at `t`
//!   arrive at `t + latency` at the earliest, and never before bytes written earlier (in-order delivery).
//! - **Chunking.** A write is cut into 1–3 segments; segments that are due together are coalesced and then
//!   cut again into reads of random sizes (one read, random cuts, or byte by byte). So the reader sees any
//!   split, including several writes in one read (`RPINGhello`) and markers split across reads.
//! - **Slow delivery** (a fault): writes on the pipes of a slowed (initiator, responder) pair are sent
//!   byte by byte, 0–2 ms apart.
//! - **Close** = FIN: the closing end stops reading (bytes in flight to it are dropped), and its peer
//!   receives the FIN after every byte written before it. The world closes the peer's end when the FIN
//!   arrives (both machines and apps answer EOF by closing), so a pipe ends once both ends are closed.
//!   A write toward an end that is already closed is dropped.
//! - **Reset** closes both ends at once and drops everything in flight.
//! - **Partition** (a fault) between an initiator and a responder holds every flow of their pipes (TCP
//!   retransmits; nothing is lost) and every dial between them until it heals. **Stall** (a fault) holds one
//!   direction of one pipe: the peer stops reading for a while.
//!
//! Dials are not pipes yet: the world keeps them and opens the pipe when the dial is answered.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::rng::SimRng;

/// A pipe's id, unique within a run (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipeId(pub u64);

/// One end of a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    /// The initiator's end (it dialled).
    Initiator,
    /// The responder's end (it accepted).
    Responder,
}

impl End {
    /// The other end.
    pub fn peer(self) -> End {
        match self {
            End::Initiator => End::Responder,
            End::Responder => End::Initiator,
        }
    }

    fn index(self) -> usize {
        match self {
            End::Initiator => 0,
            End::Responder => 1,
        }
    }
}

#[derive(Clone, Debug)]
enum Item {
    Data(Bytes),
    Fin,
}

/// One direction of a pipe: segments in flight, in order.
#[derive(Clone, Debug, Default)]
struct Flow {
    queue: VecDeque<(Duration, Item)>,
    /// Arrival time of the last segment queued: later segments never arrive before it.
    last_at: Duration,
    /// The reader does not read before this time (a stall).
    stalled_until: Duration,
    /// Bytes ever queued (for the world's stream offsets).
    written: u64,
}

impl Flow {
    fn push(&mut self, at: Duration, item: Item) {
        let at = at.max(self.last_at);
        self.last_at = at;
        if let Item::Data(data) = &item {
            self.written += data.len() as u64;
        }
        self.queue.push_back((at, item));
    }

    /// When the front segment can be read, unless the flow is partitioned.
    fn next_at(&self) -> Option<Duration> {
        self.queue
            .front()
            .map(|(at, _)| (*at).max(self.stalled_until))
    }
}

/// One simulated TCP connection.
#[derive(Clone, Debug)]
pub struct Pipe {
    /// The initiator (index in the world) that dialled it.
    pub initiator: usize,
    /// The responder (index in the world) that accepted it.
    pub responder: usize,
    /// One-way latency.
    pub latency: Duration,
    /// Flows, indexed by the end that *reads* them.
    toward: [Flow; 2],
    open: [bool; 2],
}

impl Pipe {
    fn flow(&mut self, reader: End) -> &mut Flow {
        &mut self.toward[reader.index()]
    }

    /// Whether `end` is still open.
    pub fn is_open(&self, end: End) -> bool {
        self.open[end.index()]
    }

    /// Bytes ever written toward `reader`.
    pub fn written_toward(&self, reader: End) -> u64 {
        self.toward[reader.index()].written
    }
}

/// What arrives at one end of a pipe at one instant: data as the reads the reader sees, then maybe EOF.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The pipe.
    pub pipe: PipeId,
    /// The end that reads.
    pub to: End,
    /// The data, as separate reads, in order.
    pub reads: Vec<Bytes>,
    /// The peer's FIN follows the data: the reader must close its end ([`Net::close`]) once it has handled
    /// the data.
    pub fin: bool,
}

/// Every pipe of a run, the partitions and the slowed pairs.
#[derive(Debug)]
pub struct Net {
    pipes: BTreeMap<PipeId, Pipe>,
    next_pipe: u64,
    partitions: BTreeMap<(usize, usize), u32>,
    slow: BTreeMap<(usize, usize), u32>,
    rng: SimRng,
}

/// Why a write or close was refused: the world (or a machine) used an end that is not open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndClosed;

impl Net {
    /// An empty network drawing chunk sizes and spacing from `rng`.
    pub fn new(rng: SimRng) -> Self {
        Self {
            pipes: BTreeMap::new(),
            next_pipe: 0,
            partitions: BTreeMap::new(),
            slow: BTreeMap::new(),
            rng,
        }
    }

    /// Opens a pipe between initiator `initiator` and responder `responder`.
    pub fn open(&mut self, initiator: usize, responder: usize, latency: Duration) -> PipeId {
        let id = PipeId(self.next_pipe);
        self.next_pipe += 1;
        self.pipes.insert(
            id,
            Pipe {
                initiator,
                responder,
                latency,
                toward: [Flow::default(), Flow::default()],
                open: [true, true],
            },
        );
        id
    }

    /// The pipe, while at least one end is open or something is in flight.
    pub fn pipe(&self, id: PipeId) -> Option<&Pipe> {
        self.pipes.get(&id)
    }

    /// Whether `end` of `pipe` is open.
    pub fn is_open(&self, pipe: PipeId, end: End) -> bool {
        self.pipes.get(&pipe).is_some_and(|p| p.is_open(end))
    }

    /// Ids of the pipes that are not finished, in order.
    pub fn pipe_ids(&self) -> Vec<PipeId> {
        self.pipes.keys().copied().collect()
    }

    /// `from` writes `data` at `now`. Dropped (but `Ok`) when the peer's end is closed.
    ///
    /// # Errors
    /// `from` is not open: writing on a closed socket is a bug of the writer.
    pub fn write(
        &mut self,
        pipe: PipeId,
        from: End,
        data: Bytes,
        now: Duration,
    ) -> Result<(), EndClosed> {
        let slow = self
            .pipes
            .get(&pipe)
            .is_some_and(|p| self.slow.contains_key(&(p.initiator, p.responder)));
        let Some(p) = self.pipes.get_mut(&pipe) else {
            return Err(EndClosed);
        };
        if !p.is_open(from) {
            return Err(EndClosed);
        }
        let reader = from.peer();
        if !p.is_open(reader) || data.is_empty() {
            return Ok(());
        }
        let latency = p.latency;
        let flow = p.flow(reader);
        let mut at = now + latency;
        if slow {
            for i in 0..data.len() {
                flow.push(at, Item::Data(data.slice(i..=i)));
                at += Duration::from_micros(self.rng.range(0, 2_000));
            }
            return Ok(());
        }
        let mut rest = data;
        let pieces = self.rng.range(1, 3);
        for piece in 0..pieces {
            if rest.is_empty() {
                break;
            }
            let take = if piece + 1 == pieces {
                rest.len()
            } else {
                self.rng.range(1, rest.len() as u64) as usize
            };
            let chunk = rest.split_to(take);
            flow.push(at, Item::Data(chunk));
            if self.rng.chance(1, 4) {
                at += Duration::from_micros(self.rng.range(1, 1_000));
            }
        }
        Ok(())
    }

    /// `end` closes: it reads nothing more, and its peer gets the FIN after the bytes in flight.
    ///
    /// # Errors
    /// `end` was not open.
    pub fn close(&mut self, pipe: PipeId, end: End, now: Duration) -> Result<(), EndClosed> {
        let Some(p) = self.pipes.get_mut(&pipe) else {
            return Err(EndClosed);
        };
        if !p.is_open(end) {
            return Err(EndClosed);
        }
        p.open[end.index()] = false;
        p.flow(end).queue.clear();
        if p.is_open(end.peer()) {
            let at = now + p.latency;
            p.flow(end.peer()).push(at, Item::Fin);
        }
        self.collect(pipe);
        Ok(())
    }

    /// Closes both ends at once and drops everything in flight; returns which ends were open
    /// (`[initiator, responder]`).
    pub fn reset(&mut self, pipe: PipeId) -> [bool; 2] {
        let Some(p) = self.pipes.remove(&pipe) else {
            return [false, false];
        };
        p.open
    }

    /// Stalls the flow toward `reader` until `until` (the reader stops reading).
    pub fn stall(&mut self, pipe: PipeId, reader: End, until: Duration) {
        if let Some(p) = self.pipes.get_mut(&pipe) {
            let flow = p.flow(reader);
            flow.stalled_until = flow.stalled_until.max(until);
        }
    }

    /// Starts a partition between `initiator` and `responder` (partitions nest).
    pub fn partition(&mut self, initiator: usize, responder: usize) {
        *self.partitions.entry((initiator, responder)).or_default() += 1;
    }

    /// Ends one partition between `initiator` and `responder`.
    pub fn heal(&mut self, initiator: usize, responder: usize) {
        if let Some(n) = self.partitions.get_mut(&(initiator, responder)) {
            *n -= 1;
            if *n == 0 {
                self.partitions.remove(&(initiator, responder));
            }
        }
    }

    /// Whether `initiator` and `responder` are partitioned.
    pub fn is_partitioned(&self, initiator: usize, responder: usize) -> bool {
        self.partitions.contains_key(&(initiator, responder))
    }

    /// Starts (`on`) or ends a slow-delivery window for the pair (windows nest).
    pub fn set_slow(&mut self, initiator: usize, responder: usize, on: bool) {
        let key = (initiator, responder);
        if on {
            *self.slow.entry(key).or_default() += 1;
        } else if let Some(n) = self.slow.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.slow.remove(&key);
            }
        }
    }

    /// Whether any partition, stall or slow window is active.
    pub fn any_fault_active(&self, now: Duration) -> bool {
        !self.partitions.is_empty()
            || !self.slow.is_empty()
            || self
                .pipes
                .values()
                .any(|p| p.toward.iter().any(|f| f.stalled_until > now))
    }

    /// The earliest time something can be read, ignoring partitioned pipes (their heal is a scheduled
    /// fault event, so the world wakes up then anyway).
    pub fn next_event(&self) -> Option<Duration> {
        self.pipes
            .values()
            .filter(|p| !self.is_partitioned(p.initiator, p.responder))
            .flat_map(|p| p.toward.iter().filter_map(Flow::next_at))
            .min()
    }

    /// The next delivery due at `now` (in pipe order, the responder's end first), if any. Call it again
    /// after handling the delivery: handling may close ends or write more.
    pub fn take_due(&mut self, now: Duration) -> Option<Delivery> {
        let due = self.pipes.iter().find_map(|(&id, p)| {
            if self.is_partitioned(p.initiator, p.responder) {
                return None;
            }
            [End::Responder, End::Initiator]
                .into_iter()
                .find(|&end| p.toward[end.index()].next_at().is_some_and(|at| at <= now))
                .map(|end| (id, end))
        })?;
        let (id, to) = due;
        let p = self.pipes.get_mut(&id)?;
        let mut data = BytesMut::new();
        let mut fin = false;
        let flow = p.flow(to);
        while let Some((at, _)) = flow.queue.front() {
            if *at > now {
                break;
            }
            match flow.queue.pop_front() {
                Some((_, Item::Data(bytes))) => data.extend_from_slice(&bytes),
                Some((_, Item::Fin)) => {
                    fin = true;
                    break;
                }
                None => break,
            }
        }
        let reads = split_reads(&mut self.rng, data.freeze());
        self.collect(id);
        Some(Delivery {
            pipe: id,
            to,
            reads,
            fin,
        })
    }

    /// Forgets a pipe once both ends are closed and nothing is in flight.
    fn collect(&mut self, id: PipeId) {
        if self.pipes.get(&id).is_some_and(|p| {
            !p.open[0] && !p.open[1] && p.toward.iter().all(|f| f.queue.is_empty())
        }) {
            self.pipes.remove(&id);
        }
    }
}

/// Cuts `data` into the reads a reader sees: whole, random cuts, or byte by byte.
fn split_reads(rng: &mut SimRng, mut data: Bytes) -> Vec<Bytes> {
    if data.is_empty() {
        return Vec::new();
    }
    match rng.below(8) {
        0..=3 => vec![data],
        4..=6 => {
            let mut reads = Vec::new();
            while !data.is_empty() {
                let take = rng.range(1, data.len() as u64) as usize;
                reads.push(data.split_to(take));
            }
            reads
        }
        _ => (0..data.len()).map(|i| data.slice(i..=i)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(net: &mut Net, now: Duration) -> Vec<Delivery> {
        std::iter::from_fn(|| net.take_due(now)).collect()
    }

    fn bytes_of(deliveries: &[Delivery], to: End) -> Vec<u8> {
        deliveries
            .iter()
            .filter(|d| d.to == to)
            .flat_map(|d| d.reads.iter().flat_map(|r| r.iter().copied()))
            .collect()
    }

    #[test]
    fn in_order_after_latency_then_fin() {
        let mut net = Net::new(SimRng::new(1));
        let p = net.open(0, 0, Duration::from_millis(10));
        net.write(
            p,
            End::Initiator,
            Bytes::from_static(b"hello "),
            Duration::ZERO,
        )
        .unwrap();
        net.write(
            p,
            End::Initiator,
            Bytes::from_static(b"world"),
            Duration::from_millis(1),
        )
        .unwrap();
        net.close(p, End::Initiator, Duration::from_millis(2))
            .unwrap();
        assert!(drain(&mut net, Duration::from_millis(9)).is_empty());
        assert_eq!(net.next_event().unwrap(), Duration::from_millis(10));
        let got = drain(&mut net, Duration::from_millis(20));
        assert_eq!(bytes_of(&got, End::Responder), b"hello world");
        assert!(got.last().unwrap().fin);
        net.close(p, End::Responder, Duration::from_millis(20))
            .unwrap();
        assert!(net.pipe(p).is_none(), "both ends closed: pipe collected");
    }

    #[test]
    fn partition_and_stall_hold_bytes_until_healed() {
        let mut net = Net::new(SimRng::new(2));
        let p = net.open(0, 1, Duration::from_millis(5));
        net.partition(0, 1);
        net.write(
            p,
            End::Responder,
            Bytes::from_static(b"RPING"),
            Duration::ZERO,
        )
        .unwrap();
        assert!(drain(&mut net, Duration::from_secs(1)).is_empty());
        assert_eq!(net.next_event(), None);
        net.heal(0, 1);
        net.stall(p, End::Initiator, Duration::from_secs(2));
        assert_eq!(net.next_event(), Some(Duration::from_secs(2)));
        assert!(drain(&mut net, Duration::from_millis(1999)).is_empty());
        let got = drain(&mut net, Duration::from_secs(2));
        assert_eq!(bytes_of(&got, End::Initiator), b"RPING");
    }

    #[test]
    fn closed_ends_drop_and_refuse() {
        let mut net = Net::new(SimRng::new(3));
        let p = net.open(0, 0, Duration::from_millis(1));
        net.close(p, End::Responder, Duration::ZERO).unwrap();
        assert_eq!(net.close(p, End::Responder, Duration::ZERO), Err(EndClosed));
        assert_eq!(
            net.write(p, End::Responder, Bytes::from_static(b"x"), Duration::ZERO),
            Err(EndClosed)
        );
        // Toward a closed end: dropped.
        net.write(p, End::Initiator, Bytes::from_static(b"x"), Duration::ZERO)
            .unwrap();
        let got = drain(&mut net, Duration::from_secs(1));
        assert_eq!(got.len(), 1);
        assert!(got[0].fin && got[0].reads.is_empty() && got[0].to == End::Initiator);
        assert_eq!(net.reset(p), [true, false]);
    }

    #[test]
    fn slow_pairs_go_byte_by_byte() {
        let mut net = Net::new(SimRng::new(4));
        let p = net.open(2, 3, Duration::from_millis(1));
        net.set_slow(2, 3, true);
        net.write(
            p,
            End::Initiator,
            Bytes::from_static(b"abcdef"),
            Duration::ZERO,
        )
        .unwrap();
        net.set_slow(2, 3, false);
        let mut got = Vec::new();
        let mut now = Duration::ZERO;
        while let Some(at) = net.next_event() {
            now = at;
            got.extend(drain(&mut net, now));
        }
        assert_eq!(bytes_of(&got, End::Responder), b"abcdef");
        assert!(now <= Duration::from_millis(1 + 5 * 2));
    }
}
