"""SIGKILL during a mail fan-out: the sending process (the MailDispatcher in a process of its own,
bench/mail.py) is killed halfway through 160 invitation mails and started again. Every
address gets its invitation, and a second copy only if it was in flight at the kill (the server
had it, its row was not yet marked sent)."""

from __future__ import annotations

from pathlib import Path

from bench import mail


async def test_a_killed_mail_fan_out_loses_nothing_and_repeats_only_what_was_in_flight(
    tmp_path: Path,
) -> None:
    killed = await mail.killed_run(tmp_path, mails=160, per_second=100.0, concurrency=4)
    assert killed.lost == 0
    assert killed.duplicates <= killed.in_flight <= 4
