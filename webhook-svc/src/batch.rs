//! Many tasks' single-row statements served by one task in batches: whatever arrived while the
//! previous batch was being served goes in the next, so under load a statement (and a commit)
//! serves hundreds of deliveries, and when idle a request waits for nothing but its own.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

type Waiting<T, R> = (T, oneshot::Sender<R>);

/// A handle to the serving task; it ends when every handle is dropped.
pub struct Batcher<T, R>(mpsc::Sender<Waiting<T, R>>);

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// `serve` answers a batch of at most `max` items with one answer per item, in order.
    pub fn start<F, Fut>(max: usize, serve: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<Waiting<T, R>>(max * 4);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max);
            while rx.recv_many(&mut batch, max).await > 0 {
                let (items, waiting): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.drain(..).unzip();
                for (answer, w) in serve(items).await.into_iter().zip(waiting) {
                    let _ = w.send(answer);
                }
            }
        });
        Self(tx)
    }

    /// `item`'s answer; None if the serving task is gone.
    pub async fn call(&self, item: T) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.0.send((item, tx)).await.ok()?;
        rx.await.ok()
    }
}
