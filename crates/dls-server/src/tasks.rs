//! Starting tasks in the node's span. `start` enters a span that names the node
//! (`node-name`); every task the service starts — listeners, connections, the contact-me
//! sender, retention, and the work handed to blocking threads — is started here, so that it
//! runs in the span it was started from and every log line of the service carries the
//! node's name. A blocking thread also gets the caller's subscriber (the process's one in
//! `dls serve`; a test's own where a test set one for its thread).

use std::future::Future;

use tokio::task::JoinHandle;
use tracing::Instrument;

/// `tokio::spawn`, in the current span.
pub(crate) fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_span())
}

/// `tokio::task::spawn_blocking`, in the current span and with the current subscriber.
pub(crate) fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    tokio::task::spawn_blocking(move || tracing::dispatcher::with_default(&dispatch, || span.in_scope(f)))
}
