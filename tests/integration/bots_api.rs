//! The `/bots` endpoints, end to end through HTTP, the event store and the read model.

use serde_json::json;

use crate::helpers::{random_token_key, token, TestApp, TestDb};

#[tokio::test]
async fn a_created_bot_is_answered_in_full_with_a_masked_token_and_is_readable_at_once() {
    let app = TestApp::spawn().await;
    let created = app.create_bot("Support", &token(1)).await;
    assert_eq!(created["name"], "Support");
    assert_eq!(created["token"], "100001:…0001");
    assert_eq!(created["model"], "gpt-5-mini");
    assert_eq!(created["instructions"], "Answer briefly.");
    assert_eq!(created["start_message"], "Hello! Ask me anything.");
    assert_eq!(created["is_active"], false);
    assert_eq!(created["status"], "disabled");
    assert_eq!(created["version"], 1);

    let id = created["id"].as_str().unwrap();
    let (status, fetched) = app.get(&format!("/bots/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);
    let (_, list) = app.get("/bots").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn updating_replaces_settings_and_a_new_token_changes_the_hint() {
    let app = TestApp::spawn().await;
    let id = app.create_bot("Support", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, updated) = app
        .put(
            &format!("/bots/{id}"),
            json!({"name": "Sales", "model": "gpt-5", "start_message": "Hi", "error_message": "Oops",
                   "instructions": "Sell.", "token": token(2)}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "Sales");
    assert_eq!(updated["model"], "gpt-5");
    assert_eq!(updated["start_message"], "Hi");
    assert_eq!(updated["token"], "100002:…0002");
    assert_eq!(updated["version"], 2);
    assert_eq!(app.get(&format!("/bots/{id}")).await.1, updated);

    // The same settings again record nothing.
    let before = app.event_count().await;
    let (status, same) = app
        .put(
            &format!("/bots/{id}"),
            json!({"name": "Sales", "model": "gpt-5", "start_message": "Hi", "error_message": "Oops",
                   "instructions": "Sell.", "token": token(2)}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(same["version"], 2);
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

#[tokio::test]
async fn enable_disable_and_delete_follow_the_bots_lifecycle() {
    let app = TestApp::spawn().await;
    let id = app.create_bot("Support", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, enabled) = app.post(&format!("/bots/{id}/enable"), json!(null)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (enabled["is_active"].clone(), enabled["status"].clone()),
        (json!(true), json!("enabled"))
    );

    let (status, again) = app.post(&format!("/bots/{id}/enable"), json!(null)).await;
    assert_eq!(status, 200, "enabling twice is harmless");
    assert_eq!(again["version"], enabled["version"]);

    let (status, disabled) = app.post(&format!("/bots/{id}/disable"), json!(null)).await;
    assert_eq!(status, 200);
    assert_eq!(disabled["status"], "disabled");

    let (status, _) = app.delete(&format!("/bots/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&format!("/bots/{id}")).await;
    assert_eq!(status, 404, "a deleted bot is hidden, as in the list");
    let (status, deleted) = app.get(&format!("/bots/{id}?include_deleted=true")).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["status"], "deleted");
    assert!(deleted["deleted_at"].is_string());

    let (_, listed) = app.get("/bots").await;
    assert!(
        listed["items"].as_array().unwrap().is_empty(),
        "deleted bots are not listed"
    );
    let (_, all) = app.get("/bots?include_deleted=true").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);

    for (method, path) in [
        ("POST", format!("/bots/{id}/enable")),
        ("POST", format!("/bots/{id}/disable")),
        ("DELETE", format!("/bots/{id}")),
    ] {
        let (status, body) = if method == "POST" {
            app.post(&path, json!(null)).await
        } else {
            app.delete(&path).await
        };
        assert_eq!(status, 409, "{method} {path}: {body}");
        assert_eq!(body["error"], "conflict");
    }
    let (status, body) = app
        .put(
            &format!("/bots/{id}"),
            json!({"name": "X", "model": "gpt-5-mini", "start_message": "a", "error_message": "b", "instructions": ""}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn unknown_bots_are_404_everywhere() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::now_v7();
    assert_eq!(app.get(&format!("/bots/{id}")).await.0, 404);
    assert_eq!(
        app.post(&format!("/bots/{id}/enable"), json!(null)).await.0,
        404
    );
    assert_eq!(
        app.post(&format!("/bots/{id}/disable"), json!(null))
            .await
            .0,
        404
    );
    assert_eq!(app.delete(&format!("/bots/{id}")).await.0, 404);
    let (status, body) = app
        .put(
            &format!("/bots/{id}"),
            json!({"name": "X", "model": "gpt-5-mini", "start_message": "a", "error_message": "b", "instructions": ""}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    assert_eq!(app.event_count().await, 0, "nothing was recorded");

    // Not even with another bot's token: the bot is missing, not the token taken.
    app.create_bot("Existing", &token(9)).await;
    let events = app.event_count().await;
    let (status, body) = app
        .put(
            &format!("/bots/{id}"),
            json!({"name": "X", "model": "gpt-5-mini", "start_message": "a", "error_message": "b",
                   "instructions": "", "token": token(9)}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = app
        .patch(&format!("/bots/{id}"), json!({"token": token(9)}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert_eq!(app.event_count().await, events, "nothing was recorded");
    app.stop().await;
}

#[tokio::test]
async fn invalid_input_names_the_field_and_records_nothing() {
    let app = TestApp::spawn().await;
    let valid = json!({"name": "Support", "token": token(1), "model": "gpt-5-mini"});
    let cases = [
        (json!({"name": ""}), 422, "name"),
        (json!({"name": "x".repeat(65)}), 422, "name"),
        (json!({"token": "123:short"}), 422, "token"),
        (json!({"token": "not a token"}), 422, "token"),
        (json!({"model": ""}), 422, "model"),
        (json!({"model": "no-such-model"}), 422, "model"),
        (
            json!({"start_message": "x".repeat(4097)}),
            422,
            "start_message",
        ),
        (json!({"error_message": ""}), 422, "error_message"),
        (json!({"name": 5}), 400, "name"),
        (json!({"surprise": true}), 400, "surprise"),
    ];
    for (patch, status, field) in cases {
        let mut body = valid.clone();
        body.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        let (got, error) = app.post("/bots", body).await;
        assert_eq!(got, status, "{patch}: {error}");
        assert_eq!(error["field"], field, "{patch}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{error}"
        );
    }
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("token");
    let (status, error) = app.post("/bots", missing).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("token")),
        "{error}"
    );

    let response = app
        .http
        .post(app.url("/bots"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"], "malformed_request");

    let (status, error) = app.get("/bots/not-a-uuid").await;
    assert_eq!((status, error["field"].as_str()), (400, Some("path")));
    let (status, error) = app.get("/bots?limit=0").await;
    assert_eq!((status, error["field"].as_str()), (422, Some("limit")));
    let (status, error) = app.get("/bots?cursor=garbage").await;
    assert_eq!((status, error["field"].as_str()), (422, Some("cursor")));

    assert_eq!(
        app.event_count().await,
        0,
        "no invalid request recorded anything"
    );
    let (_, list) = app.get("/bots").await;
    assert!(list["items"].as_array().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_token_serves_one_live_bot_only() {
    let app = TestApp::spawn().await;
    let first = app.create_bot("First", &token(1)).await;
    let (status, error) = app
        .post(
            "/bots",
            json!({"name": "Second", "token": token(1), "model": "gpt-5-mini"}),
        )
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (409, Some("token")),
        "{error}"
    );
    let second = app.create_bot("Second", &token(2)).await;
    let (status, _) = app
        .put(
            &format!("/bots/{}", second["id"].as_str().unwrap()),
            json!({"name": "Second", "model": "gpt-5-mini", "start_message": "a", "error_message": "b",
                   "instructions": "", "token": token(1)}),
        )
        .await;
    assert_eq!(status, 409);
    // Once the first bot is deleted its token is free again.
    app.delete(&format!("/bots/{}", first["id"].as_str().unwrap()))
        .await;
    app.create_bot("Third", &token(1)).await;
    app.stop().await;
}

#[tokio::test]
async fn listing_pages_through_every_bot_once() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(app.create_bot(&format!("Bot {n}"), &token(n)).await["id"].clone());
    }
    let mut seen = Vec::new();
    let mut path = "/bots?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|b| b["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/bots?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created, "every bot once, in creation order");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_updates_to_one_bot_are_all_recorded() {
    let app = TestApp::spawn().await;
    let id = app.create_bot("Support", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let writers = (0..16).map(|n| {
        let (http, url) = (app.http.clone(), app.url(&format!("/bots/{id}")));
        async move {
            let response = http
                .put(url)
                .json(&json!({"name": format!("Name {n}"), "model": "gpt-5-mini",
                    "start_message": "Hi", "error_message": "Oops", "instructions": ""}))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    });
    let statuses = futures::future::join_all(writers).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let updates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'BotUpdated'",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(updates, 16, "no update was lost");
    let (_, bot) = app.get(&format!("/bots/{id}")).await;
    assert_eq!(bot["version"], 17);
    let last_name: serde_json::Value = sqlx::query_scalar(
        "SELECT payload -> 'BotUpdated' -> 'name' FROM events WHERE aggregate_id = $1 ORDER BY sequence DESC LIMIT 1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        bot["name"], last_name,
        "the read model shows the last write"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_api_documentation_is_served() {
    let app = TestApp::spawn().await;
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("swagger"));
    let spec = app.http.get(app.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(spec.status(), 200);
    assert!(spec.text().await.unwrap().contains("/bots/{id}/enable"));
    let (status, body) = app.get("/no/such/route").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    app.stop().await;
}

/// A model whose answers cannot be priced would be billed at nothing and never held to a cost
/// budget: a bot may use only a model the price table knows, the built-in one or PRICING_FILE's.
#[tokio::test]
async fn a_bot_uses_only_a_model_whose_answers_can_be_priced() {
    let prices =
        std::env::temp_dir().join(format!("botfleet-prices-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(
        &prices,
        r#"{"local-llama": {"input": "0", "cached_input": "0", "output": "0"}}"#,
    )
    .unwrap();
    let path = prices.to_str().unwrap().to_owned();
    let app = TestApp::spawn_with(TestDb::new(), random_token_key(), |args| {
        args.pricing_file = Some(path)
    })
    .await;
    let id = app.create_bot("Priced", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = app.event_count().await;
    for (method, body) in [
        ("PATCH", json!({"model": "no-such-model"})),
        (
            "PUT",
            json!({"name": "Priced", "model": "no-such-model", "start_message": "a",
                   "error_message": "b", "instructions": ""}),
        ),
    ] {
        let (status, error) = if method == "PATCH" {
            app.patch(&format!("/bots/{id}"), body).await
        } else {
            app.put(&format!("/bots/{id}"), body).await
        };
        assert_eq!(
            (status, error["field"].as_str()),
            (422, Some("model")),
            "{method}: {error}"
        );
        assert!(
            error["message"].as_str().unwrap().contains("PRICING_FILE"),
            "{error}"
        );
    }
    assert_eq!(app.event_count().await, events, "nothing was recorded");
    // A model the price file adds (free, here) is taken.
    let (status, bot) = app
        .patch(&format!("/bots/{id}"), json!({"model": "local-llama"}))
        .await;
    assert_eq!(
        (status, bot["model"].as_str()),
        (200, Some("local-llama")),
        "{bot}"
    );
    app.stop().await;
    std::fs::remove_file(prices).unwrap();
}
