use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::commands::{BotCommand, BotSettings, SettingsChanges};
use super::errors::BotError;
use super::events::BotEvent;
use super::values::SealedToken;
use super::BotServices;
use crate::ids::{BotErrorKind, BotId};
use crate::text::InvalidField;

/// Where a bot is in its life. A new bot is disabled until an admin enables it, so that
/// nothing answers on Telegram before its settings are reviewed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BotLifecycle {
    #[default]
    Unregistered,
    Disabled,
    Enabled,
    Deleted,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bot {
    pub id: Option<BotId>,
    pub lifecycle: BotLifecycle,
    pub name: String,
    pub token: Option<SealedToken>,
    pub start_message: String,
    pub error_message: String,
    pub model: String,
    pub instructions: String,
    /// Where Telegram pushes updates, when a webhook is set.
    pub webhook_url: Option<String>,
    /// The update kinds the webhook was set with.
    pub webhook_updates: Vec<String>,
    /// What stops the bot from working, as (kind, message).
    pub last_error: Option<(BotErrorKind, String)>,
    /// The bot's @username on Telegram, once learned.
    #[serde(default)]
    pub username: Option<String>,
    /// Who may talk to the bot and how much it may spend.
    #[serde(default)]
    pub policy: super::policy::BotPolicy,
    /// What the bot does with voice messages and images.
    #[serde(default)]
    pub media: super::media::BotMediaSettings,
    /// Whether answers stream as they are written; off unless a `StreamingSet` said on.
    #[serde(default)]
    pub streaming: bool,
}

impl Bot {
    /// Refuses any command but `Create` on a bot that was never created, and any change to a
    /// deleted bot, naming what was attempted.
    fn ensure_changeable(&self, attempted: &'static str) -> Result<(), BotError> {
        match self.lifecycle {
            BotLifecycle::Unregistered => Err(BotError::NotFound),
            BotLifecycle::Deleted => Err(BotError::Deleted(attempted)),
            BotLifecycle::Disabled | BotLifecycle::Enabled => Ok(()),
        }
    }

    fn ensure_registered(&self) -> Result<(), BotError> {
        if self.lifecycle == BotLifecycle::Unregistered {
            return Err(BotError::NotFound);
        }
        Ok(())
    }

    fn settings_equal(&self, settings: &SettingValues) -> bool {
        self.name == settings.name
            && self.start_message == settings.start_message
            && self.error_message == settings.error_message
            && self.model == settings.model
            && self.instructions == settings.instructions
    }

    /// The settings after `changes`: each given one replaces the current value.
    fn merged(&self, changes: SettingsChanges) -> SettingValues {
        SettingValues {
            name: changes
                .name
                .map_or_else(|| self.name.clone(), |v| v.into_inner()),
            start_message: changes
                .start_message
                .map_or_else(|| self.start_message.clone(), |v| v.into_inner()),
            error_message: changes
                .error_message
                .map_or_else(|| self.error_message.clone(), |v| v.into_inner()),
            model: changes
                .model
                .map_or_else(|| self.model.clone(), |v| v.as_str().to_owned()),
            instructions: changes
                .instructions
                .map_or_else(|| self.instructions.clone(), |v| v.into_inner()),
        }
    }

    /// Records the streaming choice when one is given and differs from the current one.
    async fn record_streaming(&mut self, streaming: Option<bool>, sink: &EventSink<Self>) {
        if let Some(on) = streaming.filter(|on| *on != self.streaming) {
            sink.write(BotEvent::StreamingSet { on }, self).await;
        }
    }

