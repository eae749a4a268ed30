//! Media the model can take: a voice message or audio file is fetched, transcribed and then
//! answered like a text; a photo or image document is fetched and shown to a model that
//! takes images, with its caption as the question. Everything else (stickers, videos, an
//! image for a model without eyes) gets the media notice, as before ([`super::generate`]).
//!
//! Such a turn passes the same screening as a text that asks the model, before anything is
//! fetched: a person who may not use the bot, or is over a budget, costs no download, no
//! transcription and no model call.
//!
//! The steps are recorded so that a crash or a retry repeats as little as possible: the
//! transcript is recorded (`MediaTranscribed`, sealed for the person) before the model is
//! asked, so a retry of the model call does not transcribe again; an image is recorded by
//! its fingerprint (`ImageAttached`: SHA-256, size, Telegram file id), never its bytes, and
//! fetched again when needed.
//!
//! Follow-up questions about an image: in Responses mode the provider's chain keeps it. When
//! the history travels with each request (Chat Completions, or a Responses chain started
//! afresh), the images of the exchanges sent along are fetched again from Telegram by file
//! id (the newest [`MAX_HISTORY_IMAGES`] of them) and checked against their recorded hash.
//! Fetching again rather than caching bytes keeps every process the same and memory flat,
//! at the cost of one small download per image per follow-up.

use std::sync::Arc;

use aggregates::bot::texts::TextKey;
use aggregates::chat::media::{self, ImageRef, MediaFile, Transcription};
use aggregates::chat::{Chat, ChatCommand, OpenTurn, ResponseKind, TurnKind};
use projections::bots::BotRow;
use sha2::{Digest, Sha256};

use super::policy::{self, LlmBot, LlmOutcome, Next, Unanswerable};
use super::screen::Screened;
use super::texts::system_text;
use super::worker::{subject, TurnContext, TurnError, TurnWorker};
use crate::event_store::LoadedAggregate;
use crate::llm::images::sniff_image_type;
use crate::llm::prompt::MAX_HISTORY_IMAGES;
use crate::llm::{ErrorClass, ImageTurn, LlmError, PromptImage, Transcriber, TranscriptionRequest};
use crate::telegram::failures::TelegramFailure;
use crate::telegram::files::DownloadError;
use crate::telegram::BotMessenger;
use aggregates::ids::BotErrorKind;

/// The limits and the default transcription model (configuration, see `MediaArgs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    /// For bots that name no transcription model of their own.
    pub transcription_model: String,
    /// The longest voice message or audio file transcribed.
    pub max_audio_secs: u32,
    /// The largest voice message, audio file fetched.
    pub max_file_bytes: u64,
    /// The largest image fetched for a model.
    pub max_image_bytes: u64,
}

/// What the worker needs for media: the settings and the transcription client.
#[derive(Clone)]
pub struct MediaTools {
    pub settings: MediaSettings,
    pub transcriber: Arc<dyn Transcriber>,
}

/// What a media turn comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MediaPlan {
    /// Nothing the model can take: the media notice, as for a sticker.
    Notice,
    /// Over the limits: the person is told so.
    TooLarge,
    /// Fetch and transcribe this file.
    Transcribe(MediaFile),
    /// The transcript is recorded: answer it.
    AnswerTranscript,
    /// Fetch this image and show it to the model.
    ShowImage(MediaFile),
}

