"""Who sees the console how: a user's own language, time zone and phone country (``/profile``), and the center's
settings an admin chooses (``/settings``): its time zone (the dashboard's hours, everyone's default
zone), the default region of a phone number typed without a country code, and the wall's warning
thresholds. Both are kept in the gateway's own tables (``users``, ``center_settings``).
"""

from __future__ import annotations

from zoneinfo import available_timezones

import phonenumbers
from flask import current_app, request
from sqlalchemy import select

from shared.auth import acting_user, rule

from .. import users
from ..models import CenterSetting
from .base import Refused, console, page, render
from .i18n import CENTER_DEFAULTS, LANGUAGES, _, center_region, center_settings, valid_zone

ACCESS: list = [rule("/settings*", "admin")]

ZONES = sorted(zone for zone in available_timezones() if "/" in zone and not zone.startswith(("Etc/", "SystemV/")))
SETTINGS_FIELDS = (
    "time_zone",
    "default_region",
    "wall_wait_warn_seconds",
    "wall_service_level_warn",
    "wall_abandon_warn",
)


def _invalid(errors: dict[str, str]) -> Refused:
    return Refused(422, {"title": _("Not saved"), "detail": _("Check the fields named below."), "errors": errors})


@console.route("/profile")
@page
def profile_page():
    account = users.get_user(current_app.extensions["database"], acting_user().id)
    return render(
        "console/profile.html",
        account=account,
        languages=LANGUAGES,
        zones=ZONES,
        center_region=center_region(),
        saved=False,
    )


@console.route("/profile", methods=["POST"])
@page
def save_profile():
    language = request.form.get("language", "").strip() or None
    zone = request.form.get("time_zone", "").strip() or None
    region = request.form.get("phone_region", "").strip().upper() or None
    errors = {}
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        errors["phone_region"] = _("Two letters, a country code such as DE or PH.")
    if language is not None and language not in LANGUAGES:
        errors["language"] = _("Choose one of the languages offered.")
    if zone is not None and not valid_zone(zone):
        errors["time_zone"] = _("Not a time zone: %(zone)s.", zone=zone)
    if errors:
        raise _invalid(errors)
    database = current_app.extensions["database"]
    users.set_preferences(database, acting_user().id, language=language, time_zone=zone, phone_region=region)
    answer = render("console/profile_saved.html")
    answer.headers["HX-Refresh"] = "true"  # the whole page again, in the language just chosen
    return answer


@console.route("/settings")
@page
def settings_page():
    return render("console/settings.html", settings=center_settings(), zones=ZONES, saved=False)


def _settings_errors(form) -> dict[str, str]:
    errors = {}
    if not valid_zone(form.get("time_zone", "")):
        errors["time_zone"] = _("Not a time zone: %(zone)s.", zone=form.get("time_zone", ""))
    region = form.get("default_region", "")
    if not (len(region) == 2 and region.isalpha()):
        errors["default_region"] = _("Two letters, a country code such as DE or PH.")
    for key, low, high in (
        ("wall_wait_warn_seconds", 1, 3600),
        ("wall_service_level_warn", 0, 1),
        ("wall_abandon_warn", 0, 1),
    ):
        try:
            value = float(form.get(key, ""))
        except ValueError:
            errors[key] = _("A number.")
            continue
        if not low <= value <= high:
            errors[key] = _("From %(low)s to %(high)s.", low=low, high=high)
    return errors


@console.route("/settings", methods=["POST"])
@page
def save_settings():
    form = {key: request.form.get(key, "").strip() for key in SETTINGS_FIELDS}
    form["default_region"] = form["default_region"].upper()
    errors = _settings_errors(form)
    if errors:
        raise _invalid(errors)
    with current_app.extensions["database"].sessions() as session:
        existing = {row.key: row for row in session.scalars(select(CenterSetting))}
        for key, value in form.items():
            if key in existing:
                existing[key].value = value
            else:
                session.add(CenterSetting(key=key, value=value))
        session.commit()
    values = {**CENTER_DEFAULTS, **form}
    return render("console/settings.html", settings=values, zones=ZONES, saved=True)
