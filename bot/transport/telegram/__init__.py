"""The Telegram transport: HTTP to the Bot API, polling and webhook, update processing, standby."""
