//! [`Reloading`]: a rustls config built from PEM sources, rebuilt when one of its files changes.
//!
//! Each [`current`](Reloading::current) call (one per new TLS handshake) compares the files' fingerprints
//! (modification time, length, inode) with the ones of the last build, at most once per reload interval
//! (default [`DEFAULT_RELOAD_INTERVAL`]). A change rebuilds the config; a rebuild that fails (a file
//! half-written, a key that does not match) is logged and the previous config stays in use until the
//! files change again. Sessions already established keep the config they started with.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::TlsError;
use super::pem::{Fingerprint, PemSource};

/// How often, at most, a TLS source looks at its files' metadata.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Settings that a rustls config is built from.
pub(crate) trait Build: Send + Sync + 'static {
    /// The rustls config.
    type Config: Send + Sync + 'static;
    /// Which side, for log lines (`server` or `client`).
    const SIDE: &'static str;
    /// Every PEM source the config reads.
    fn sources(&self) -> Vec<&PemSource>;
    /// Reads the sources and builds the config.
    fn build(&self) -> Result<Self::Config, TlsError>;
}

/// A config and the settings to rebuild it from; see the [module documentation](self).
pub(crate) struct Reloading<B: Build> {
    settings: B,
    state: Mutex<State<B::Config>>,
}

struct State<C> {
    config: Arc<C>,
    seen: Vec<Option<Fingerprint>>,
    checked: Instant,
    interval: Duration,
}

impl<B: Build> Reloading<B> {
    /// Builds the config once; errors here are the caller's (a program refuses to start).
    pub fn new(settings: B) -> Result<Self, TlsError> {
        let seen = fingerprints(&settings);
        let config = Arc::new(settings.build()?);
        Ok(Self {
            settings,
            state: Mutex::new(State {
                config,
                seen,
                checked: Instant::now(),
                interval: DEFAULT_RELOAD_INTERVAL,
            }),
        })
    }

    pub fn settings(&self) -> &B {
        &self.settings
    }

    /// Sets how often, at most, the files are looked at (`Duration::ZERO`: at every handshake).
    pub fn set_interval(&self, interval: Duration) {
        self.lock().interval = interval;
    }

    /// The config for a new handshake, rebuilt first if a file changed (see the module documentation).
    pub fn current(&self) -> Arc<B::Config> {
        let mut state = self.lock();
        let now = Instant::now();
        if now.saturating_duration_since(state.checked) >= state.interval {
            state.checked = now;
            let seen = fingerprints(&self.settings);
            if seen != state.seen {
                state.seen = seen;
                match self.settings.build() {
                    Ok(config) => {
                        tracing::info!(side = B::SIDE, "TLS certificates reloaded");
                        state.config = Arc::new(config);
                    }
                    Err(e) => {
                        tracing::warn!(side = B::SIDE, error = %e, "TLS reload failed; the previous certificates stay in use");
                    }
                }
            }
        }
        state.config.clone()
    }

    /// Rebuilds the config now, whatever the fingerprints say.
    ///
    /// # Errors
    /// The files cannot be loaded; the previous config stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let seen = fingerprints(&self.settings);
        let config = Arc::new(self.settings.build()?);
        let mut state = self.lock();
        state.config = config;
        state.seen = seen;
        state.checked = Instant::now();
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State<B::Config>> {
        // A panic while holding the lock cannot leave the state half-changed: every field is replaced
        // whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn fingerprints(settings: &impl Build) -> Vec<Option<Fingerprint>> {
    settings
        .sources()
        .into_iter()
        .map(PemSource::fingerprint)
        .collect()
}
