"""Round Table: a Telegram bot for multi-agency case conferences about children at risk."""
