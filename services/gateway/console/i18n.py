"""The console in the viewer's language and time zone (Flask-Babel).

- **Language**: the user's profile (``users.language``), else the browser's ``Accept-Language``
  (so the sign-in page follows the browser), else English. The catalogs are gettext files under
  ``services/gateway/translations/<catalog>/LC_MESSAGES/messages.po``, extracted from the templates
  and these modules with pybabel (``make translations``, docs/console.md); ``make setup`` compiles them.
- **Time zone**: the user's profile (``users.time_zone``), else the center's (``center_settings``,
  set by an admin on ``/settings``, else ``CENTER_TIME_ZONE``, else UTC). Every time a page shows is
  formatted by Babel in that zone, labelled with it, and carries the UTC time on hover (``moment()``).
- **Words for the services' values**: statuses, priorities, outcomes, states and reasons travel as
  keys (``on_break``); ``word(key)`` shows each one in the viewer's language.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date, format_datetime, format_time, get_timezone_name
from babel.numbers import format_currency, format_decimal, parse_pattern
from flask import current_app, g, request
from flask_babel import Babel, get_locale, get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as N_
from markupsafe import Markup, escape
from sqlalchemy import select

from shared.auth import acting_user

# catalog -> (its name in itself, the BCP 47 tag of <html lang>)
LANGUAGES = {
    "en": ("English", "en"),
    "zh_Hans": ("简体中文", "zh-Hans"),
    "zh_Hant": ("繁體中文", "zh-Hant"),
    "fil": ("Tagalog / Filipino", "tl"),
    "de": ("Deutsch", "de"),
    "fr": ("Français", "fr"),
}
DEFAULT_LANGUAGE = "en"
# What browsers send, to the catalog that serves it (zh-TW, zh-HK: traditional; zh-CN, zh-SG: simplified).
_TAGS = {
    "zh-hant": "zh_Hant", "zh-tw": "zh_Hant", "zh-hk": "zh_Hant", "zh-mo": "zh_Hant",
    "zh-hans": "zh_Hans", "zh-cn": "zh_Hans", "zh-sg": "zh_Hans", "zh": "zh_Hans",
    "tl": "fil", "fil": "fil", "de": "de", "fr": "fr", "en": "en",
}  # fmt: skip


def catalog_for(tag: str | None) -> str | None:
    """The catalog serving a language tag ('zh-TW', 'zh-Hant-HK', 'fil-PH', 'de_CH'), or None."""
    if not tag:
        return None
    parts = tag.replace("_", "-").lower().split("-")
    for length in (3, 2, 1):
        found = _TAGS.get("-".join(parts[:length]))
        if found:
            return found
    return None


def _account():
    if "console_account" not in g:
        account = None
        user = acting_user()
        if user.id is not None:
            from ..models import UserAccount

            with current_app.extensions["database"].read_sessions() as session:
                account = session.get(UserAccount, user.id)
        g.console_account = account
    return g.console_account


def _from_browser() -> str | None:
    for tag, _quality in request.accept_languages:
        found = catalog_for(tag)
        if found:
            return found
    return None


def select_locale() -> str:
    account = _account() if request else None
    chosen = account.language if account is not None and account.language in LANGUAGES else None
    return chosen or _from_browser() or DEFAULT_LANGUAGE


# --- the center's settings -------------------------------------------------------------------------

CENTER_DEFAULTS = {"time_zone": "UTC", "wall_wait_warn_seconds": "60", "wall_service_level_warn": "0.8",
                   "wall_abandon_warn": "0.1", "default_region": "DE"}  # fmt: skip


def center_settings() -> dict[str, str]:
    """The center's settings: what an admin set on /settings over the environment over the defaults."""
    if "center_settings" not in g:
        from ..models import CenterSetting

        values = dict(CENTER_DEFAULTS)
        if zone := current_app.extensions["settings"].option("CENTER_TIME_ZONE"):
            values["time_zone"] = zone
        with current_app.extensions["database"].read_sessions() as session:
            values.update({row.key: row.value for row in session.scalars(select(CenterSetting))})
        g.center_settings = values
    return g.center_settings