/// What to do with `turn` under `settings`, for a bot whose model does or does not take
/// images. Pure: the limits and the choice of a photo size are decided here.
pub(super) fn plan(turn: &OpenTurn, settings: &MediaSettings, takes_images: bool) -> MediaPlan {
    let TurnKind::Media { media: kind } = &turn.kind else {
        return MediaPlan::Notice;
    };
    match kind.as_str() {
        media::VOICE | media::AUDIO => {
            if turn.transcription.is_some() {
                return MediaPlan::AnswerTranscript;
            }
            let Some(file) = turn.files.first() else {
                return MediaPlan::Notice;
            };
            let too_long = file
                .duration_secs
                .is_some_and(|secs| secs > settings.max_audio_secs);
            let too_big = file
                .file_size
                .is_some_and(|size| size > settings.max_file_bytes);
            if too_long || too_big {
                MediaPlan::TooLarge
            } else {
                MediaPlan::Transcribe(file.clone())
            }
        }
        media::PHOTO | media::DOCUMENT if takes_images => {
            let images: Vec<&MediaFile> = turn.files.iter().filter(|f| f.is_image(kind)).collect();
            if images.is_empty() {
                return MediaPlan::Notice;
            }
            // The largest size within the limit (a size of unknown weight is tried, and the
            // download enforces the limit).
            let fitting = images
                .iter()
                .filter(|f| {
                    f.file_size
                        .is_none_or(|size| size <= settings.max_image_bytes)
                })
                .max_by_key(|f| {
                    let pixels = u64::from(f.width.unwrap_or(0)) * u64::from(f.height.unwrap_or(0));
                    (pixels, f.file_size.unwrap_or(0))
                });
            match fitting {
                Some(file) => MediaPlan::ShowImage((*file).clone()),
                None => MediaPlan::TooLarge,
            }
        }
        _ => MediaPlan::Notice,
    }
}

/// The turn's answer cost, with what transcribing its voice message cost.
pub(super) fn with_transcription_cost(mut kind: ResponseKind, turn: &OpenTurn) -> ResponseKind {
    if let (ResponseKind::Llm { cost_micro_usd, .. }, Some(transcription)) =
        (&mut kind, &turn.transcription)
    {
        *cost_micro_usd = cost_micro_usd.saturating_add(transcription.cost_micro_usd);
    }
    kind
}

/// A failed download as the model step's failure: retried or given up on like a model call.
fn download_failure(failure: &TelegramFailure) -> LlmError {
    let class = match failure.class {
        aggregates::chat::FailureClass::Retryable => ErrorClass::Retryable,
        _ => ErrorClass::Fatal,
    };
    LlmError {
        class,
        status: (failure.code != 0).then_some(failure.code),
        code: Some("telegram_file".to_owned()),
        message: format!("cannot fetch the file from Telegram: {}", failure.message),
        retry_after: failure.retry_after,
    }
}

impl TurnWorker {
    /// The bot's transcription model.
    fn transcription_model(&self, bot: &BotRow) -> String {
        bot.media
            .transcription_model
            .clone()
            .unwrap_or_else(|| self.media.settings.transcription_model.clone())
    }

    /// Whether the bot's model takes images: the bot says so, else the model table.
    pub(super) fn takes_images(&self, bot: &BotRow) -> bool {
        bot.media
            .images
            .unwrap_or_else(|| self.prices.takes_images(&bot.model))
    }

    /// A voice message, audio file or image the model can take: worked here, and `None`
    /// for media answered with the notice.
    pub(super) async fn answer_readable_media(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
    ) -> Result<Option<Next>, TurnError> {
        let plan = plan(ctx.turn, &self.media.settings, self.takes_images(bot));
        if plan == MediaPlan::Notice {
            return Ok(None);
        }
        let asks_model = plan != MediaPlan::TooLarge;
        if let Screened::Refused = self.screen(work, ctx, bot, asks_model).await? {
            return Ok(Some(Next::Continue));
        }
        let next = match plan {
            MediaPlan::Notice => return Ok(None),
            MediaPlan::TooLarge => {
                self.respond_too_large(work, ctx, bot).await?;
                Next::Continue
            }
            MediaPlan::Transcribe(file) => self.transcribe(work, ctx, bot, &file).await?,
            MediaPlan::AnswerTranscript => match self.vault.open(&ctx.turn.user_text).await? {
                // Silence, or noise: the model is not asked about nothing.
                Some(text) if text.trim().is_empty() => {
                    let language = ctx.turn.language.as_deref();
                    let text = system_text(bot, TextKey::VoiceUnclear, language);
                    self.respond(work, ctx, &text, ResponseKind::Notice, false)
                        .await?;
                    Next::Continue
                }
                Some(text) => self.ask_llm(work, ctx, bot, text, Vec::new()).await?,
                None => {
                    let decision = policy::unanswerable(ctx.turn, Unanswerable::Forgotten);
                    self.carry_out(work, ctx, decision).await?
                }
            },
            MediaPlan::ShowImage(file) => self.show_image(work, ctx, bot, &file).await?,
        };
        Ok(Some(next))
    }

