"""In-memory store of files uploaded by the bot or by simulated people."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from typing import Any, Literal

FileKind = Literal["document", "photo", "voice", "sticker"]

_FOLDERS: dict[FileKind, tuple[str, str]] = {
    # kind: (folder in file_path, extension when the file name has none)
    "document": ("documents", "bin"),
    "photo": ("photos", "jpg"),
    "voice": ("voice", "oga"),
    "sticker": ("stickers", "webp"),
}
_SAFE_EXTENSION = re.compile(r"[a-z0-9]{1,10}")


@dataclass(frozen=True)
class StoredFile:
    """One stored file and the identifiers Telegram would give it."""

    file_id: str
    file_unique_id: str
    file_path: str
    file_name: str | None
    mime_type: str | None
    content: bytes
    size_known: bool = True  # Telegram may leave file_size out of a Document or a File

    @property
    def size(self) -> int:
        return len(self.content)

    def file_dict(self) -> dict[str, Any]:
        """The Telegram File object (getFile)."""
        found = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_path": self.file_path,
        }
        return found | ({"file_size": self.size} if self.size_known else {})

    def document_dict(self) -> dict[str, Any]:
        """The Telegram Document object."""
        document: dict[str, Any] = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.size_known:
            document["file_size"] = self.size
        if self.file_name is not None:
            document["file_name"] = self.file_name
        if self.mime_type is not None:
            document["mime_type"] = self.mime_type
        return document


class FileStore:
    """Files by file_id and by file_path."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}

    def add(
        self,
        content: bytes,
        *,
        kind: FileKind,
        file_name: str | None = None,
        mime_type: str | None = None,
        size_known: bool = True,
    ) -> StoredFile:
        number = len(self._by_id) + 1
        folder, default_extension = _FOLDERS[kind]
        extension = _extension(file_name) or default_extension
        if mime_type is None and file_name is not None:
            mime_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        stored = StoredFile(
            file_id=f"sandbox-{kind}-{number}",
            file_unique_id=f"sandbox-unique-{number}",
            file_path=f"{folder}/file_{number}.{extension}",
            file_name=file_name,
            mime_type=mime_type,
            content=content,
            size_known=size_known,
        )
        self._by_id[stored.file_id] = stored
        self._by_path[stored.file_path] = stored
        return stored

    def by_id(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        return self._by_path.get(file_path)


def _extension(file_name: str | None) -> str | None:
    if not file_name or "." not in file_name:
        return None
    extension = file_name.rsplit(".", 1)[1].lower()
    # The extension ends up in a URL path; keep it to harmless characters.
    return extension if _SAFE_EXTENSION.fullmatch(extension) else None