def center_region() -> str:
    """The center's country for numbers typed without a country code (``/settings``)."""
    return (center_settings().get("default_region") or CENTER_DEFAULTS["default_region"]).upper()


def phone_region() -> str:
    """Where a number typed without a country code is read: the user's own country, else the center's."""
    account = _account()
    return (account.phone_region if account is not None and account.phone_region else center_region()).upper()


def valid_zone(name: str | None) -> bool:
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def select_timezone() -> str:
    account = _account() if request else None
    if account is not None and valid_zone(account.time_zone):
        return account.time_zone
    zone = center_settings().get("time_zone")
    return zone if valid_zone(zone) else "UTC"


# --- formatting for the templates --------------------------------------------------------------------


def _parse(value) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def zone_label(zone: str | None = None) -> str:
    """The viewer's zone as a short label: 'Asia/Manila' (or 'UTC')."""
    return str(zone or get_timezone())


def when(value, *, with_date: bool = True, zone: str | None = None) -> str:
    """A time in the viewer's zone (or ``zone``), formatted for their language, with the zone named."""
    moment = _parse(value)
    if moment is None:
        return ""
    tz = ZoneInfo(zone) if zone else get_timezone()
    locale = get_locale()
    if with_date:
        text = format_datetime(moment, "short", tzinfo=tz, locale=locale)
    else:
        text = format_time(moment, "short", tzinfo=tz, locale=locale)
    return f"{text} ({zone or zone_label()})"


def moment(value, *, with_date: bool = True) -> Markup:
    """``<time>`` in the viewer's zone, labelled, with the UTC time on hover."""
    parsed = _parse(value)
    if parsed is None:
        return Markup("")
    utc = parsed.astimezone(UTC)
    return Markup('<time datetime="{iso}" title="{utc} UTC">{shown}</time>').format(
        iso=utc.isoformat(), utc=utc.strftime("%Y-%m-%d %H:%M"), shown=when(parsed, with_date=with_date)
    )


def day(value, form: str = "medium") -> str:
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return format_date(value, form, locale=get_locale())


def num(value, digits: int = 0) -> str:
    """A number for the viewer's language ('1,234.5', '1.234,5'), rounded as Python rounds the figure
    (the same digits as the API's CSV and the tables' own data)."""
    if value is None:
        return "\N{EN DASH}"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(Decimal(f"{value:.{digits}f}"), format=pattern, locale=get_locale())


def pct(share, digits: int = 1) -> str:
    """0.5 -> '50.0%' (en), '50,0 %' (fr, de): the locale's own percent pattern, ``digits`` decimals."""
    if share is None:
        return "\N{EN DASH}"
    locale = get_locale()
    pattern = parse_pattern(locale.percent_formats[None])
    pattern.frac_prec = (digits, digits)
    return pattern.apply(Decimal(f"{share * 100:.{digits}f}") / 100, locale)


def money(amount, currency: str | None) -> str:
    if amount is None:
        return "\N{EN DASH}"
    try:
        return format_currency(float(amount), currency or "EUR", locale=get_locale())
    except (ValueError, TypeError):
        return f"{amount} {currency or ''}".strip()


def local_now(zone: str | None) -> str:
    """The time now in a customer's zone, for the agent who calls them."""
    if not valid_zone(zone):
        return ""
    return when(datetime.now(UTC), with_date=False, zone=zone)


def zone_name(zone: str | None) -> str:
    if not valid_zone(zone):
        return zone or ""
    return get_timezone_name(ZoneInfo(zone), locale=get_locale())


# --- the services' keys as words ---------------------------------------------------------------------