    async fn respond_too_large(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
    ) -> Result<(), TurnError> {
        let settings = &self.media.settings;
        let text = system_text(bot, TextKey::MediaTooLarge, ctx.turn.language.as_deref())
            .replace(
                "{max_minutes}",
                &settings.max_audio_secs.div_ceil(60).to_string(),
            )
            .replace(
                "{max_megabytes}",
                &(settings.max_file_bytes / (1024 * 1024)).max(1).to_string(),
            );
        self.respond(work, ctx, &text, ResponseKind::Notice, false)
            .await
    }

    /// The bot's Telegram end, or the turn's end when its token cannot be opened.
    async fn files_of(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
    ) -> Result<Result<Arc<dyn BotMessenger>, Next>, TurnError> {
        match self.telegram.bot(bot.id, &bot.token_ciphertext) {
            Ok(messenger) => Ok(Ok(messenger)),
            Err(e) => {
                let decision =
                    policy::unanswerable(ctx.turn, Unanswerable::TokenUnreadable(e.to_string()));
                Ok(Err(self.carry_out(work, ctx, decision).await?))
            }
        }
    }

    /// Fetches and transcribes the voice message, and records the transcript; the worker
    /// then finds the turn transcribed and asks the model.
    async fn transcribe(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        file: &MediaFile,
    ) -> Result<Next, TurnError> {
        let messenger = match self.files_of(work, ctx, bot).await? {
            Ok(messenger) => messenger,
            Err(next) => return Ok(next),
        };
        let typing = self.show_typing(bot, ctx.chat);
        let fetched = messenger
            .download_file(&file.file_id, self.media.settings.max_file_bytes)
            .await;
        let audio = match fetched {
            Ok(audio) => audio,
            Err(error) => {
                if let Some(typing) = typing {
                    typing.abort();
                }
                return match error {
                    DownloadError::TooLarge => {
                        self.respond_too_large(work, ctx, bot).await?;
                        Ok(Next::Continue)
                    }
                    DownloadError::Failed(failure) => {
                        self.media_failed(work, ctx, bot, download_failure(&failure))
                            .await
                    }
                };
            }
        };
        let model = self.transcription_model(bot);
        let request = TranscriptionRequest {
            model: model.clone(),
            mime_type: file.mime_type.clone(),
            audio,
        };
        let started = std::time::Instant::now();
        let result = self.media.transcriber.transcribe(request).await;
        if let Some(typing) = typing {
            typing.abort();
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let transcript = match result {
            Ok(transcript) => transcript,
            Err(error) => {
                tracing::warn!(elapsed_ms, error = %error, "transcription failed");
                return self.media_failed(work, ctx, bot, error).await;
            }
        };
        let duration_secs = transcript.usage.seconds.or(file.duration_secs).unwrap_or(0);
        let usage = transcript.usage;
        let cost = self
            .prices
            .transcription_cost_micro_usd(
                &model,
                usage.input_tokens,
                usage.output_tokens,
                duration_secs,
            )
            .unwrap_or_else(|| {
                tracing::warn!(%model, "no price for this transcription model; its cost is recorded as 0");
                0
            });
        crate::metrics::cost(&model, cost);
        tracing::info!(
            elapsed_ms,
            duration_secs,
            cost_micro_usd = cost,
            "voice message transcribed"
        );
        let transcription = Transcription {
            text: self
                .vault
                .seal(subject(ctx.chat, ctx.turn), &transcript.text)
                .await?,
            model,
            duration_secs,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_micro_usd: cost,
        };
        let command = ChatCommand::RecordTranscription {
            update_id: ctx.turn.update_id,
            transcription,
        };
        self.record(work, ctx.bot_id, command, &ctx.metadata)
            .await?;
        Ok(Next::Continue)
    }

    /// Fetches the image, records its fingerprint, and asks the model with the caption.
    async fn show_image(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        file: &MediaFile,
    ) -> Result<Next, TurnError> {
        let Some(caption) = self.vault.open(&ctx.turn.user_text).await? else {
            let decision = policy::unanswerable(ctx.turn, Unanswerable::Forgotten);
            return self.carry_out(work, ctx, decision).await;
        };
        let messenger = match self.files_of(work, ctx, bot).await? {
            Ok(messenger) => messenger,
            Err(next) => return Ok(next),
        };
        let fetched = messenger
            .download_file(&file.file_id, self.media.settings.max_image_bytes)
            .await;
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(DownloadError::TooLarge) => {
                self.respond_too_large(work, ctx, bot).await?;
                return Ok(Next::Continue);
            }
            Err(DownloadError::Failed(failure)) => {
                return self
                    .media_failed(work, ctx, bot, download_failure(&failure))
                    .await;
            }
        };
        // The bytes decide the type: a document may say anything.
        let Some(mime_type) = sniff_image_type(&bytes) else {
            let text = system_text(bot, TextKey::MediaNotice, ctx.turn.language.as_deref());
            self.respond(work, ctx, &text, ResponseKind::Notice, false)
                .await?;
            return Ok(Next::Continue);
        };
        let image = ImageRef {
            file_id: file.file_id.clone(),
            sha256: sha256_hex(&bytes),
            bytes: bytes.len() as u64,
            mime_type: mime_type.to_owned(),
        };
        let command = ChatCommand::RecordImage {
            update_id: ctx.turn.update_id,
            image,
        };
        self.record(work, ctx.bot_id, command, &ctx.metadata)
            .await?;
        let images = vec![PromptImage::new(ImageTurn::Current, mime_type, &bytes)];
        self.ask_llm(work, ctx, bot, caption, images).await
    }

