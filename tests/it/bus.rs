use std::time::Duration;

use clokio_bus::ops::{Empty, OrgListOp};
use clokio_testkit::Stack;
use futures::StreamExt;

/// Every replica registers in the service's queue group: `$SRV.PING` finds each one, and any of
/// them answers a request.
#[tokio::test]
async fn replicas_are_discoverable_and_share_the_subject() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_employee_svc().await;
    let inbox = stack.nats.new_inbox();
    let mut replies = stack.nats.subscribe(inbox.clone()).await.unwrap();
    // Other test processes may run employee-svc on the same server under other prefixes, so count
    // only replicas whose endpoints carry this stack's prefix. Ask again until both answered: on a
    // loaded machine one broadcast's answers can straggle.
    let prefix = format!("{}.v1.employee.", stack.bus_config.subjects.prefix());
    let mut ours = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ours.len() < 2 && tokio::time::Instant::now() < deadline {
        stack
            .nats
            .publish_with_reply("$SRV.INFO.clokio-employee", inbox.clone(), "".into())
            .await
            .unwrap();
        let round = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(msg)) = tokio::time::timeout_at(round, replies.next()).await {
            let info: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
            let endpoints = info["endpoints"].as_array().cloned().unwrap_or_default();
            if endpoints.iter().any(|e| {
                e["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&prefix))
            }) {
                assert_eq!(endpoints[0]["queue_group"], "clokio-employee");
                ours.insert(info["id"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(ours.len(), 2, "both replicas answer $SRV.INFO");
    for _ in 0..20 {
        stack.bus.call::<OrgListOp>(&Empty {}).await.unwrap();
    }
}