WORDS = {
    # agent states
    "available": N_("available"), "reserved": N_("reserved"), "on_call": N_("on call"), "wrap_up": N_("wrap-up"),
    "on_break": N_("on break"), "offline": N_("offline"),
    # call states and results
    "queued": N_("queued"), "ringing": N_("ringing"), "connected": N_("connected"), "ended": N_("ended"),
    "abandoned": N_("abandoned"), "answered": N_("answered"), "timed_out": N_("timed out"),
    "wrapped_up": N_("wrapped up"),
    # follow-up outcomes
    "reached": N_("reached"), "no_answer": N_("no answer"), "busy": N_("busy"), "voicemail": N_("voicemail"),
    "wrong_number": N_("wrong number"), "callback_requested": N_("callback requested"),
    "do_not_call": N_("do not call"),
    # entries
    "pending": N_("pending"), "leased": N_("being called"), "completed": N_("completed"), "exhausted": N_("exhausted"),
    "cancelled": N_("cancelled"),
    # ticket statuses and priorities
    "new": N_("new"), "open": N_("open"), "resolved": N_("resolved"), "closed": N_("closed"),
    "low": N_("low"), "normal": N_("normal"), "high": N_("high"), "urgent": N_("urgent"),
    # categories and reasons
    "question": N_("question"), "complaint": N_("complaint"), "replacement": N_("replacement"), "refund": N_("refund"),
    "quality_issue": N_("quality issue"), "technical_support": N_("technical support"),
    "registration": N_("registration"),
    "suggestion": N_("suggestion"), "service_recovery": N_("service recovery"), "other": N_("other"),
    "none": N_("no reason (wrap-up ran out)"),
    # channels
    "phone": N_("phone"), "email": N_("e-mail"), "web": N_("web"), "survey": N_("survey"), "agent": N_("agent"),
    "keypad": N_("keypad"), "link": N_("link"),
    # campaign purposes
    "post_purchase": N_("after a purchase"), "resurvey": N_("survey again"), "callback": N_("callback"),
    # the default template's questions
    "product": N_("product"), "service": N_("service"), "purchase": N_("purchase"),
    "recommend_product": N_("would recommend the product"), "recommend_store": N_("would recommend the store"),
    # roles
    "supervisor": N_("supervisor"), "admin": N_("admin"),
    # SLA states
    "breached": N_("breached"), "running": N_("running"), "paused": N_("paused"), "met": N_("met"),
}  # fmt: skip


def word(key) -> str:
    """A service's key in the viewer's language: 'on_break' -> 'on break' / '休息中'."""
    if key is None or key == "":
        return ""
    known = WORDS.get(str(key))
    return str(known) if known is not None else str(key).replace("_", " ")


def language_name(tag: str | None) -> str:
    """A survey language's name in the viewer's language: 'zh-Hant' -> 'Chinese (Traditional)' / '中文 (繁體)'."""
    if not tag:
        return ""
    try:
        return Locale.parse(tag.replace("-", "_")).get_display_name(get_locale()) or tag
    except (ValueError, TypeError, LookupError):
        return tag


def country_name(region: str | None) -> str:
    """A country code in the viewer's language: 'PH' -> 'Philippines' / '菲律宾'."""
    if not region:
        return ""
    return get_locale().territories.get(region.upper(), region.upper())


def language_tag() -> str:
    """The BCP 47 tag of the page's language (``<html lang>``)."""
    return LANGUAGES.get(str(get_locale_name()), LANGUAGES[DEFAULT_LANGUAGE])[1]


def get_locale_name() -> str:
    locale = get_locale()
    if locale is None:
        return DEFAULT_LANGUAGE
    for catalog in LANGUAGES:
        if Locale.parse(catalog) == locale:
            return catalog
    return DEFAULT_LANGUAGE


HELPERS = {
    "word": word, "when": when, "moment": moment, "date_text": day, "num": num, "pct": pct, "money": money,
    "local_now": local_now, "language_name": language_name, "country_name": country_name,
    "zone_label": zone_label, "zone_name": zone_name, "language_tag": language_tag, "languages": LANGUAGES,
    "escape": escape,
}  # fmt: skip


def init_app(app) -> None:
    """Babel for the gateway: the console's catalogs, the viewer's language and zone."""
    from pathlib import Path

    Babel(
        app,
        locale_selector=select_locale,
        timezone_selector=select_timezone,
        default_translation_directories=str(Path(__file__).resolve().parents[1] / "translations"),
    )
    app.jinja_env.globals.update(HELPERS)
    app.jinja_env.filters["word"] = word  # `keys | map("word")`


__all__ = ["LANGUAGES", "N_", "_", "init_app", "moment", "when", "word"]
