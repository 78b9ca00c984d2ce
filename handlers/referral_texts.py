"""How a referral reads wherever it is shown: the names of its concerns and urgencies, the
guardians' answer, why a typed answer was refused, the emergency numbers. Shared by the
referrer's dialog (handlers.referral), the coordinators' (handlers.triage) and the referral
notifications (handlers.referral_notices)."""

from __future__ import annotations

from bot.core.i18n import N_, Translator
from bot.core.models import Consent, Urgency
from bot.services import drafting
from bot.services.referrals import Rejected
from handlers.common import esc

# The referrer's dialog's state while answering a coordinator's question: a typed step too.
REPLY = "reply"

CATEGORY_NAMES = {
    "truancy": N_("truancy"),
    "bullying": N_("bullying and cyberbullying"),
    "aggression": N_("aggression and violence"),
    "drugs": N_("addictive substances"),
    "alcohol": N_("alcohol"),
    "tobacco": N_("tobacco"),
    "self_harm": N_("self-harm"),
    "eating": N_("eating disorders"),
    "abuse": N_("abuse and neglect (CAN)"),
    "domestic_violence": N_("domestic violence"),
    "sexual": N_("risky sexual behaviour"),
    "theft": N_("theft and vandalism"),
    "crime": N_("criminal activity"),
    "running_away": N_("running away"),
    "gambling": N_("gambling"),
    "netolism": N_("netolism (excessive screen time)"),
    "extremism": N_("extremism and racism"),
    "other": N_("other"),
}
URGENCY_NAMES = {
    Urgency.ROUTINE: N_("routine"),
    Urgency.WEEK: N_("within a week"),
    Urgency.URGENT: N_("urgent"),
}


def guardians_text(informed: bool | None, consent: Consent | None, tr: Translator) -> str:
    _ = tr.gettext
    if not informed:
        return _("not informed")
    if consent is Consent.YES:
        return _("informed, they agree to a case conference")
    if consent is Consent.NO:
        return _("informed, they do not agree to a case conference")
    return _("informed, not asked about a case conference yet")


def categories_text(categories: tuple[str, ...], other: str | None, tr: Translator) -> str:
    names = [tr.gettext(CATEGORY_NAMES[c]) for c in categories if c != drafting.OTHER]
    if drafting.OTHER in categories:
        names.append(f"{tr.gettext('other')}: {esc(other or '')}")
    return ", ".join(names)


def urgency_text(urgency: Urgency, tr: Translator) -> str:
    return tr.gettext(URGENCY_NAMES[urgency])


# Typed answers refused, the emergency numbers.


def emergency_text(tr: Translator) -> str:
    _ = tr.gettext
    return "\n".join(
        [
            _("⚠️ If the child is in danger, call now:"),
            _("Police 158 · Ambulance 155 · Emergency line 112"),
            _("Linka bezpečí, the children's helpline: 116 111"),
            "",
            _(
                "When the child is safe, finish this report: it is marked urgent, and the "
                "coordinators are alerted the moment you send it."
            ),
        ]
    )


def rejection_text(rejected: Rejected, step: str, tr: Translator) -> str:
    _ = tr.gettext
    params = rejected.params
    match rejected.reason:
        case "too_long":
            return _(
                "That is {length} characters, but at most {limit} fit here. Please shorten it "
                "and send it again."
            ).format(length=tr.number(params["length"]), limit=tr.number(params["limit"]))
        case "year":
            return _("Please type the year of birth as four digits, from {low} to {high}.").format(
                low=params["low"], high=params["high"]
            )
        case "not_text" if step in (*drafting.TEXT_STEPS, REPLY):
            return _(
                "Please type your answer as text. I cannot use photos, voice messages, stickers "
                "or files here."
            )
        case "not_text" | "buttons":
            return _("Please answer with one of the buttons.")
    return _("Please type your answer.")


def show_button(referral_id: int, tr: Translator) -> tuple[str, str]:
    """The referrer's one tap to her own referral's details (protected, audited: the same read
    as a coordinator's Open), on every message about it."""
    return ("🔎 " + tr.gettext("Show"), f"rf:o:{referral_id}")
