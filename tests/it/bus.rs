use clokio_bus::ServiceName;
use clokio_bus::ops::{Empty, OrgListOp};
use clokio_testkit::Stack;

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
            clokio_bus::ops::EMPLOYEE_OPERATIONS.join(",")
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
