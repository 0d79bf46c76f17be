//! Pages of the lists that grow with the org: `?page=&per_page=`, `X-Total-Count` and an RFC 8288
//! `Link` header; without either parameter a list answers whole, as before.

use clokio_bus::types::Plan;
use clokio_tests::{Stack, json};
use serde_json::Value;

/// The `Link` header's targets by relation.
fn links(header: &str) -> Vec<(String, String)> {
    header
        .split(", ")
        .map(|part| {
            let (target, rel) = part.split_once("; rel=").expect("target; rel=");
            (
                rel.trim_matches('"').to_owned(),
                target
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned(),
            )
        })
        .collect()
}

fn rel<'a>(links: &'a [(String, String)], name: &str) -> Option<&'a str> {
    links
        .iter()
        .find(|(r, _)| r == name)
        .map(|(_, t)| t.as_str())
}

#[tokio::test]
async fn pages_follow_their_links_through_the_whole_list_in_order() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    for i in 0..5 {
        gw.create_employee(
            &t.key,
            &format!("Paged {i}"),
            json!({"employee_code": format!("P-{i}")}),
        )
        .await;
    }
    gw.patch(
        &t.key,
        "/api/v1/employees/P-4/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect(200);
    // Without parameters: the whole list, no page headers.
    let whole = gw.get(&t.key, "/api/v1/employees").await.expect(200);
    assert!(whole.header("x-total-count").is_none());
    assert!(whole.header("link").is_none());
    let whole: Vec<Value> = whole.data().as_array().unwrap().clone();
    assert_eq!(whole.len(), 5);

    // Following `next` from the first page of 2 visits every employee once, in the same order,
    // and keeps the other parameters.
    let mut seen = Vec::new();
    let mut next = Some("/api/v1/employees?page=1&per_page=2".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let res = gw.get(&t.key, &path).await.expect(200);
        assert_eq!(res.header("x-total-count"), Some("5"), "{path}");
        let l = links(res.header("link").unwrap());
        assert_eq!(
            rel(&l, "first"),
            Some("/api/v1/employees?page=1&per_page=2")
        );
        assert_eq!(rel(&l, "last"), Some("/api/v1/employees?page=3&per_page=2"));
        assert_eq!(rel(&l, "prev").is_some(), pages > 0, "{l:?}");
        seen.extend(res.data().as_array().unwrap().iter().cloned());
        next = rel(&l, "next").map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, whole);

    // With a filter: the filter stays in every link, the total counts what it lets through.
    let res = gw
        .get(&t.key, "/api/v1/employees?status=active&per_page=3")
        .await
        .expect(200);
    assert_eq!(res.header("x-total-count"), Some("4"));
    assert_eq!(res.data().as_array().unwrap().len(), 3);
    let l = links(res.header("link").unwrap());
    assert_eq!(
        rel(&l, "next"),
        Some("/api/v1/employees?status=active&page=2&per_page=3")
    );
    // Past the end: an empty page, still with the total and a way back.
    let res = gw
        .get(&t.key, "/api/v1/employees?page=9&per_page=2")
        .await
        .expect(200);
    assert_eq!(res.data(), &json!([]));
    assert_eq!(res.header("x-total-count"), Some("5"));
    let l = links(res.header("link").unwrap());
    assert_eq!(rel(&l, "prev"), Some("/api/v1/employees?page=3&per_page=2"));
    assert_eq!(rel(&l, "next"), None);

    for (query, message) in [
        (
            "per_page=0",
            "The per_page field must be an integer between 1 and 500",
        ),
        (
            "per_page=501",
            "The per_page field must be an integer between 1 and 500",
        ),
        ("page=0", "The page field must be a positive integer"),
        ("page=two", "The page field must be a positive integer"),
    ] {
        gw.get(&t.key, &format!("/api/v1/employees?{query}"))
            .await
            .expect_error(422, message);
    }
}

#[tokio::test]
async fn every_list_that_grows_with_the_org_pages_the_same_way() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    for i in 0..3 {
        gw.create_employee(
            &t.key,
            &format!("Worker {i}"),
            json!({"employee_code": format!("W-{i}")}),
        )
        .await;
        gw.post(
            &t.key,
            "/api/v1/attendance/clock-in",
            &json!({"nip": format!("W-{i}")}),
        )
        .await
        .expect(200);
        gw.post(
            &t.key,
            "/api/v1/leaves",
            &json!({"nip": format!("W-{i}"), "start_date": format!("2026-03-0{}", i + 1),
                "end_date": "2026-03-09", "type": "annual"}),
        )
        .await
        .expect(201);
    }
    let today = gw
        .get(&t.key, "/api/v1/organization")
        .await
        .expect(200)
        .body["data"]["created_at"]
        .as_str()
        .unwrap()[..10]
        .to_owned();
    let lists = [
        format!("/api/v1/attendance/daily?date={today}"),
        format!("/api/v1/attendance/range?start={today}&end={today}"),
        format!("/api/v1/attendance/employee/W-0?start={today}&end={today}"),
        "/api/v1/leaves?month=3&year=2026".to_owned(),
        "/api/v1/api-keys".to_owned(),
        "/api/v1/webhooks".to_owned(),
    ];
    for list in lists {
        let whole = gw.get(&t.key, &list).await.expect(200);
        assert!(whole.header("x-total-count").is_none(), "{list}");
        let whole = whole.data().as_array().unwrap().clone();
        let sep = if list.contains('?') { '&' } else { '?' };
        let first = gw
            .get(&t.key, &format!("{list}{sep}per_page=1"))
            .await
            .expect(200);
        assert_eq!(
            first.header("x-total-count"),
            Some(whole.len().to_string().as_str()),
            "{list}"
        );
        assert_eq!(
            first.data().as_array().unwrap().as_slice(),
            &whole[..whole.len().min(1)],
            "{list}"
        );
        let l = links(first.header("link").unwrap());
        let last = rel(&l, "last").unwrap();
        assert!(
            last.ends_with(&format!("page={}&per_page=1", whole.len().max(1))),
            "{list}: {last}"
        );
        gw.get(&t.key, &format!("{list}{sep}per_page=501"))
            .await
            .expect_error(
                422,
                "The per_page field must be an integer between 1 and 500",
            );
    }
}
