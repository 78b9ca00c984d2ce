"""Encryption at rest of sensitive columns and dialog drafts (Fernet; MultiFernet rotates)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.core.config import Settings, SettingsError


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

    def rotate(self, token: bytes) -> bytes:
        """The same plaintext (and timestamp), decrypted with any key, encrypted with the first."""
        return self._fernet.rotate(token)

    def encrypt_json(self, value: Any) -> bytes:
        return self.encrypt(json.dumps(value, ensure_ascii=False).encode())

    def decrypt_json(self, token: bytes) -> Any:
        return json.loads(self.decrypt(token))


def load_cipher(settings: Settings, *, create: bool = False) -> Cipher:
    """The cipher from ROUNDTABLE_ENCRYPTION_KEY (comma-separated, newest first) or the key file.

    With create=True a missing key file is made (mode 0600) in the data directory, for the demo
    and for a first start; the key is never written anywhere inside the repository by us.
    """
    return Cipher(load_keys(settings, create=create))


def load_keys(settings: Settings, *, create: bool = False) -> list[bytes]:
    """The valid Fernet keys of load_cipher, newest first."""
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
        Cipher(keys)
    except ValueError:
        raise SettingsError(f"{source}: not a valid Fernet key") from None
    return keys


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Replace the key file atomically with these keys (newest first), mode 0600.

    A temporary file in the same directory (mkstemp makes it 0600) takes the keys and is renamed
    over the old file, so a reader sees the old list or the new one, never half of either.
    """
    Cipher(keys)  # never write a file that load_keys would refuse
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        _same_access(path, descriptor)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(",".join(key.decode() for key in keys) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _same_access(path: Path, descriptor: int) -> None:
    """Give the new file the old one's owner, group and mode, so that whoever could read the
    key before still can: root rotating the key of a service that reads it as its own user or
    group (a deployment's /etc/roundtable/secret.key, mode 0640 root:roundtable)."""
    try:
        old = path.stat()
    except FileNotFoundError:
        return
    with contextlib.suppress(PermissionError):  # only root may give a file away
        os.fchown(descriptor, old.st_uid, old.st_gid)
    os.fchmod(descriptor, stat.S_IMODE(old.st_mode))


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX; a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(Cipher.generate_key().decode() + "\n")


__all__ = ["Cipher", "InvalidToken", "load_cipher", "load_keys", "write_key_file"]
