"""The Telegram transport: HTTP to the Bot API, polling and webhook, update processing, standby,
and the delivery of the outbox's rows."""