    /// Records new settings, and a new token when it differs from the current one; nothing
    /// when nothing changes.
    async fn record_update(
        &mut self,
        token: Option<super::values::BotToken>,
        settings: SettingValues,
        services: &BotServices,
        sink: &EventSink<Self>,
    ) -> Result<(), BotError> {
        // A token equal to the current one is no change: compare fingerprints, since
        // sealing the same token twice gives different ciphertexts.
        let token = token.filter(|token| {
            self.token
                .as_ref()
                .map(|current| current.fingerprint.as_str())
                != Some(services.sealer.fingerprint(token).as_str())
        });
        if token.is_none() && self.settings_equal(&settings) {
            return Ok(());
        }
        let fixes_token = token.is_some()
            && self
                .last_error
                .as_ref()
                .is_some_and(|(kind, _)| *kind == BotErrorKind::TelegramInvalidToken);
        let updated = BotEvent::BotUpdated {
            name: settings.name,
            token: token.map(|token| services.sealer.seal(&token)),
            start_message: settings.start_message,
            error_message: settings.error_message,
            model: settings.model,
            instructions: settings.instructions,
        };
        sink.write(updated, self).await;
        // A new token is the fix for an invalid one: the bot may work again.
        if fixes_token {
            sink.write(BotEvent::BotErrorCleared, self).await;
        }
        Ok(())
    }
}

/// Settings as the events hold them (already checked when they were parsed).
struct SettingValues {
    name: String,
    start_message: String,
    error_message: String,
    model: String,
    instructions: String,
}

impl From<BotSettings> for SettingValues {
    fn from(settings: BotSettings) -> Self {
        Self {
            name: settings.name.into_inner(),
            start_message: settings.start_message.into_inner(),
            error_message: settings.error_message.into_inner(),
            model: settings.model.as_str().to_owned(),
            instructions: settings.instructions.into_inner(),
        }
    }
}

