//! The LLM adapters against the fake OpenAI: what they send, what they read, and that every
//! failure is one classified HTTP request (retries belong to the effect runner). No database.

use std::sync::Arc;
use std::time::Duration;

use botfleet::llm::{
    language_model, ErrorClass, HistoryTurn, LanguageModel, LlmApi, LlmRequest, TokenUsage,
};
use serde_json::json;

use crate::fakes::openai::{error_body, FakeOpenAi};

const API_KEY: &str = "sk-test-0123456789abcdef";
const BOTH_APIS: [LlmApi; 2] = [LlmApi::Responses, LlmApi::ChatCompletions];

fn model_on(fake: &FakeOpenAi, api: LlmApi, timeout: Duration) -> Arc<dyn LanguageModel> {
    let base_url = fake.base_url.parse().expect("the fake's URL parses");
    language_model(api, &base_url, Some(API_KEY), timeout)
}

fn model(fake: &FakeOpenAi, api: LlmApi) -> Arc<dyn LanguageModel> {
    model_on(fake, api, Duration::from_secs(10))
}

fn request(text: &str) -> LlmRequest {
    LlmRequest {
        model: "gpt-5-mini".to_owned(),
        instructions: "Answer briefly.".to_owned(),
        user_text: text.to_owned(),
        previous_response_id: None,
        history: Vec::new(),
        images: Vec::new(),
    }
}

const FAKE_USAGE: TokenUsage = TokenUsage {
    input_tokens: 100,
    cached_input_tokens: 20,
    output_tokens: 50,
    reasoning_tokens: 10,
};

#[tokio::test]
async fn responses_sends_the_turn_and_reads_text_id_and_usage() {
    let fake = FakeOpenAi::start().await;
    let llm = model(&fake, LlmApi::Responses);

    let reply = llm
        .respond(&LlmRequest {
            previous_response_id: Some("resp_41".to_owned()),
            ..request("hello there")
        })
        .await
        .expect("a reply");

    assert_eq!(reply.text, "echo: hello there");
    assert_eq!(reply.response_id.as_deref(), Some("resp_1"));
    assert_eq!(reply.model, "gpt-5-mini");
    assert_eq!(reply.usage, FAKE_USAGE);

    let calls = fake.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/v1/responses");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    let body = &calls[0].body;
    assert_eq!(body["model"], "gpt-5-mini");
    assert_eq!(body["input"], "hello there");
    assert_eq!(body["instructions"], "Answer briefly.");
    assert_eq!(body["previous_response_id"], "resp_41");
    assert_eq!(body["store"], true);

    // A fixed reply, a first turn without instructions: neither field is sent.
    fake.set_reply(Some("Fixed.".to_owned()));
    let reply = llm
        .respond(&LlmRequest {
            instructions: String::new(),
            ..request("again")
        })
        .await
        .expect("a reply");
    assert_eq!(reply.text, "Fixed.");
    assert_eq!(reply.response_id.as_deref(), Some("resp_2"));
    let body = &fake.requests()[1].body;
    assert!(body.get("instructions").is_none(), "{body}");
    assert!(body.get("previous_response_id").is_none(), "{body}");
}

#[tokio::test]
async fn chat_completions_sends_system_history_and_user_in_order() {
    let fake = FakeOpenAi::start().await;
    let llm = model(&fake, LlmApi::ChatCompletions);

    let reply = llm
        .respond(&LlmRequest {
            history: vec![
                HistoryTurn {
                    user: "first question".to_owned(),
                    assistant: "first answer".to_owned(),
                },
                HistoryTurn {
                    user: "second question".to_owned(),
                    assistant: "second answer".to_owned(),
                },
            ],
            ..request("third question")
        })
        .await
        .expect("a reply");

    assert_eq!(reply.text, "echo: third question");
    assert_eq!(reply.response_id.as_deref(), Some("chatcmpl_1"));
    assert_eq!(reply.model, "gpt-5-mini");
    assert_eq!(reply.usage, FAKE_USAGE);

    let calls = fake.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/v1/chat/completions");
    assert_eq!(calls[0].body["model"], "gpt-5-mini");
    assert_eq!(
        calls[0].body["messages"],
        json!([
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question"},
            {"role": "assistant", "content": "second answer"},
            {"role": "user", "content": "third question"},
        ])
    );
}

#[tokio::test]
async fn chat_completions_without_instructions_or_key_sends_neither() {
    let fake = FakeOpenAi::start().await;
    let base_url = fake.base_url.parse().expect("the fake's URL parses");
    let llm = language_model(
        LlmApi::ChatCompletions,
        &base_url,
        None,
        Duration::from_secs(10),
    );

    llm.respond(&LlmRequest {
        instructions: String::new(),
        ..request("hi")
    })
    .await
    .expect("a reply");

    let calls = fake.requests();
    assert_eq!(calls[0].authorization, None);
    assert_eq!(
        calls[0].body["messages"],
        json!([{"role": "user", "content": "hi"}])
    );
}

