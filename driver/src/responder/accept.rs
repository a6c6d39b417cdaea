//! The accept loop: hands every accepted socket to the machine, until the machine stops.

use std::time::Duration;

use async_channel::Sender;

use crate::msg::Internal;
use crate::runtime::{Listener, Runtime};
use crate::tasks::StopSignal;
use crate::tls::TlsServerSource;

/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Accepts sockets and reports them (with the listener's tunnel TLS, if any) until `stop` fires or the
/// machine is gone. The listener is closed when the loop ends.
pub(crate) async fn accept_loop(
    rt: &dyn Runtime,
    mut listener: Box<dyn Listener>,
    tls: Option<TlsServerSource>,
    report: Sender<Internal>,
    stop: StopSignal,
) {
    loop {
        match stop.or_stop(listener.accept()).await {
            None => return,
            Some(Ok((stream, peer))) => {
                if report
                    .send(Internal::Accepted(stream, peer, tls.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "accept failed");
                let resume = rt.now() + ACCEPT_ERROR_PAUSE;
                if stop.or_stop(rt.sleep_until(resume)).await.is_none() {
                    return;
                }
            }
        }
    }
}