impl Aggregate for Bot {
    const TYPE: &'static str = "Bot";
    type Command = BotCommand;
    type Event = BotEvent;
    type Error = BotError;
    type Services = BotServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            BotCommand::Create {
                bot_id,
                token,
                settings,
            } => {
                if self.lifecycle != BotLifecycle::Unregistered {
                    return Err(BotError::AlreadyExists);
                }
                let streaming = settings.streaming;
                let created = BotEvent::BotCreated {
                    bot_id,
                    name: settings.name.into_inner(),
                    token: services.sealer.seal(&token),
                    start_message: settings.start_message.into_inner(),
                    error_message: settings.error_message.into_inner(),
                    model: settings.model.as_str().to_owned(),
                    instructions: settings.instructions.into_inner(),
                };
                sink.write(created, self).await;
                self.record_streaming(streaming, sink).await;
                return Ok(());
            }
            BotCommand::Update { token, settings } => {
                self.ensure_changeable("updated")?;
                let streaming = settings.streaming;
                let values = SettingValues::from(settings);
                self.record_update(token, values, services, sink).await?;
                self.record_streaming(streaming, sink).await;
                return Ok(());
            }
            BotCommand::Change { token, changes } => {
                self.ensure_changeable("updated")?;
                let streaming = changes.streaming;
                let values = self.merged(changes);
                self.record_update(token, values, services, sink).await?;
                self.record_streaming(streaming, sink).await;
                return Ok(());
            }
            BotCommand::Enable => {
                self.ensure_changeable("enabled")?;
                if self.lifecycle == BotLifecycle::Enabled {
                    return Ok(());
                }
                BotEvent::BotEnabled
            }
            BotCommand::Disable => {
                self.ensure_changeable("disabled")?;
                if self.lifecycle == BotLifecycle::Disabled {
                    return Ok(());
                }
                BotEvent::BotDisabled
            }
            BotCommand::Delete => {
                self.ensure_changeable("deleted")?;
                BotEvent::BotDeleted
            }
            BotCommand::RecordWebhookSet {
                url,
                allowed_updates,
            } => {
                if self.lifecycle != BotLifecycle::Enabled {
                    return Err(match self.lifecycle {
                        BotLifecycle::Unregistered => BotError::NotFound,
                        _ => BotError::NotEnabled,
                    });
                }
                if self.webhook_url.as_deref() == Some(url.as_str())
                    && self.webhook_updates == allowed_updates
                {
                    return Ok(());
                }
                BotEvent::WebhookSet {
                    url,
                    allowed_updates,
                }
            }
            BotCommand::RecordWebhookDeleted => {
                self.ensure_registered()?;
                if self.webhook_url.is_none() {
                    return Ok(());
                }
                BotEvent::WebhookDeleted
            }
            BotCommand::RecordError { kind, message } => {
                self.ensure_registered()?;
                if self.last_error.as_ref() == Some(&(kind, message.clone())) {
                    return Ok(());
                }
                BotEvent::BotErrorRecorded { kind, message }
            }
            BotCommand::ClearError { kind } => {
                self.ensure_registered()?;
                if self
                    .last_error
                    .as_ref()
                    .is_none_or(|(current, _)| *current != kind)
                {
                    return Ok(());
                }
                BotEvent::BotErrorCleared
            }
            BotCommand::RecordIdentity { username } => {
                self.ensure_registered()?;
                if self.username.as_deref() == Some(username.as_str()) {
                    return Ok(());
                }
                BotEvent::BotIdentified { username }
            }
            BotCommand::SetPolicy { policy } => {
                self.ensure_changeable("given a policy")?;
                policy.validate()?;
                if self.policy == policy {
                    return Ok(());
                }
                BotEvent::PolicySet { policy }
            }
            BotCommand::SetMediaSettings(settings) => {
                self.ensure_changeable("given media settings")?;
                settings.validate()?;
                if self.media == settings {
                    return Ok(());
                }
                BotEvent::MediaSettingsSet { settings }
            }
            BotCommand::GrantExtra(grant) => {
                self.ensure_changeable("granted extra use")?;
                if grant.person <= 0 {
                    return Err(InvalidField::new(
                        "person",
                        "must be a Telegram user id (a positive number)",
                    )
                    .into());
                }
                if grant.messages == 0 && grant.cost_micro_usd == 0 {
                    return Err(InvalidField::new(
                        "messages",
                        "grant some messages or some cost (micro-USD), or both",
                    )
                    .into());
                }
                if grant.cost_micro_usd < 0 {
                    return Err(InvalidField::new("cost_micro_usd", "cannot be negative").into());
                }
                crate::text::bounded("note", &grant.note, 0, 1000)?;
                BotEvent::ExtraGranted(grant)
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            BotEvent::BotCreated {
                bot_id,
                name,
                token,
                start_message,
                error_message,
                model,
                instructions,
            } => {
                self.id = Some(bot_id);
                self.lifecycle = BotLifecycle::Disabled;
                self.name = name;
                self.token = Some(token);
                self.start_message = start_message;
                self.error_message = error_message;
                self.model = model;
                self.instructions = instructions;
            }
            BotEvent::BotUpdated {
                name,
                token,
                start_message,
                error_message,
                model,
                instructions,
            } => {
                self.name = name;
                if let Some(token) = token {
                    self.token = Some(token);
                }
                self.start_message = start_message;
                self.error_message = error_message;
                self.model = model;
                self.instructions = instructions;
            }
            BotEvent::BotEnabled => self.lifecycle = BotLifecycle::Enabled,
            BotEvent::BotDisabled => self.lifecycle = BotLifecycle::Disabled,
            BotEvent::BotDeleted => self.lifecycle = BotLifecycle::Deleted,
            BotEvent::WebhookSet {
                url,
                allowed_updates,
            } => {
                self.webhook_url = Some(url);
                self.webhook_updates = allowed_updates;
            }
            BotEvent::WebhookDeleted => {
                self.webhook_url = None;
                self.webhook_updates.clear();
            }
            BotEvent::BotErrorRecorded { kind, message } => self.last_error = Some((kind, message)),
            BotEvent::BotErrorCleared => self.last_error = None,
            BotEvent::BotIdentified { username } => self.username = Some(username),
            BotEvent::PolicySet { policy } => self.policy = policy,
            BotEvent::MediaSettingsSet { settings } => self.media = settings,
            // Counted by the usage read model; the bot itself keeps no tally.
            BotEvent::ExtraGranted(_) => {}
            BotEvent::StreamingSet { on } => self.streaming = on,
        }
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
