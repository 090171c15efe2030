"""The errors a service layer raises: plain domain errors, no HTTP in them.

Use cases and event handlers share these. The web edge maps each to problem+json in one
place (``shared.problems.domain_error_to_problem``, installed by ``shared.web``); a consumer
treats them like any other failure of a message. Routes never need to catch them.

======================  ======  ==========================================================
error                   status  when
======================  ======  ==========================================================
``NotFound``            404     the thing asked for does not exist (or is erased)
``Conflict``            409     the change does not fit the current state (a closed ticket,
                                a taken lease, a duplicate)
``Invalid``             422     fields a schema cannot check (an unknown customer id...),
                                named one by one
======================  ======  ==========================================================
"""

from __future__ import annotations


class DomainError(Exception):
    """Something the caller asked for cannot be done; ``detail`` says why, in a sentence."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The thing asked for does not exist."""


class Conflict(DomainError):
    """The change conflicts with the current state of the resource."""


class Invalid(DomainError):
    """Fields that a schema cannot check, each with what is wrong.

    ``raise Invalid({"customer_id": "No such customer."})``; ``location`` is ``json`` for the
    body (the answer carries a JSON pointer) or ``query`` for a query-string parameter.
    """

    def __init__(self, errors: dict[str, str | list[str]], location: str = "json"):
        self.errors = {name: [detail] if isinstance(detail, str) else list(detail) for name, detail in errors.items()}
        self.location = location
        super().__init__("; ".join(f"{name}: {' '.join(details)}" for name, details in self.errors.items()))
