//! Credentials from the plan: the responder's [`Policy`] (token file watched and re-read on change,
//! allow-list patterns, certificate identity binding) and the initiator's bearer token (watched and
//! given to its listeners on change).

use std::path::Path;
use std::sync::Arc;

use revtun_core::config::AuthPlan;
use revtun_core::policy::Policy;
use revtun_core::responder::Authorizer;
use revtun_tokio::TokioRuntime;
use revtun_tokio::driver::Runtime;
use revtun_tokio::driver::auth_files::{
    BearerTokenFile, BearerTokenListener, DEFAULT_RELOAD_INTERVAL, watch_token_file,
};

/// The responder's authorizer for `plan`; `None` when the plan checks nothing (every handshake is
/// accepted). The token file, if any, is read now (an error stops the start) and re-read when it
/// changes, at most once a second, by a task on the current tokio runtime.
pub fn responder_policy(plan: &AuthPlan) -> anyhow::Result<Option<Arc<dyn Authorizer>>> {
    let tokens = match &plan.bearer_token_file {
        Some(path) => {
            let rt: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
            Some(watch_token_file(&rt, path, DEFAULT_RELOAD_INTERVAL)?)
        }
        None => None,
    };
    let policy: Policy = plan.policy(tokens).map_err(anyhow::Error::msg)?;
    Ok(policy
        .checks_something()
        .then(|| Arc::new(policy) as Arc<dyn Authorizer>))
}

/// Reads the initiator's bearer token file now (an error stops the start); give it to
/// [`watch_initiator_token`] once the listeners sending it run.
pub fn initiator_token(path: &Path) -> anyhow::Result<BearerTokenFile> {
    Ok(BearerTokenFile::read(path, DEFAULT_RELOAD_INTERVAL)?)
}

/// Re-reads the initiator's bearer token file when it changes, at most once a second, by a task on the
/// current tokio runtime: each listener gets `authorization: Bearer <new token>` after its other extra
/// headers for its next handshakes. The task ends once every listener is gone.
pub fn watch_initiator_token(file: BearerTokenFile, listeners: Vec<BearerTokenListener>) {
    let rt: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
    file.watch(&rt, listeners);
}