#[tokio::test]
async fn unauthorized_is_fatal_after_one_request_and_never_shows_the_key() {
    for api in BOTH_APIS {
        let fake = FakeOpenAi::start().await;
        let message = format!("Incorrect API key provided: {API_KEY}.");
        fake.fail_next(
            5,
            401,
            error_body(&message, "invalid_request_error", Some("invalid_api_key")),
            None,
        );

        let error = model(&fake, api)
            .respond(&request("hi"))
            .await
            .expect_err("401");

        assert_eq!(fake.requests().len(), 1, "{api}: no retry");
        assert_eq!(error.class, ErrorClass::Fatal, "{api}");
        assert_eq!(error.status, Some(401));
        assert_eq!(error.code.as_deref(), Some("invalid_api_key"));
        assert_eq!(error.message, "Incorrect API key provided: [redacted].");
        assert!(!error.to_string().contains(API_KEY));
        assert!(!format!("{error:?}").contains(API_KEY));
    }
}

#[tokio::test]
async fn other_refusals_are_fatal() {
    let cases = [
        (404, "invalid_request_error", Some("model_not_found")),
        (400, "invalid_request_error", None),
        (
            403,
            "permission_error",
            Some("unsupported_country_region_territory"),
        ),
    ];
    for (status, kind, code) in cases {
        let fake = FakeOpenAi::start().await;
        fake.fail_next(1, status, error_body("refused", kind, code), None);
        let error = model(&fake, LlmApi::Responses)
            .respond(&request("hi"))
            .await
            .expect_err("refused");
        assert_eq!(error.class, ErrorClass::Fatal, "{status}");
        assert_eq!(error.status, Some(status));
        assert_eq!(error.message, "refused");
        assert_eq!(fake.requests().len(), 1);
    }
}

#[tokio::test]
async fn insufficient_quota_is_fatal() {
    for api in BOTH_APIS {
        let fake = FakeOpenAi::start().await;
        fake.fail_next(
            5,
            429,
            error_body(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
            None,
        );

        let error = model(&fake, api)
            .respond(&request("hi"))
            .await
            .expect_err("429");

        assert_eq!(fake.requests().len(), 1, "{api}: no retry");
        assert_eq!(error.class, ErrorClass::Fatal, "{api}");
        assert_eq!(error.status, Some(429));
        assert_eq!(error.code.as_deref(), Some("insufficient_quota"));
        assert!(error.message.starts_with("You exceeded your current quota"));
    }
}

#[tokio::test]
async fn a_rate_limit_is_retryable_with_the_servers_wait_and_not_retried() {
    for api in BOTH_APIS {
        let fake = FakeOpenAi::start().await;
        fake.fail_next(
            5,
            429,
            error_body(
                "Rate limit reached for gpt-5-mini on requests per min (RPM).",
                "requests",
                Some("rate_limit_exceeded"),
            ),
            Some(2),
        );

        let error = model(&fake, api)
            .respond(&request("hi"))
            .await
            .expect_err("429");

        assert_eq!(fake.requests().len(), 1, "{api}: no retry");
        assert_eq!(error.class, ErrorClass::Retryable, "{api}");
        assert_eq!(error.status, Some(429));
        assert_eq!(error.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(error.retry_after, Some(Duration::from_secs(2)));
    }
}

#[tokio::test]
async fn a_server_error_is_retryable_and_not_retried() {
    for api in BOTH_APIS {
        let fake = FakeOpenAi::start().await;
        fake.fail_next(
            5,
            500,
            error_body(
                "The server had an error while processing your request.",
                "server_error",
                None,
            ),
            None,
        );

        let error = model(&fake, api)
            .respond(&request("hi"))
            .await
            .expect_err("500");

        assert_eq!(fake.requests().len(), 1, "{api}: no retry");
        assert_eq!(error.class, ErrorClass::Retryable, "{api}");
        assert_eq!(error.status, Some(500));
        assert_eq!(error.retry_after, None);
        assert_eq!(
            error.message,
            "The server had an error while processing your request."
        );

        // The queue is FIFO and still holds four failures; the next call takes one.
        let again = model(&fake, api).respond(&request("hi")).await;
        assert!(again.is_err());
        assert_eq!(fake.requests().len(), 2);
    }
}

#[tokio::test]
async fn a_reply_slower_than_the_timeout_is_a_retryable_timeout() {
    for api in BOTH_APIS {
        let fake = FakeOpenAi::start().await;
        fake.set_delay(Duration::from_secs(5));
        let llm = model_on(&fake, api, Duration::from_millis(300));

        let call = tokio::spawn(async move { llm.respond(&request("hi")).await });
        fake.wait_for_requests(1, Duration::from_secs(5)).await;
        let error = call.await.expect("the call ends").expect_err("timeout");

        assert_eq!(fake.requests().len(), 1, "{api}: no retry");
        assert_eq!(error.class, ErrorClass::Retryable, "{api}");
        assert_eq!(error.status, None);
        assert_eq!(error.code.as_deref(), Some("timeout"));
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connection_error() {
    // Bind and release a port, so that nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let base_url = format!("http://127.0.0.1:{port}/v1")
        .parse()
        .expect("a URL");
    let llm = language_model(
        LlmApi::Responses,
        &base_url,
        Some(API_KEY),
        Duration::from_secs(5),
    );

    let error = llm.respond(&request("hi")).await.expect_err("refused");

    assert_eq!(error.class, ErrorClass::Retryable);
    assert_eq!(error.code.as_deref(), Some("connection_error"));
    assert!(!error.message.contains(API_KEY));
}
