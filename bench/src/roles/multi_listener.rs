//! Several handshake listeners as one driver [`Listener`], on any [`Runtime`]: the responder role
//! listens on 10+ ports into one pool (`count` is at most 1024 per host, so 10,000 tunnels need 10
//! hosts). One forwarding task per socket feeds a bounded queue; the tasks end when the listener is
//! dropped and their next accept finds the queue closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use revtun_driver::{BoxFuture, BoxStream, Listener, Runtime};

/// Accepted connections waiting for the responder's accept loop.
const QUEUE: usize = 64;

type Accepted = io::Result<(BoxStream, SocketAddr)>;

/// Every bound socket's connections, in one queue.
pub struct MultiListener {
    accepted: async_channel::Receiver<Accepted>,
    first: SocketAddr,
}

impl MultiListener {
    /// Binds every address of `addrs` on `rt`; returns the listener and the bound addresses in order.
    ///
    /// # Errors
    /// An address cannot be bound, or `addrs` is empty.
    pub async fn bind(
        rt: &Arc<dyn Runtime>,
        addrs: &[SocketAddr],
    ) -> io::Result<(Self, Vec<SocketAddr>)> {
        let (queue, accepted) = async_channel::bounded(QUEUE);
        let mut bound = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let mut listener = rt.bind(*addr).await?;
            bound.push(listener.local_addr()?);
            let queue = queue.clone();
            rt.spawn(Box::pin(async move {
                loop {
                    let next = listener.accept().await;
                    if queue.send(next).await.is_err() {
                        break;
                    }
                }
            }));
        }
        let first = *bound.first().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no handshake address to bind")
        })?;
        Ok((Self { accepted, first }, bound))
    }
}

impl Listener for MultiListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            self.accepted
                .recv()
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::NotConnected))?
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.first)
    }
}
