"""Copying a journey: a draft with the same steps, connections and triggers."""

from journeys.models import Journey
from journeys.services.exchange import JourneyImportError, journey_export, journey_import

NAME_MAX = Journey._meta.get_field("name").max_length


class JourneyCopyError(ValueError):
    """The copy cannot be made; the message says why (nothing was written)."""


def journey_copy_name(*, journey: Journey) -> str:
    """The first free name of "<name> (copy)", "<name> (copy 2)", …"""
    n = 1
    while True:
        suffix = " (copy)" if n == 1 else f" (copy {n})"
        name = journey.name[: NAME_MAX - len(suffix)] + suffix
        if not Journey.objects.filter(name=name).exists():
            return name
        n += 1


def journey_copy(*, journey: Journey, name: str | None = None, actor=None) -> Journey:
    """Copy `journey` as a draft named `name` (else "<name> (copy)"): its
    settings, entry triggers, steps and their connections, in one
    transaction; none of its contacts, figures or history.

    It goes through the journey document (journey_export, then
    journey_import), so a copy holds exactly what an export carries, and a
    step type the document format lacks fails here as it would there.
    """
    name = (name or "").strip() or journey_copy_name(journey=journey)
    if Journey.objects.filter(name=name).exists():
        raise JourneyCopyError(f"A journey named “{name}” already exists: choose another name.")
    try:
        return journey_import(document=journey_export(journey=journey), name=name, actor=actor)
    except JourneyImportError as exc:
        raise JourneyCopyError(f"“{journey}” could not be copied: {exc}") from None
