"""Calendar replies as real clients write them (tests/fixtures/replies, with their origins),
filled in for a conference and an attendee."""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path
from string import Template

FIXTURES = Path(__file__).parent / "fixtures" / "replies"
SHAPES = ("rfc6047", "rfc5546", "outlook", "google", "apple", "thunderbird", "sabre")
ORGANIZER = "konference@mesto.cz"
# How each client writes a COMMENT (Exchange names the language).
COMMENT = {"outlook": "COMMENT;LANGUAGE=cs-CZ:"}
_MARKER = "X-Fixture-Encode: base64"


def reply_mail(
    shape: str,
    *,
    uid: str,
    sequence: int,
    attendee: str,
    partstat: str = "ACCEPTED",
    sender: str | None = None,
    comment: str | None = None,
    organizer: str = ORGANIZER,
    message_id: str | None = None,
) -> bytes:
    """The mail `shape` sends for `attendee` (From: `sender`, by default the attendee)."""
    template = Template((FIXTURES / f"{shape}.eml").read_text("utf-8"))
    line = ""
    if comment:
        escaped = comment.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
        line = f"{COMMENT.get(shape, 'COMMENT:')}{escaped}\n"
    text = template.substitute(
        UID=uid,
        SEQUENCE=sequence,
        ATTENDEE=attendee,
        FROM=sender or attendee,
        ORGANIZER=organizer,
        PARTSTAT=partstat,
        MESSAGE_ID=message_id or f"{uuid.uuid4().hex}@client.example",
        COMMENT=line,
    )
    return _encode_marked(text).replace("\n", "\r\n").encode("utf-8")


def _encode_marked(text: str) -> str:
    """Parts marked X-Fixture-Encode: their body base64-encoded, as the client sends it."""
    boundaries = set(re.findall(r'boundary="?([^";\s]+)"?', text))
    ends = {f"--{b}" for b in boundaries} | {f"--{b}--" for b in boundaries}
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i] != _MARKER:
            out.append(lines[i])
            i += 1
            continue
        i += 1
        if not any(h.lower().startswith("content-transfer-encoding") for h in _header(out)):
            out.append("Content-Transfer-Encoding: base64")
        while lines[i] != "":  # the rest of the part's header
            out.append(lines[i])
            i += 1
        out.append("")
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i] not in ends:
            body.append(lines[i])
            i += 1
        content = "\r\n".join(body).rstrip("\r\n") + "\r\n"
        encoded = base64.b64encode(content.encode("utf-8")).decode("ascii")
        out += [encoded[j : j + 76] for j in range(0, len(encoded), 76)] + [""]
    return "\n".join(out)


def _header(out: list[str]) -> list[str]:
    """The header lines of the part being written (back to the blank line before it)."""
    header: list[str] = []
    for line in reversed(out):
        if line == "":
            break
        header.append(line)
    return header
