//! One pull consumer's messages, each handled in a task of its own, a bounded number at once.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Runs `handle` on each message of `consumer`, at most `slots` at once, each in a task of its own
/// within `span(&msg)` (continuing the trace the message carries), until `stop`. A message is
/// taken only once a slot is free, and a pull asks for no more than `slots`: one waiting behind
/// many slow ones would outlive its ack wait and be handed out again, elsewhere too. After a
/// failure it pulls again a second later; at the end it waits until every handled message is
/// finished.
pub(super) async fn consume<F, Fut>(
    consumer: &jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    slots: usize,
    stop: &CancellationToken,
    what: &str,
    span: impl Fn(&jetstream::Message) -> tracing::Span,
    handle: F,
) where
    F: Fn(jetstream::Message) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let free = Arc::new(Semaphore::new(slots));
    while !stop.is_cancelled() {
        let result = async {
            let mut messages = clokio_bus::events::messages(consumer, slots).await?;
            loop {
                let permit = free.clone().acquire_owned().await?;
                let Some(msg) = next_unless_stopped(&mut messages, stop).await else {
                    break;
                };
                let msg = msg?;
                let span = span(&msg);
                clokio_bus::trace::continue_from(&span, msg.headers.as_ref());
                let task = handle(msg);
                tokio::spawn(tracing::Instrument::instrument(
                    async move {
                        task.await;
                        drop(permit);
                    },
                    span,
                ));
            }
            Ok::<(), async_nats::Error>(())
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(%err, "{what} consumer failed; retrying");
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    let _ = free
        .acquire_many(u32::try_from(slots).unwrap_or(u32::MAX))
        .await;
}

/// The consumer's next message, or `None` once `stop` is cancelled. Messages already pulled but
/// not started are handed back at once (NAK), so another replica takes them without waiting for
/// their ack deadline.
async fn next_unless_stopped(
    messages: &mut jetstream::consumer::pull::Stream,
    stop: &CancellationToken,
) -> Option<Result<jetstream::Message, async_nats::Error>> {
    tokio::select! {
        biased;
        () = stop.cancelled() => {
            // What is already here arrives at once; stop at the first pause (or after 500 ms).
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while tokio::time::Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(20), messages.next()).await {
                    Ok(Some(Ok(msg))) => {
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                    }
                    _ => break,
                }
            }
            None
        }
        msg = messages.next() => msg.map(|m| m.map_err(Into::into)),
    }
}

/// Runs `work`, telling JetStream every `every` (a third of the consumer's ack wait) that `msg` is
/// still being handled, so it is not handed out again meanwhile.
pub(super) async fn keeping_alive<T>(
    msg: &jetstream::Message,
    every: Duration,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep(every) => {
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        }
    }
}
