//! The one HTTP/1.1 accept loop behind both listeners (the local API and
//! `/metrics`), hardened against its own clients: a connection cap that
//! sheds the oldest idle connection rather than the newest caller, a
//! deadline on every request head (which is also the keep-alive idle
//! timeout), a deadline on every request, and a shutdown that gives
//! in-flight requests a bounded drain and then drops whatever is left.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How much a server gives its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most. A connection past it evicts the oldest
    /// one with no request in flight, so idle or half-sent connections
    /// cannot lock out a caller who sends a whole request at once.
    pub max_connections: usize,
    /// A connection must deliver a complete request head this soon after
    /// it opens or after its previous answer; else it is closed.
    pub head: Duration,
    /// From a complete head to the answer (body read included); past it the
    /// client gets 408 and the connection is closed.
    pub request: Duration,
    /// After shutdown is asked: how long requests in flight may still run.
    pub drain: Duration,
}

/// Serves `router` on `listener` within `limits` until `shutdown`
/// resolves; then stops accepting, lets idle connections go at once, and
/// returns within `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Registry::default();
    let stopping = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Some(conn) = registry.admit(limits.max_connections) else {
                        tracing::debug!("connection refused: every connection has a request in flight");
                        continue;
                    };
                    tasks.spawn(connection(stream, router.clone(), limits, conn, stopping.clone()));
                }
                // Out of descriptors or a connection reset before accept:
                // neither is a reason to stop serving the others.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    stopping.cancel();
    let drained =
        tokio::time::timeout(limits.drain, async { while tasks.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!(
            left = tasks.len(),
            drain_ms = limits.drain.as_millis() as u64,
            "shutdown: closed connections still in a request"
        );
    }
    Ok(())
}

/// One connection, until it ends, is evicted, or the drain ends it.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    conn: Admitted,
    stopping: CancellationToken,
) {
    let busy = conn.busy.clone();
    let service = hyper::service::service_fn(move |req| {
        answer(router.clone(), req, limits.request, Busy::enter(&busy))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.head).keep_alive(true);
    let http = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(http);
    tokio::select! {
        _ = http.as_mut() => return,
        () = conn.evicted.cancelled() => return,
        () = stopping.cancelled() => {}
    }
    // Idle, or still sending its head: nothing to finish.
    if conn.busy.load(Relaxed) == 0 {
        return;
    }
    // The caller of `serve` bounds how long this may take.
    http.as_mut().graceful_shutdown();
    let _ = http.await;
}

async fn answer(
    mut router: Router,
    req: Request<Incoming>,
    deadline: Duration,
    _busy: Busy,
) -> Result<Response<Body>, Infallible> {
    let call = tower_service::Service::call(&mut router, req);
    match tokio::time::timeout(deadline, call).await {
        Ok(answered) => answered,
        Err(_) => {
            let mut response = Response::new(Body::from("request not completed in time\n"));
            *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            Ok(response)
        }
    }
}

/// Counts a request in flight on its connection for as long as it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Relaxed);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The open connections, oldest first.
#[derive(Default, Clone)]
struct Registry(Arc<Mutex<Open>>);

#[derive(Default)]
struct Open {
    next_id: u64,
    by_age: BTreeMap<u64, Entry>,
}

struct Entry {
    busy: Arc<AtomicUsize>,
    evict: CancellationToken,
}

/// A connection's handle on its registry slot; leaving frees the slot.
struct Admitted {
    id: u64,
    busy: Arc<AtomicUsize>,
    evicted: CancellationToken,
    registry: Registry,
}

impl Registry {
    fn open(&self) -> MutexGuard<'_, Open> {
        // Entries are inserted and removed whole: a panic cannot leave one half-made.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a new connection, evicting the oldest idle one when all
    /// `max` are taken; None when every one has a request in flight.
    fn admit(&self, max: usize) -> Option<Admitted> {
        let mut open = self.open();
        if open.by_age.len() >= max {
            let idle =
                open.by_age.iter().find(|(_, e)| e.busy.load(Relaxed) == 0).map(|(&id, _)| id)?;
            if let Some(e) = open.by_age.remove(&idle) {
                e.evict.cancel();
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let entry = Entry { busy: Arc::default(), evict: CancellationToken::new() };
        let admitted = Admitted {
            id,
            busy: entry.busy.clone(),
            evicted: entry.evict.clone(),
            registry: self.clone(),
        };
        open.by_age.insert(id, entry);
        Some(admitted)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.open().by_age.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_registry_evicts_the_oldest_idle_connection_only() {
        let r = Registry::default();
        let first = r.admit(2).unwrap();
        let second = r.admit(2).unwrap();
        let _busy = Busy::enter(&first.busy);
        let third = r.admit(2).unwrap();
        assert!(!first.evicted.is_cancelled(), "a connection in a request is never shed");
        assert!(second.evicted.is_cancelled());
        let _busy_too = Busy::enter(&third.busy);
        assert!(r.admit(2).is_none(), "all busy: the newcomer waits for none");
        drop(first);
        assert!(r.admit(2).is_some(), "a closed connection frees its slot");
    }
}
