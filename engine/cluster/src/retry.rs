//! Retrying requests whose route went stale (a range that just split or
//! changed leader) with jittered backoff.

use holo_kv::KvError;
use holo_kv::client::RetryPolicy;

/// Attempts to reach the meta range's leader (or a range's leaseholder).
pub(crate) const META_ATTEMPTS: usize = 40;

/// Runs `op` until it stops failing with a stale route or `Unavailable`,
/// at most [`META_ATTEMPTS`] times. `on_stale` learns from each failure and
/// says whether to retry at once (a named leader) instead of after a
/// jittered backoff.
pub(crate) async fn retry_stale<T, Fut>(
    mut op: impl FnMut() -> Fut,
    mut on_stale: impl FnMut(&KvError) -> bool,
) -> Result<T, KvError>
where
    Fut: std::future::Future<Output = Result<T, KvError>>,
{
    let retry = RetryPolicy::default();
    let mut last = None;
    for attempt in 0..META_ATTEMPTS {
        match op().await {
            Err(e) if e.is_stale_route() || matches!(e, KvError::Unavailable(_)) => {
                let at_once = on_stale(&e);
                last = Some(e);
                if !at_once {
                    tokio::time::sleep(retry.backoff(attempt)).await;
                }
            }
            other => return other,
        }
    }
    Err(KvError::RoutingExhausted {
        attempts: META_ATTEMPTS,
        last: last.map_or_else(String::new, |e| e.to_string()),
    })
}
