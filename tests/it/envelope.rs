use clokio_bus::types::Plan;
use clokio_tests::{Stack, json};

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_bodies_get_the_envelope() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    gw.get(&t.key, "/api/v1/nothing-here")
        .await
        .expect_error(404, "Route not found");
    gw.get(&t.key, "/")
        .await
        .expect_error(404, "Route not found");
    gw.send(gw.request(reqwest::Method::PUT, Some(&t.key), "/api/v1/employees"))
        .await
        .expect_error(405, "Method not allowed");
    gw.send(gw.request(
        reqwest::Method::DELETE,
        Some(&t.key),
        "/api/v1/organization",
    ))
    .await
    .expect_error(405, "Method not allowed");

    let raw = |body: &'static str| {
        gw.request(reqwest::Method::POST, Some(&t.key), "/api/v1/employees")
            .header("content-type", "application/json")
            .body(body)
    };
    gw.send(raw("{\"name\": "))
        .await
        .expect_error(400, "The request body is not valid JSON");
    gw.send(raw("[1,2]"))
        .await
        .expect_error(422, "The request body must be a JSON object");
    gw.send(raw(""))
        .await
        .expect_error(422, "The name field is required");

    // Over 1 MiB: refused before it is read, and nothing stored.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let res = gw
        .send(
            gw.request(reqwest::Method::POST, Some(&t.key), "/api/v1/employees")
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    res.expect_error(413, "The request body is too large");
    let list = gw.get(&t.key, "/api/v1/employees").await.expect(200);
    assert_eq!(list.data(), &json!([]));
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let res = gw
        .send(
            gw.request(reqwest::Method::GET, Some(&t.key), "/api/v1/employees")
                .header("x-request-id", "abc-123"),
        )
        .await;
    assert_eq!(res.header("x-request-id"), Some("abc-123"));
    let res = gw.get(&t.key, "/api/v1/employees").await;
    let id = res.header("x-request-id").unwrap();
    assert_eq!(id.len(), 32);
    // Even a 401 and a 404 carry one.
    let res = gw
        .send(gw.request(reqwest::Method::GET, None, "/api/v1/employees"))
        .await;
    assert!(res.header("x-request-id").is_some());
    assert_eq!(res.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn health_metrics_openapi_and_docs_need_no_key() {
    let (_stack, gw) = Stack::start().await;
    let get = |path: &'static str| gw.send(gw.request(reqwest::Method::GET, None, path));
    get("/healthz").await.expect(200);
    let ready = get("/readyz").await.expect(200);
    assert_eq!(ready.data(), &json!({"nats": "ok", "redis": "ok"}));
    let doc = get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc.body["paths"]["/api/v1/employees"]["post"].is_object());
    // The docs page and everything it references come from the gateway (the browser's view of
    // it is in console_browser.rs).
    let docs = gw
        .client
        .get(format!("{}/docs/", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    let page = docs.text().await.unwrap();
    let referenced: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| [".js", ".css", ".png"].iter().any(|end| s.ends_with(end)))
        .collect();
    assert!(referenced.len() >= 5, "{page}");
    for path in referenced {
        assert!(!path.contains("//"), "the docs page references {path}");
        let asset = gw
            .client
            .get(format!("{}/docs/{}", gw.url, path.trim_start_matches("./")))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        let body = asset.text().await.unwrap_or_default();
        if path.ends_with("initializer.js") {
            assert!(body.contains("\"/api/v1/openapi.json\""), "{body}");
        }
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("clokio_http_requests_total"),
        "{}",
        metrics.0
    );
    assert!(
        metrics.contains("clokio_http_request_duration_seconds"),
        "{}",
        metrics.0
    );
    // Metrics are for operators: on the ops port, not on the public one.
    get("/metrics").await.expect(404);
    let ops = gw.ops.as_deref().unwrap();
    let res = gw.client.get(format!("{ops}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"nats": "ok", "redis": "ok"})
    );
    let res = gw
        .client
        .get(format!("{ops}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn refused_queries_paths_and_odd_values_are_4xx_envelopes() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    // A query the extractor cannot read, a path segment that is not UTF-8.
    gw.get(&t.key, "/api/v1/employees?status=active&status=inactive")
        .await
        .expect_error(400, "The request is malformed");
    gw.patch(
        &t.key,
        "/api/v1/employees/%FF%FE/status",
        &json!({"status": "active"}),
    )
    .await
    .expect(400);
    // NUL bytes never reach Postgres.
    gw.post(
        &t.key,
        "/api/v1/locations",
        &json!({"name": "a\u{0}b", "latitude": 0, "longitude": 0, "radius_meters": 1}),
    )
    .await
    .expect_error(422, "The name field must not contain NUL characters");
    // Numbers out of every range.
    let res = gw
        .send(
            gw.request(reqwest::Method::POST, Some(&t.key), "/api/v1/locations")
                .header("content-type", "application/json")
                .body(r#"{"name": "n", "latitude": 1e400, "longitude": 0, "radius_meters": 1}"#),
        )
        .await;
    res.expect_error(400, "The request body is not valid JSON");
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let res = gw
        .send(
            gw.request(reqwest::Method::POST, Some(&t.key), "/api/v1/employees")
                .header("content-type", "application/json")
                .body(format!("{{\"name\": {deep}}}")),
        )
        .await;
    res.expect_error(400, "The request body is not valid JSON");
    let list = gw.get(&t.key, "/api/v1/locations").await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn metrics_count_rate_limit_decisions_and_auth_cache_hits() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    for _ in 0..3 {
        gw.get(&t.key, "/api/v1/employees").await.expect(200);
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.value("clokio_ratelimit_decisions_total{outcome=\"allowed\",source=\"redis\"}")
            >= 4.0
    );
    assert!(metrics.value("clokio_auth_cache_total{result=\"hit\"}") >= 3.0);
    assert!(metrics.value("clokio_auth_cache_total{result=\"miss\"}") >= 1.0);
    assert!(
        metrics.contains("route=\"/api/v1/employees\""),
        "{}",
        metrics.0
    );
}

/// A streamed body (no Content-Length) is cut off at the bound too, with the envelope.
#[tokio::test]
async fn a_chunked_body_over_the_bound_is_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/employees HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        t.key
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    // 1.25 MiB in 64 KiB chunks; the server may answer and stop reading before the end.
    for _ in 0..20 {
        if conn.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_end(&mut response),
    )
    .await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains(
            r#"{"status":"error","message":"The request body is too large","data":null}"#
        ),
        "{text}"
    );
    let list = gw.get(&t.key, "/api/v1/employees").await.expect(200);
    assert_eq!(list.data(), &json!([]));
}
