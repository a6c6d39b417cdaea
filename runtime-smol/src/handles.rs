//! [`ReverseListener`] and [`Responder`] on async-io: the driver's handles, started on a
//! [`SmolRuntime`]. Their streams are the driver's [`TunnelStream`](revtun_driver::TunnelStream)
//! (futures-io already), so every other method is the driver's, reached through `Deref`.

use std::net::SocketAddr;
use std::sync::Arc;

use revtun_core::initiator::InitiatorConfig;
use revtun_core::responder::ResponderConfig;
use revtun_driver::{HostSource, ListenerOptions, ResponderHandle, ResponderOptions, StartError};

use crate::SmolRuntime;

/// The initiator side on async-io: keeps tunnels to the responder's hosts and yields each claimed one
/// from `accept()`. See [`revtun_driver::ReverseListener`] (reached through `Deref`); dropping it
/// closes every tunnel not yet accepted.
#[derive(Debug)]
pub struct ReverseListener {
    inner: revtun_driver::ReverseListener,
}

impl ReverseListener {
    /// Starts the initiator on smol's global executor with default options: one [`HostSource`] per
    /// target cluster of `config`.
    ///
    /// # Errors
    /// See [`revtun_driver::ReverseListener::bind`].
    pub async fn bind(
        config: InitiatorConfig,
        clusters: Vec<(String, HostSource)>,
    ) -> Result<Self, StartError> {
        Self::bind_on(
            SmolRuntime::new(),
            config,
            clusters,
            ListenerOptions::default(),
        )
        .await
    }

    /// [`bind`](Self::bind) on a chosen [`SmolRuntime`] (e.g. a supplied executor), with options.
    ///
    /// # Errors
    /// See [`revtun_driver::ReverseListener::bind`].
    pub async fn bind_on(
        rt: SmolRuntime,
        config: InitiatorConfig,
        clusters: Vec<(String, HostSource)>,
        options: ListenerOptions,
    ) -> Result<Self, StartError> {
        let inner =
            revtun_driver::ReverseListener::bind(Arc::new(rt), config, clusters, options).await?;
        Ok(Self { inner })
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

/// The responder side on async-io: accepts initiators' handshakes and claims tunnels with
/// `connect(id)`. Cheap to clone; see [`ResponderHandle`] (reached through `Deref`). It shuts down
/// when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Responder {
    inner: ResponderHandle,
}

impl Responder {
    /// Binds `addr` on smol's global executor and serves handshakes there.
    ///
    /// # Errors
    /// See [`ResponderHandle::bind`].
    pub async fn bind(addr: SocketAddr, config: ResponderConfig) -> Result<Self, StartError> {
        Self::bind_on(
            SmolRuntime::new(),
            addr,
            config,
            ResponderOptions::default(),
        )
        .await
    }

    /// [`bind`](Self::bind) on a chosen [`SmolRuntime`], with options (seed, authorizer).
    ///
    /// # Errors
    /// See [`ResponderHandle::bind`].
    pub async fn bind_on(
        rt: SmolRuntime,
        addr: SocketAddr,
        config: ResponderConfig,
        options: ResponderOptions,
    ) -> Result<Self, StartError> {
        let inner = ResponderHandle::bind(Arc::new(rt), addr, config, options).await?;
        Ok(Self { inner })
    }

    /// Stops accepting, closes idle tunnels, and waits until every task of the responder has ended.
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }

    /// The runtime-agnostic handle inside.
    pub fn into_inner(self) -> ResponderHandle {
        self.inner
    }
}

impl std::ops::Deref for Responder {
    type Target = ResponderHandle;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}
