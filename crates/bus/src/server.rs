//! Serving a bus service: one NATS micro service per service name, one endpoint per operation in
//! the service's queue group (so `$SRV.PING` finds every replica and replicas share the load),
//! each request handled on its own task with a bound on how many run at once.

use std::future::Future;
use std::sync::Arc;

use async_nats::service::{ServiceExt, error::Error as MicroError};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::client::REQUEST_ID_HEADER;
use crate::error::BusError;
use crate::ops::Operation;
use crate::subject::{ServiceName, Subjects};

/// A service's request handler: gets the operation name and payload, answers bytes or an error.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        operation: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<Bytes, BusError>> + Send;
}

/// Decodes `payload` as `O::Request`, runs `f`, encodes the reply. Undecodable input is a 400:
/// the gateway never sends it, so whoever did gets told plainly.
pub async fn dispatch<O, F, Fut>(payload: &[u8], f: F) -> Result<Bytes, BusError>
where
    O: Operation,
    F: FnOnce(O::Request) -> Fut,
    Fut: Future<Output = Result<O::Reply, BusError>>,
{
    let req: O::Request = serde_json::from_slice(payload).map_err(|err| {
        BusError::new(
            crate::ErrorCode::BadRequest,
            format!("Invalid {} request: {err}", O::NAME),
        )
    })?;
    let reply = f(req).await?;
    to_bytes(&reply)
}

pub fn to_bytes<T: Serialize>(value: &T) -> Result<Bytes, BusError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|err| {
        tracing::error!(%err, "unencodable reply");
        BusError::internal()
    })
}

pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// Registers `service` with the given operations and answers requests until `shutdown`
/// resolves; then it unsubscribes and waits for in-flight requests to finish.
pub async fn serve<H: Handler>(
    client: async_nats::Client,
    subjects: &Subjects,
    service: ServiceName,
    description: &str,
    operations: &[&'static str],
    max_in_flight: usize,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), async_nats::Error> {
    let micro = client
        .service_builder()
        .description(description)
        .queue_group(service.micro_name())
        .start(service.micro_name(), env!("CARGO_PKG_VERSION"))
        .await?;
    let group = micro.group(subjects.service_group(service));
    let mut endpoints = Vec::with_capacity(operations.len());
    for op in operations {
        let endpoint = group.endpoint(*op).await?;
        endpoints.push(endpoint.map(move |req| (*op, req)));
    }
    let mut requests = futures::stream::select_all(endpoints);
    let limit = Arc::new(Semaphore::new(max_in_flight));
    tracing::info!(
        service = service.as_str(),
        operations = operations.len(),
        "bus service started"
    );

    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            () = &mut shutdown => break,
            next = requests.next() => next,
        };
        let Some((op, req)) = next else { break };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let request_id = req
                .message
                .headers
                .as_ref()
                .and_then(|h| h.get(REQUEST_ID_HEADER))
                .map(|v| v.as_str().to_owned());
            let span =
                tracing::info_span!("bus", operation = op, request_id = request_id.as_deref());
            let result = tracing::Instrument::instrument(
                handler.handle(op, req.message.payload.clone()),
                span,
            )
            .await;
            let reply = result.map_err(|err| {
                if err.code == crate::ErrorCode::Internal {
                    tracing::error!(operation = op, "request failed: internal error");
                }
                MicroError {
                    status: err.message,
                    code: err.code.status() as usize,
                }
            });
            if let Err(err) = req.respond(reply).await {
                tracing::warn!(operation = op, %err, "could not send reply");
            }
            drop(permit);
        });
    }
    drop(requests);
    // Wait for in-flight requests: every permit back means every task has answered.
    let _ = limit.acquire_many(max_in_flight as u32).await;
    micro.stop().await?;
    tracing::info!(service = service.as_str(), "bus service stopped");
    Ok(())
}
