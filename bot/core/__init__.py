"""The core: models, database, outbox planning, encryption, languages. No Telegram here."""
