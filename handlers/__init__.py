"""Telegram UI of Round Table: one module per dialog, each exposing handlers()."""
