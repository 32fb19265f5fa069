"""What journeys add to the condition language: messages narrowed to those
a journey sent ({"message": "clicked", "op": "done", "journey": 4})."""

from django.db.models import Subquery

from contacts.forms.conditions import MAX_CHOICES, register_condition_choices
from journeys.models import Enrollment, Journey
from messaging.conditions import MessageFilter, register_message_filter
from messaging.models import Message

register_message_filter(
    "journey",
    MessageFilter(
        # A journey's message names the enrollment that sent it.
        lookups=lambda pk: {
            "origin": Message.Origin.JOURNEY,
            "origin_id__in": Subquery(
                Enrollment.objects.filter(journey_id=pk).order_by().values("pk")
            ),
        },
        missing=lambda pks: (
            pks - set(Journey.objects.filter(pk__in=pks).values_list("pk", flat=True))
        ),
    ),
)

# The condition editor offers journeys by name.
register_condition_choices(
    "journey",
    lambda: Journey.objects.order_by("name").values_list("pk", "name")[:MAX_CHOICES],
)