    /// A failed download or transcription: retried, or answered with the error message,
    /// like a failed model call.
    async fn media_failed(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        error: LlmError,
    ) -> Result<Next, TurnError> {
        let error_message = system_text(bot, TextKey::Error, ctx.turn.language.as_deref());
        let llm_bot = LlmBot {
            shows_llm_error: self
                .bot_rows
                .shows_error(ctx.bot_id, bot, BotErrorKind::Llm),
            error_message: &error_message,
        };
        let decision = policy::after_llm(
            ctx.turn,
            LlmOutcome::Failed(&error),
            &llm_bot,
            &self.retries(),
        );
        self.carry_out(work, ctx, decision).await
    }

    /// The images of the earlier exchanges sent along with a turn (`(request history index,
    /// image)`), fetched again, the newest [`MAX_HISTORY_IMAGES`]; one that cannot be
    /// fetched, or is no longer the same, is left out.
    pub(super) async fn earlier_images(
        &self,
        bot: &BotRow,
        earlier: &[(usize, ImageRef)],
    ) -> Vec<PromptImage> {
        if earlier.is_empty() || !self.takes_images(bot) {
            return Vec::new();
        }
        let Ok(messenger) = self.telegram.bot(bot.id, &bot.token_ciphertext) else {
            return Vec::new();
        };
        let mut images = Vec::new();
        for (index, image) in earlier.iter().rev().take(MAX_HISTORY_IMAGES) {
            match messenger
                .download_file(&image.file_id, self.media.settings.max_image_bytes)
                .await
            {
                Ok(bytes) if sha256_hex(&bytes) == image.sha256 => images.push(PromptImage::new(
                    ImageTurn::History(*index),
                    &image.mime_type,
                    &bytes,
                )),
                Ok(_) => tracing::warn!("an earlier image changed on Telegram; left out"),
                Err(error) => {
                    tracing::warn!(%error, "an earlier image cannot be fetched; left out")
                }
            }
        }
        images.reverse();
        images
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use aggregates::ids::{TurnKey, UpdateId};
    use aggregates::personal::PersonalText;

    use super::*;

    fn settings() -> MediaSettings {
        MediaSettings {
            transcription_model: "gpt-4o-mini-transcribe".into(),
            max_audio_secs: 600,
            max_file_bytes: 20_000_000,
            max_image_bytes: 5_000_000,
        }
    }

    fn turn(media: &str, files: Vec<MediaFile>) -> OpenTurn {
        OpenTurn {
            update_id: TurnKey::Update(UpdateId(7)),
            message_id: 70,
            user_text: PersonalText::plain(""),
            from_user_id: Some(42),
            response: None,
            attempts: 0,
            kind: TurnKind::Media {
                media: media.into(),
            },
            retry_at: None,
            sent_at: None,
            language: None,
            from_username: None,
            refusal: None,
            files,
            transcription: None,
            image: None,
        }
    }

    fn voice(secs: u32, size: u64) -> MediaFile {
        MediaFile {
            file_id: "voice-1".into(),
            file_size: Some(size),
            duration_secs: Some(secs),
            mime_type: Some("audio/ogg".into()),
            ..MediaFile::default()
        }
    }

    fn photo(id: &str, side: u32, size: u64) -> MediaFile {
        MediaFile {
            file_id: id.into(),
            file_size: Some(size),
            width: Some(side),
            height: Some(side),
            ..MediaFile::default()
        }
    }

    #[test]
    fn a_voice_message_within_the_limits_is_transcribed_and_a_longer_one_refused() {
        let short = voice(600, 1_000_000);
        assert_eq!(
            plan(&turn("voice", vec![short.clone()]), &settings(), false),
            MediaPlan::Transcribe(short)
        );
        assert_eq!(
            plan(&turn("voice", vec![voice(601, 1_000)]), &settings(), false),
            MediaPlan::TooLarge
        );
        assert_eq!(
            plan(
                &turn("audio", vec![voice(60, 20_000_001)]),
                &settings(),
                false
            ),
            MediaPlan::TooLarge
        );
        let mut transcribed = turn("voice", vec![voice(5, 10)]);
        transcribed.transcription = Some(Transcription {
            text: PersonalText::plain("hi"),
            model: "whisper-1".into(),
            duration_secs: 5,
            input_tokens: 0,
            output_tokens: 0,
            cost_micro_usd: 500,
        });
        assert_eq!(
            plan(&transcribed, &settings(), false),
            MediaPlan::AnswerTranscript
        );
    }

    #[test]
    fn the_largest_photo_size_within_the_limit_is_shown_to_a_model_that_takes_images() {
        let sizes = vec![
            photo("small", 90, 1_000),
            photo("medium", 800, 80_000),
            photo("huge", 4000, 6_000_000),
        ];
        let photo_turn = turn("photo", sizes);
        assert!(matches!(
            plan(&photo_turn, &settings(), true),
            MediaPlan::ShowImage(f) if f.file_id == "medium"
        ));
        assert_eq!(plan(&photo_turn, &settings(), false), MediaPlan::Notice);
        let only_huge = turn("photo", vec![photo("huge", 4000, 6_000_000)]);
        assert_eq!(plan(&only_huge, &settings(), true), MediaPlan::TooLarge);
    }

    #[test]
    fn only_image_documents_are_shown_and_other_media_get_the_notice() {
        let pdf = MediaFile {
            file_id: "doc".into(),
            mime_type: Some("application/pdf".into()),
            ..MediaFile::default()
        };
        assert_eq!(
            plan(&turn("document", vec![pdf]), &settings(), true),
            MediaPlan::Notice
        );
        let png = MediaFile {
            file_id: "png".into(),
            mime_type: Some("image/png".into()),
            ..MediaFile::default()
        };
        assert!(matches!(
            plan(&turn("document", vec![png]), &settings(), true),
            MediaPlan::ShowImage(_)
        ));
        assert_eq!(
            plan(&turn("sticker", vec![]), &settings(), true),
            MediaPlan::Notice
        );
        assert_eq!(
            plan(
                &turn(aggregates::chat::ADDED_TO_GROUP, vec![]),
                &settings(),
                true
            ),
            MediaPlan::Notice
        );
    }
}
