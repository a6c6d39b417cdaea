//! [`Responder`] on tokio.

use std::net::SocketAddr;
use std::sync::Arc;

use revtun_core::responder::ResponderConfig;
use revtun_driver::tls::TlsServerSource;
use revtun_driver::{ClaimError, HandshakeListener, ResponderHandle, ResponderOptions, StartError};

use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::runtime::MultiListener;
use crate::{TokioRuntime, TunnelStream};

/// The responder side on tokio: accepts initiators' handshakes and claims tunnels. Cheap to clone; see
/// [`revtun_driver::ResponderHandle`], whose methods (`local_addr`, `nodes`, `stats`, `counts`) it offers
/// through `Deref`. It shuts down when the last clone is dropped.
///
/// ```no_run
/// use revtun_tokio::Responder;
/// use revtun_tokio::core::responder::ResponderConfig;
/// use tokio::io::AsyncWriteExt;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let responder = Responder::bind("127.0.0.1:9000".parse()?, ResponderConfig::default()).await?;
/// let mut stream = responder.connect("edge-1").await?;
/// stream.write_all(b"hello").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Responder {
    inner: ResponderHandle,
}

impl Responder {
    /// Binds `addr` on the current tokio runtime and serves handshakes there.
    ///
    /// # Errors
    /// See [`ResponderHandle::bind`].
    pub async fn bind(addr: SocketAddr, config: ResponderConfig) -> Result<Self, StartError> {
        Self::bind_with(addr, config, ResponderOptions::default()).await
    }

    /// [`bind`](Self::bind) with options (seed, authorizer).
    ///
    /// # Errors
    /// See [`ResponderHandle::bind`].
    pub async fn bind_with(
        addr: SocketAddr,
        config: ResponderConfig,
        options: ResponderOptions,
    ) -> Result<Self, StartError> {
        let rt = Arc::new(TokioRuntime::current());
        let inner = ResponderHandle::bind(rt, addr, config, options).await?;
        Ok(Self { inner })
    }

    /// Binds every address of `addrs` (a listener's `address` and `additional_addresses`) and serves
    /// handshakes on all of them, into one pool, with the options' tunnel TLS. Returns the responder and
    /// the bound addresses, in order (with the ports the system chose for port 0).
    ///
    /// # Errors
    /// See [`ResponderHandle::serve`]; an empty `addrs` is an I/O error.
    pub async fn bind_many(
        addrs: &[SocketAddr],
        config: ResponderConfig,
        options: ResponderOptions,
    ) -> Result<(Self, Vec<SocketAddr>), StartError> {
        let tls = options.tunnel_tls.clone();
        Self::bind_listeners(&[(addrs.to_vec(), tls)], config, options).await
    }

    /// Binds several handshake listeners — each a list of addresses and its own tunnel TLS — and
    /// serves handshakes on all of them, into one pool. Returns the responder and every bound address,
    /// in order.
    ///
    /// # Errors
    /// See [`ResponderHandle::serve_listeners`]; a listener without addresses is an I/O error.
    pub async fn bind_listeners(
        listeners: &[(Vec<SocketAddr>, Option<TlsServerSource>)],
        config: ResponderConfig,
        options: ResponderOptions,
    ) -> Result<(Self, Vec<SocketAddr>), StartError> {
        config.validate()?;
        let mut bound = Vec::new();
        let mut handshake = Vec::with_capacity(listeners.len());
        for (addrs, tls) in listeners {
            let listener = MultiListener::bind(addrs).await?;
            bound.extend(listener.local_addrs()?);
            handshake.push(HandshakeListener {
                listener: Box::new(listener),
                tls: tls.clone(),
            });
        }
        let rt = Arc::new(TokioRuntime::current());
        let inner = ResponderHandle::serve_listeners(rt, handshake, config, options)?;
        Ok((Self { inner }, bound))
    }

    /// Claims an idle tunnel of a cluster or node id. See [`ResponderHandle::connect`].
    ///
    /// # Errors
    /// [`ClaimError::Timeout`] after `claim_timeout`; [`ClaimError::Shutdown`] after shutdown.
    pub async fn connect(&self, id: &str) -> Result<TunnelStream, ClaimError> {
        Ok(self.inner.connect(id).await?.compat())
    }

    /// [`connect`](Self::connect) within a tenant (tenant isolation).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_in_tenant(
        &self,
        id: &str,
        tenant: &str,
    ) -> Result<TunnelStream, ClaimError> {
        Ok(self.inner.connect_in_tenant(id, tenant).await?.compat())
    }

    /// Stops accepting, closes idle tunnels, and waits until every task of the responder has ended.
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

impl std::ops::Deref for Responder {
    type Target = ResponderHandle;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}
