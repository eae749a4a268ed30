//! A person on Telegram, as far as erasure goes: the record that their personal data was
//! forgotten (the key destroyed), kept for auditors in the append-only log.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub forgotten: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonCommand {
    /// Their key was destroyed; `had_data` says whether there was one.
    RecordForgotten {
        telegram_user_id: i64,
        had_data: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PersonEvent {
    PersonalDataForgotten {
        telegram_user_id: i64,
        had_data: bool,
    },
}

impl DomainEvent for PersonEvent {
    fn event_type(&self) -> String {
        "PersonalDataForgotten".to_owned()
    }

    fn event_version(&self) -> String {
        crate::EVENT_VERSION.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a person command cannot fail")]
pub struct PersonError;

impl Aggregate for Person {
    const TYPE: &'static str = "Person";
    type Command = PersonCommand;
    type Event = PersonEvent;
    type Error = PersonError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let PersonCommand::RecordForgotten {
            telegram_user_id,
            had_data,
        } = command;
        sink.write(
            PersonEvent::PersonalDataForgotten {
                telegram_user_id,
                had_data,
            },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let PersonEvent::PersonalDataForgotten { .. } = event;
        self.forgotten += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    #[test]
    fn every_forget_is_recorded() {
        TestFramework::<Person>::with(())
            .given(vec![PersonEvent::PersonalDataForgotten {
                telegram_user_id: 42,
                had_data: true,
            }])
            .when(PersonCommand::RecordForgotten {
                telegram_user_id: 42,
                had_data: false,
            })
            .then_expect_events(vec![PersonEvent::PersonalDataForgotten {
                telegram_user_id: 42,
                had_data: false,
            }]);
    }
}
