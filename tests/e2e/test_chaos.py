"""Chaos: the bot as its own process under a steady load of people, killed with SIGKILL at random
moments and restarted, with Telegram failing at a set rate, and on PostgreSQL with the database
going away for a moment. The harness and what its counts mean: bench/chaos.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.chaos import Chaos, Options, Report
from bench.dbproxy import DatabaseProxy
from bot.sandbox.faults import Faults
from tests.conftest import POSTGRES_URL

# Eight referrers (a team: one conference polling, one set), twelve who only get reminders, two
# of whom blocked the bot. About 250 updates and 40 notifications in 15 to 40 seconds.
PEOPLE = Options(people=8, bystanders=12, blocked=2, remind_over=8.0)


def _checked(report: Report) -> None:
    print(report.line())  # the counts, shown with -s or -rA
    assert report.violations == [], report.explained()
    counts = report.counts
    assert counts["acknowledged"] == counts["updates_sent"] > 0
    assert counts["answers_stored"] == counts["answers_acknowledged"] >= 4 * PEOPLE.people
    assert counts["delivered"] == counts["notifications_due"] > 0
    assert counts["duplicated"] <= counts["in_flight_at_kills"] + counts["held_back_sends"]


async def test_killed_at_random_moments_the_bot_loses_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    options = replace(PEOPLE, kills=3, seed=1)
    report = await Chaos(options, database_url, tmp_path, log=print).run()
    _checked(report)
    assert report.counts["kills"] == 3


async def test_with_telegram_failing_as_well_the_same_holds(
    database_url: str, tmp_path: Path
) -> None:
    """429 with retry_after, 500, 502, dropped connections and answers that come too late, at
    6 % of the bot's calls, and people who blocked the bot: marked unreachable, not retried."""
    late = {"429": 1.0, "500": 1.0, "502": 1.0, "drop": 1.0, "timeout": 0.5}  # 5 s each
    options = replace(PEOPLE, kills=3, seed=2, faults=Faults(rate=0.06, seed=2, mix=late))
    report = await Chaos(options, database_url, tmp_path, log=print).run()
    _checked(report)
    assert report.counts["kills"] == 3
    assert sum(report.counts["faults"].values()) > 20
    assert report.counts["blocked_rows"] == 2


@pytest.mark.skipif(POSTGRES_URL is None, reason="the database going away: PostgreSQL only")
async def test_the_database_going_away_for_a_moment_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """Every connection to PostgreSQL is cut and new ones refused for 3 s, twice, as a restart
    does (through a proxy: the shared server itself stays up). The bot does not crash; updates
    wait, or are answered with "try again in a moment"; nothing acknowledged is lost."""
    options = replace(PEOPLE, kills=0, outages=2, seed=3)
    async with DatabaseProxy.to(database_url) as proxy:
        report = await Chaos(options, database_url, tmp_path, proxy=proxy, log=print).run()
        assert proxy.cuts == 2
    _checked(report)
    assert report.counts["waited_for_database"] > 0  # the outages did hit the bot
