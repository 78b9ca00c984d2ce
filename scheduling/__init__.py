"""Pure time logic of Round Table: no I/O, no Telegram, no database."""
