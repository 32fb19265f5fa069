"""The database as a queue: claiming due rows with a lease.

Journeys claim due enrollments and messaging claims due retries the same
way (healthchecks' sendalerts does it with one conditional UPDATE): pick
rows with SELECT … FOR UPDATE SKIP LOCKED, then set a lease (`locked_until`,
`lease_token`) on those still free. A worker that dies leaves a lease that
runs out, and the rows are claimed again. The model needs `locked_until`
and `lease_token` fields.
"""

import uuid

from django.db import transaction
from django.db.models import Q


def rows_claim(*, queryset, order_by: str, now, lease, limit: int, token=None):
    """(token, ids) for up to `limit` rows of `queryset` nobody holds a live lease
    on, now leased until `now + lease`; None when there are none.

    Must run in a transaction (the caller's commit makes the claim), so the
    caller can enqueue its job with transaction.on_commit. A `token` given
    joins these rows to a claim already made with it.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("rows_claim runs inside the transaction that commits the claim.")
    model = queryset.model
    token = token or uuid.uuid4()
    free = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    ids = list(
        queryset.select_for_update(skip_locked=True, of=("self",))
        .filter(free)
        .order_by(order_by)
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return None
    # The repeated `free` test keeps two claimers apart on databases without
    # row locks (SQLite serialises the writes themselves).
    claimed = model.objects.filter(free, pk__in=ids).update(
        locked_until=now + lease, lease_token=token
    )
    if not claimed:
        return None
    if claimed < len(ids):  # another claimer took some between our read and write
        ids = list(model.objects.filter(pk__in=ids, lease_token=token).values_list("pk", flat=True))
    return token, ids
