use clokio_bus::ServiceName;
use clokio_bus::ops::{Empty, OrgListOp};
use clokio_tests::Stack;

/// Every replica registers in the service's queue group: `$SRV.PING` finds each one, and any of
/// them answers a request.
#[tokio::test]
async fn replicas_are_discoverable_and_share_the_subject() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_employee_svc().await;
    let infos = stack.replica_infos(ServiceName::Employee).await;
    assert_eq!(infos.len(), 2, "both replicas answer $SRV.INFO");
    assert_ne!(infos[0]["id"], infos[1]["id"]);
    for info in &infos {
        assert_eq!(info["name"], "clokio-employee");
        let metadata = &info["metadata"];
        assert_eq!(metadata["queue_group"], "clokio-employee");
        assert_eq!(
            metadata["subject"],
            format!(
                "{}.*",
                stack
                    .bus_config
                    .subjects
                    .service_group(ServiceName::Employee)
            )
        );
        assert_eq!(
            metadata["operations"],
            clokio_employee_svc::State::OPERATIONS.join(",")
        );
    }
    for _ in 0..20 {
        stack.bus.call::<OrgListOp>(&Empty {}).await.unwrap();
    }
}

/// Test stacks delete their events stream when dropped, so runs do not pile up streams.
#[tokio::test]
async fn a_dropped_stack_leaves_no_stream_behind() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let name = stack.bus_config.subjects.events_stream();
    let js = async_nats::jetstream::new(stack.nats.clone());
    assert!(
        js.get_stream(&name).await.is_ok(),
        "employee-svc creates the stream"
    );
    drop(stack);
    assert!(js.get_stream(&name).await.is_err(), "{name} still exists");
}

/// Answers every request with its payload, and counts them.
#[derive(Default)]
struct Echo {
    served: std::sync::atomic::AtomicUsize,
}

impl clokio_bus::server::Handler for Echo {
    async fn handle(
        &self,
        _operation: &str,
        payload: bytes::Bytes,
    ) -> Result<bytes::Bytes, clokio_bus::BusError> {
        self.served
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(payload)
    }
}

/// An echo replica of the employee group on `url`, serving until `stop` fires.
async fn echo_replica(
    stack: &Stack,
    url: &str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), async_nats::Error>>,
    std::sync::Arc<Echo>,
) {
    let client = async_nats::connect(url).await.expect("NATS reachable");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let spec = clokio_bus::server::Spec {
        service: ServiceName::Employee,
        description: "echo",
        operations: &["echo"],
        max_in_flight: 64,
    };
    let subjects = stack.bus_config.subjects.clone();
    let echo = std::sync::Arc::new(Echo::default());
    let handler = echo.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        clokio_bus::server::serve(client, &subjects, spec, handler, shutdown).await
    });
    (stop, task, echo)
}

/// A replica stops while requests trickle in (a few a second, too few to use up the drain's
/// margin), on a link so slow one way that its UNSUB reaches the server a second after it was
/// sent, as on a machine too busy to write promptly: every request NATS routed to it is still
/// answered. (The drain used to end on a quiet bus or after 5 s with a plain unsubscribe, which
/// the client applies at once and the server only when it arrives: requests routed in between
/// were dropped unread and timed out, as two did in a CI run of the rolling restart.)
#[tokio::test]
async fn a_replica_on_a_slow_link_drains_without_losing_a_request() {
    use std::net::ToSocketAddrs;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    let stack = Stack::empty().await;
    let url = clokio_tests::nats_url();
    let parsed = reqwest::Url::parse(&url).expect("the NATS URL");
    let upstream = (
        parsed.host_str().expect("a host"),
        parsed.port().unwrap_or(4222),
    )
        .to_socket_addrs()
        .expect("the NATS address")
        .next()
        .expect("an address");
    let proxy = clokio_tests::CutProxy::start(upstream).await;
    let steady = echo_replica(&stack, &url).await;
    let slow = echo_replica(&stack, &proxy.url(&url)).await;
    stack.wait_for_replicas(ServiceName::Employee, 2).await;
    proxy.delay_upstream(Duration::from_secs(1));

    let subject = format!(
        "{}.echo",
        stack
            .bus_config
            .subjects
            .service_group(ServiceName::Employee)
    );
    let running = Arc::new(AtomicBool::new(true));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|sender| {
            let (nats, subject) = (stack.nats.clone(), subject.clone());
            let (running, sent, failed) = (running.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    if !running.load(Ordering::Relaxed) {
                        break;
                    }
                    let ping = format!("ping {sender}.{n}");
                    let asked = nats.request(subject.clone(), ping.clone().into());
                    match tokio::time::timeout(Duration::from_secs(5), asked).await {
                        Ok(Ok(reply)) if reply.payload == ping.as_bytes() => {}
                        other => {
                            eprintln!("{ping} failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    let _ = slow.0.send(());
    slow.1.await.unwrap().expect("the slow replica drains");
    eprintln!("slow replica drained in {:?}", started.elapsed());
    // Whatever it left unread would time out within 5 s of being sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 20, "load ran: {sent} requests");
    let served = slow.2.served.load(Ordering::Relaxed);
    assert!(served > 0, "the slow replica served {served} requests");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
    let _ = steady.0.send(());
    steady.1.await.unwrap().expect("the steady replica stops");
}
