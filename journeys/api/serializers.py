"""Requests and responses of the journeys API, in Iterable's shapes."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from contacts.api.serializers import BIGINT_MAX, IterableRequestSerializer
from journeys.models import Journey

# Iterable's names for a journey's states, as the `state` filter takes them.
STATE_NAMES = {
    "Draft": Journey.State.DRAFT,
    "Running": Journey.State.LIVE,
    "Paused": Journey.State.PAUSED,
    "Archived": Journey.State.ARCHIVED,
}
STATE_OF = {value: name for name, value in STATE_NAMES.items()}

# Iterable's sort fields, and the columns they order by.
SORT_FIELDS = {"id": "pk", "name": "name", "createdAt": "created_at", "updatedAt": "updated_at"}
SORTS = [f"{prefix}{name}" for name in SORT_FIELDS for prefix in ("", "+", "-")]

INT32_MAX = 2**31 - 1


class JourneyListQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(
        required=False, default=1, min_value=1, max_value=INT32_MAX, help_text="From 1."
    )
    pageSize = serializers.IntegerField(
        required=False, default=10, min_value=1, max_value=50, help_text="10 unless given."
    )
    sort = serializers.ChoiceField(
        choices=SORTS,
        required=False,
        default="id",
        help_text="A field, optionally prefixed with - (descending) or + (ascending).",
    )
    state = serializers.ListField(
        child=serializers.ChoiceField(choices=list(STATE_NAMES)),
        required=False,
        help_text="Repeatable. Without it, every journey but the archived ones.",
    )

    def validate_sort(self, value):
        descending = value.startswith("-")
        field = SORT_FIELDS[value.lstrip("+-")]
        return (f"-{field}", "-pk") if descending else (field, "pk")


def _one_of(*values, help_text=""):
    """A string out of `values`, described inline (a named enum component
    would take a name as generic as "StateEnum" from the whole schema)."""

    @extend_schema_field({"type": "string", "enum": list(values)})
    class OneOf(serializers.CharField):
        pass

    return OneOf(help_text=help_text)


def _millis(moment):
    return int(moment.timestamp() * 1000)


class JourneyDetailsSerializer(serializers.Serializer):
    """Iterable's JourneyDetails; keys without a value are left out, as Iterable does."""

    # Not read-only: in a response schema drf-spectacular lists read-only
    # fields as required, and only some of these always have a value.
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField(required=False)
    state = _one_of(*STATE_NAMES, help_text="Waymark's addition to Iterable's fields.")
    enabled = serializers.BooleanField(help_text="Accepting new entries (live).")
    isArchived = serializers.BooleanField()
    journeyType = _one_of("Draft", "Published")
    createdAt = serializers.IntegerField(help_text="Epoch milliseconds.")
    updatedAt = serializers.IntegerField(help_text="Epoch milliseconds.")
    creatorUserId = serializers.CharField(required=False, help_text="The creator's email.")
    triggerEventNames = serializers.ListField(child=serializers.CharField())
    startTileId = serializers.IntegerField(required=False, help_text="The first step's id.")
    lifetimeLimit = serializers.IntegerField(
        required=False, help_text="1 when the journey is taken once; absent when unlimited."
    )
    simultaneousLimit = serializers.IntegerField(help_text="Always 1.")

    def to_representation(self, journey):
        details = {
            "id": journey.pk,
            "name": journey.name,
            "description": journey.description or None,
            "state": STATE_OF[journey.state],
            "enabled": journey.state == Journey.State.LIVE,
            "isArchived": journey.state == Journey.State.ARCHIVED,
            "journeyType": "Draft" if journey.state == Journey.State.DRAFT else "Published",
            "createdAt": _millis(journey.created_at),
            "updatedAt": _millis(journey.updated_at),
            "creatorUserId": (journey.created_by.email or None) if journey.created_by else None,
            "triggerEventNames": sorted(
                {t.event_name for t in journey.triggers.all() if t.kind == "event" and t.event_name}
            ),
            "startTileId": journey.start_step_id,
            "lifetimeLimit": 1 if journey.reentry == Journey.Reentry.NEVER else None,
            "simultaneousLimit": 1,
        }
        return {key: value for key, value in details.items() if value is not None}


class GetJourneysResponseSerializer(serializers.Serializer):
    journeys = JourneyDetailsSerializer(many=True)
    totalJourneysCount = serializers.IntegerField()
    previousPageUrl = serializers.URLField(required=False)
    nextPageUrl = serializers.URLField(required=False)


class TriggerWorkflowRequestSerializer(IterableRequestSerializer):
    """Iterable's TriggerWorkflowRequest: a journey and one user (email or
    userId) or a list."""

    workflowId = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX)
    email = serializers.EmailField(required=False, allow_blank=False, max_length=254)
    userId = serializers.CharField(
        required=False, allow_blank=False, max_length=255, trim_whitespace=False
    )
    listId = serializers.IntegerField(required=False, min_value=0, max_value=INT32_MAX)
    dataFields = serializers.DictField(required=False, default=dict)

    def validate(self, attrs):
        names_user = bool(attrs.get("email") or attrs.get("userId"))
        if "listId" in attrs and names_user:
            raise serializers.ValidationError(
                "Trigger either a list (listId) or one user (email or userId), not both."
            )
        if "listId" not in attrs and not names_user:
            raise serializers.ValidationError("Either email, userId or listId must be provided.")
        return attrs
