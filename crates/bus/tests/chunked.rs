//! Replies beyond NATS's max payload, through a real NATS server (`CLOKIO_NATS_URL`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clokio_bus::ops::Operation;
use clokio_bus::server::{Handler, Spec, serve};
use clokio_bus::{Bus, BusError, ErrorCode, Prefix, ServiceName, Subjects};

struct Big;
impl Operation for Big {
    const SERVICE: ServiceName = ServiceName::Reporting;
    const NAME: &'static str = "big";
    type Request = usize;
    type Reply = Vec<u32>;
}

/// A request that can be larger than one message.
struct Sum;
impl Operation for Sum {
    const SERVICE: ServiceName = ServiceName::Reporting;
    const NAME: &'static str = "sum";
    type Request = Vec<u64>;
    type Reply = (usize, u64);
}

struct Numbers;
impl Handler for Numbers {
    async fn handle(&self, op: &str, payload: Bytes) -> Result<Bytes, BusError> {
        if op == "sum" {
            let v: Vec<u64> =
                serde_json::from_slice(&payload).map_err(|_| BusError::invalid("v"))?;
            let reply = (v.len(), v.iter().sum::<u64>());
            return Ok(Bytes::from(serde_json::to_vec(&reply).unwrap()));
        }
        let n: usize = serde_json::from_slice(&payload).map_err(|_| BusError::invalid("n"))?;
        if n == 0 {
            return Err(BusError::new(ErrorCode::NotFound, "nothing"));
        }
        Ok(Bytes::from(
            serde_json::to_vec(&(0..n as u32).collect::<Vec<u32>>()).unwrap(),
        ))
    }
}

#[tokio::test]
async fn large_replies_arrive_whole_and_small_ones_unchanged() {
    let url = std::env::var("CLOKIO_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(url).await.unwrap();
    let prefix = Prefix::parse(&format!(
        "c{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    ))
    .unwrap();
    let subjects = Subjects::new(prefix);
    let spec = Spec {
        service: ServiceName::Reporting,
        description: "test",
        operations: &["big", "sum"],
        max_in_flight: 8,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let (client, subjects) = (client.clone(), subjects.clone());
        async move {
            serve(client, &subjects, spec, Arc::new(Numbers), async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        }
    });
    let bus = Bus::new(client.clone(), subjects, Duration::from_secs(5));
    let mut reply = None;
    for _ in 0..100 {
        match bus.call::<Big>(&10).await {
            Ok(r) => {
                reply = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert_eq!(reply.unwrap(), (0..10).collect::<Vec<u32>>());

    // About 5.9 MB of JSON: twelve chunks at 512 KiB, over five times the 1 MiB max payload.
    let n = 800_000;
    let raw = bus.call_raw::<Big>(&n, None).await.unwrap();
    assert!(raw.len() > 5 * 1024 * 1024, "{}", raw.len());
    let numbers: Vec<u32> = serde_json::from_slice(&raw).unwrap();
    assert_eq!(numbers.len(), n);
    assert!(numbers.iter().enumerate().all(|(i, v)| *v == i as u32));

    // Several at once, each joined from its own chunks.
    let calls = (1..=4).map(|k| {
        let bus = bus.clone();
        async move { bus.call::<Big>(&(k * 150_000)).await.unwrap().len() }
    });
    let lens = futures::future::join_all(calls).await;
    assert_eq!(lens, [150_000, 300_000, 450_000, 600_000]);

    // A request over four times the max payload arrives whole; small ones are unchanged.
    let v: Vec<u64> = (0..500_000).map(|i| i * 1_000_003).collect();
    let want = (v.len(), v.iter().sum::<u64>());
    assert!(serde_json::to_vec(&v).unwrap().len() > 4 * 1024 * 1024);
    assert_eq!(bus.call::<Sum>(&v).await.unwrap(), want);
    assert_eq!(bus.call::<Sum>(&vec![1, 2, 3]).await.unwrap(), (3, 6));

    // Errors still travel as errors.
    let err = bus.call::<Big>(&0).await.unwrap_err();
    assert_eq!(err, BusError::new(ErrorCode::NotFound, "nothing"));
    let _ = stop_tx.send(());
    server.await.unwrap();
}
