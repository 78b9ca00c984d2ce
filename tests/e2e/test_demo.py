"""`make run` without a token: the demo plays the whole story and writes the transcripts."""

from __future__ import annotations

import os
from pathlib import Path

import icalendar

from tests.conftest import run_roundtable


def test_run_without_a_token_says_so_and_plays_the_demo(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROUNDTABLE_")}
    # Settings meant for the real bot must not pull the demo into real data.
    real_database = tmp_path / "production.sqlite3"
    environment["ROUNDTABLE_DATABASE_URL"] = f"sqlite:///{real_database}"
    environment["ROUNDTABLE_ENCRYPTION_KEY_FILE"] = str(tmp_path / "production.key")
    out = tmp_path / "out"
    result = run_roundtable(environment, tmp_path, "run", "--or-demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "ROUNDTABLE_TOKEN is not set, so this runs the built-in demo instead of the bot."
    )
    assert "===== Olena (psychologist) =====" in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # nothing left behind

    written = run_roundtable(environment, tmp_path, "demo", "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert sorted(path.name for path in out.glob("*.txt")) == [
        "admin.txt",
        "coordinator.txt",
        "police.txt",
        "psychologist.txt",
        "stranger.txt",
        "teacher.txt",
    ]
    # Each participant's calendar files: the invitation, the new time, the cancellation.
    for role in ("coordinator", "police", "psychologist", "teacher"):
        files = [out / f"{role}-{n}-PK-2026-0001.ics" for n in (1, 2, 3)]
        events = []
        for path in files:
            calendar = icalendar.Calendar.from_ical(path.read_bytes())
            (event,) = calendar.walk("VEVENT")
            events.append((str(calendar["METHOD"]), int(str(event["SEQUENCE"])), str(event["UID"])))
        assert [(method, sequence) for method, sequence, _uid in events] == [
            ("REQUEST", 0),
            ("REQUEST", 1),
            ("CANCEL", 2),
        ]
        assert len({uid for _m, _s, uid in events}) == 1
        assert "Kryštof" not in "".join(path.read_text(encoding="utf-8") for path in files)
    psychologist = (out / "psychologist.txt").read_text(encoding="utf-8")
    assert "Ви приєдналися до установи PPP Cheb" in psychologist
    stranger = (out / "stranger.txt").read_text(encoding="utf-8")
    assert "Tento odkaz s pozvánkou už byl použit." in stranger
    assert "Členové (5)" in (out / "admin.txt").read_text(encoding="utf-8")
    teacher = (out / "teacher.txt").read_text(encoding="utf-8")
    assert "Kód vašeho oznámení je R-2026-0001." in teacher
    assert "Vaše oznámení R-2026-0001 bylo přijato." in teacher
    coordinator = (out / "coordinator.txt").read_text(encoding="utf-8")
    assert "Bot: New referral R-2026-0001 from ZŠ Hradební.\n    Urgency: routine\n" in coordinator
    assert "You accepted R-2026-0001. Case PK-2026-0001 is open" in coordinator
    police = (out / "police.txt").read_text(encoding="utf-8")
    assert "R-2026-0001" not in police and "Kryštof" not in police
    assert "Tomáš Beneš) declined the case conference PK-2026-0001" in coordinator
    assert "Ten den mám celý den soud." in coordinator  # the reason, to the coordinator only
    assert "⏰ Připomenutí" in teacher
