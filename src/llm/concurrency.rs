//! A bound on the LLM requests in flight at once, so that a fleet of slow models does not
//! overrun its provider.
//!
//! A turn waiting on the model costs this process only memory, so the effect runner may hold
//! thousands (`EFFECT_CONCURRENCY`); what bounds them is the provider. One process speaks to
//! one base URL (`OPENAI_BASE_URL`), so one semaphore per process is the limit per base URL.
//! Waiters are served first come, first served; which chats get to wait at all is the
//! runner's fair share between bots. The provider's own 429s stay retryable as before.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{LanguageModel, LlmError, LlmReply, LlmRequest};

pub struct ConcurrencyLimited {
    inner: Arc<dyn LanguageModel>,
    /// One permit per request in flight.
    permits: Semaphore,
}

/// `inner`, with at most `limit` requests in flight at once (0: no limit).
pub fn limited(inner: Arc<dyn LanguageModel>, limit: usize) -> Arc<dyn LanguageModel> {
    if limit == 0 {
        return inner;
    }
    Arc::new(ConcurrencyLimited {
        inner,
        permits: Semaphore::new(limit),
    })
}

#[async_trait::async_trait]
impl LanguageModel for ConcurrencyLimited {
    async fn respond(&self, request: &LlmRequest) -> Result<LlmReply, LlmError> {
        // The semaphore is never closed.
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the LLM semaphore is open");
        self.inner.respond(request).await
    }

    // Without this the trait's default would answer whole: the limit must not turn
    // streaming off.
    async fn respond_streaming(
        &self,
        request: &LlmRequest,
        progress: &super::TextProgress,
    ) -> Result<LlmReply, LlmError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the LLM semaphore is open");
        self.inner.respond_streaming(request, progress).await
    }

    fn keeps_conversation(&self) -> bool {
        self.inner.keeps_conversation()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::watch;

    use super::*;
    use crate::llm::TokenUsage;

    /// Counts the calls in flight, and holds each until released.
    struct HeldModel {
        /// (in flight, most ever in flight)
        counts: Mutex<(usize, usize)>,
        in_flight: watch::Sender<usize>,
        release: watch::Receiver<bool>,
    }

    #[async_trait::async_trait]
    impl LanguageModel for HeldModel {
        async fn respond(&self, _: &LlmRequest) -> Result<LlmReply, LlmError> {
            {
                let mut counts = self.counts.lock().unwrap();
                counts.0 += 1;
                counts.1 = counts.1.max(counts.0);
                self.in_flight.send_replace(counts.0);
            }
            let mut release = self.release.clone();
            release.wait_for(|go| *go).await.unwrap();
            self.counts.lock().unwrap().0 -= 1;
            Ok(LlmReply {
                text: "ok".to_owned(),
                response_id: None,
                model: "m".to_owned(),
                usage: TokenUsage::default(),
            })
        }
    }

    /// Writes its answer through `progress`, as a streaming adapter does.
    struct StreamingModel;

    #[async_trait::async_trait]
    impl LanguageModel for StreamingModel {
        async fn respond(&self, _: &LlmRequest) -> Result<LlmReply, LlmError> {
            panic!("a streamed turn must not be answered whole");
        }

        async fn respond_streaming(
            &self,
            _: &LlmRequest,
            progress: &crate::llm::TextProgress,
        ) -> Result<LlmReply, LlmError> {
            progress.send_replace("partly written".to_owned());
            Ok(LlmReply {
                text: "partly written, then whole".to_owned(),
                response_id: None,
                model: "m".to_owned(),
                usage: TokenUsage::default(),
            })
        }
    }

    #[tokio::test]
    async fn a_limited_model_still_streams() {
        let model = limited(Arc::new(StreamingModel), 2);
        let (progress, seen) = watch::channel(String::new());
        let reply = model
            .respond_streaming(&LlmRequest::default(), &progress)
            .await
            .unwrap();
        assert_eq!(*seen.borrow(), "partly written");
        assert_eq!(reply.text, "partly written, then whole");
    }

    #[tokio::test]
    async fn no_more_requests_than_the_limit_are_in_flight_and_the_rest_wait_their_turn() {
        let (in_flight, mut seen) = watch::channel(0);
        let (release, held) = watch::channel(false);
        let inner = Arc::new(HeldModel {
            counts: Mutex::default(),
            in_flight,
            release: held,
        });
        let model = limited(inner.clone(), 2);
        let calls: Vec<_> = (0..5)
            .map(|_| {
                let model = model.clone();
                tokio::spawn(async move { model.respond(&LlmRequest::default()).await })
            })
            .collect();
        seen.wait_for(|n| *n == 2).await.unwrap();
        // Let every waiting call run as far as it can: none gets past the limit.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(inner.counts.lock().unwrap().1, 2);
        release.send_replace(true);
        for call in calls {
            assert!(call.await.unwrap().is_ok());
        }
        assert_eq!(
            inner.counts.lock().unwrap().1,
            2,
            "never more than two at once"
        );
    }
}
