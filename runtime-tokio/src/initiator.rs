//! [`ReverseListener`] on tokio.

use std::io;
use std::sync::Arc;

use revtun_core::initiator::InitiatorConfig;
use revtun_driver::{HostSource, ListenerOptions, StartError, TunnelInfo};

use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::{TokioRuntime, TunnelStream};

/// The initiator side on tokio: keeps tunnels to the responder's hosts and yields each claimed one.
/// See [`revtun_driver::ReverseListener`], whose methods (`stats`, `counts`) it offers through `Deref`;
/// dropping it closes every tunnel not yet accepted.
///
/// ```no_run
/// use revtun_tokio::core::initiator::{InitiatorConfig, TargetCluster};
/// use revtun_tokio::{HostSource, ReverseListener};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # async fn demo() -> std::io::Result<()> {
/// let target = TargetCluster { name: "responder".into(), count: 2 };
/// let config = InitiatorConfig::new("edge-1", "edge", "", vec![target]);
/// let hosts = HostSource::Static(vec!["127.0.0.1:9000".parse().unwrap()]);
/// let listener = ReverseListener::bind(config, vec![("responder".into(), hosts)]).await?;
/// loop {
///     let (mut tunnel, info) = listener.accept().await?;
///     tokio::spawn(async move {
///         let mut buf = [0u8; 1024];
///         while let Ok(n @ 1..) = tunnel.read(&mut buf).await {
///             if tunnel.write_all(&buf[..n]).await.is_err() { break; }
///         }
///         drop(info);
///     });
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct ReverseListener {
    inner: revtun_driver::ReverseListener,
}

impl ReverseListener {
    /// Starts the initiator on the current tokio runtime with default options: one [`HostSource`] per
    /// target cluster of `config`.
    ///
    /// # Errors
    /// See [`revtun_driver::ReverseListener::bind`].
    pub async fn bind(
        config: InitiatorConfig,
        clusters: Vec<(String, HostSource)>,
    ) -> Result<Self, StartError> {
        Self::bind_with(config, clusters, ListenerOptions::default()).await
    }

    /// [`bind`](Self::bind) with options (seed, accept backlog).
    ///
    /// # Errors
    /// See [`revtun_driver::ReverseListener::bind`].
    pub async fn bind_with(
        config: InitiatorConfig,
        clusters: Vec<(String, HostSource)>,
        options: ListenerOptions,
    ) -> Result<Self, StartError> {
        let rt = Arc::new(TokioRuntime::current());
        let inner = revtun_driver::ReverseListener::bind(rt, config, clusters, options).await?;
        Ok(Self { inner })
    }

    /// Waits for the responder to claim a tunnel.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotConnected`] once the listener has shut down.
    pub async fn accept(&self) -> io::Result<(TunnelStream, TunnelInfo)> {
        let (stream, info) = self.inner.accept().await?;
        Ok((stream.compat(), info))
    }

    /// Closes every tunnel not in use and waits until every task of the listener has ended.
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }

    /// The runtime-agnostic listener inside.
    pub fn into_inner(self) -> revtun_driver::ReverseListener {
        self.inner
    }
}

impl AsRef<revtun_driver::ReverseListener> for ReverseListener {
    fn as_ref(&self) -> &revtun_driver::ReverseListener {
        &self.inner
    }
}

impl std::ops::Deref for ReverseListener {
    type Target = revtun_driver::ReverseListener;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}
