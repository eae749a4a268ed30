-- What a bot does with voice messages and images (issue 16): its transcription model and
-- whether its model takes images, each null when the platform decides.
ALTER TABLE bots ADD COLUMN media jsonb NOT NULL DEFAULT '{}';
