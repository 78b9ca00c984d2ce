"""Encryption at rest of sensitive columns and dialog drafts (Fernet; MultiFernet rotates)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.config import Settings, SettingsError


class Cipher:
    """Encrypts with the first key and decrypts with any: a new key goes first to rotate."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @staticmethod
    def generate_key() -> bytes:
        return Fernet.generate_key()

    def encrypt(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def decrypt(self, token: bytes) -> bytes:
        return self._fernet.decrypt(token)

    def encrypt_json(self, value: Any) -> bytes:
        return self.encrypt(json.dumps(value, ensure_ascii=False).encode())

    def decrypt_json(self, token: bytes) -> Any:
        return json.loads(self.decrypt(token))


def load_cipher(settings: Settings, *, create: bool = False) -> Cipher:
    """The cipher from ROUNDTABLE_ENCRYPTION_KEY (comma-separated, newest first) or the key file.

    With create=True a missing key file is made (mode 0600) in the data directory, for the demo
    and for a first start; the key is never written anywhere inside the repository by us.
    """
    if settings.encryption_key is not None:
        raw = settings.encryption_key.get_secret_value()
        source = "ROUNDTABLE_ENCRYPTION_KEY"
    else:
        path = settings.key_file
        if not path.exists():
            if not create:
                raise SettingsError(f"ROUNDTABLE_ENCRYPTION_KEY: not set and no key file at {path}")
            _write_new_key(path)
        raw = path.read_text().strip()
        source = f"ROUNDTABLE_ENCRYPTION_KEY_FILE ({path})"
    keys = [part.strip().encode() for part in raw.split(",") if part.strip()]
    try:
        return Cipher(keys)
    except ValueError:
        raise SettingsError(f"{source}: not a valid Fernet key") from None


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(Cipher.generate_key().decode() + "\n")


__all__ = ["Cipher", "InvalidToken", "load_cipher"]
