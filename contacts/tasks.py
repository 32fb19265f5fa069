"""rq jobs: take ids, call one service."""

from contacts.services import events_dispatch_all


def contacts_dispatch_events_task():
    return events_dispatch_all()
