"""Static lists: /api/lists/... (lists/unsubscribe lives in subscriptions.api.lists)."""

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.api.errors import IterableError, iterable_response
from contacts.api.schema import ERRORS, envelope_responses
from contacts.api.serializers import BIGINT_MAX
from contacts.api.serializers.lists import (
    CreateListRequestSerializer,
    CreateListResponseSerializer,
    GetListsResponseSerializer,
    ListBulkResponseSerializer,
    ListPreviewQuerySerializer,
    ListUsersQuerySerializer,
    SubscribeRequestSerializer,
)
from contacts.api.views.events import identity_failure, validate_bulk
from contacts.models import ContactList, ListMembership
from contacts.services.lists import (
    ListNameTaken,
    ListNotFound,
    Subscriber,
    list_create,
    list_delete,
    list_get,
    list_member_identities,
    list_member_sample,
    list_subscribe,
)

TAGS = ["Lists"]
LIST_ID = OpenApiParameter("listId", OpenApiTypes.INT64, OpenApiParameter.PATH)
TEXT = {(200, "text/plain"): OpenApiTypes.STR, **ERRORS}


def unknown_list(exc: ListNotFound):
    """Iterable answers a list id it does not know with BadParams."""
    return IterableError(str(exc), "BadParams")


def _path_list_id(raw):
    """The listId of a path, or BadParams (as for an unknown list) when it is
    not one Waymark could hold."""
    try:
        list_id = int(raw)
    except ValueError:
        list_id = None
    if list_id is None or not 0 <= list_id <= BIGINT_MAX:
        raise unknown_list(ListNotFound(raw))
    return list_id


def _get_list(list_id):
    try:
        return list_get(list_id=list_id)
    except ListNotFound as exc:
        raise unknown_list(exc) from exc


def _list_json(contact_list):
    answer = {
        "id": contact_list.pk,
        "name": contact_list.name,
        "createdAt": int(contact_list.created_at.timestamp() * 1000),
        "listType": "Standard",
    }
    if contact_list.description:
        answer["description"] = contact_list.description
    return answer


@extend_schema_view(
    get=extend_schema(
        operation_id="getLists",
        summary="Get lists",
        responses={200: GetListsResponseSerializer, **ERRORS},
        tags=TAGS,
    ),
    post=extend_schema(
        operation_id="create",
        summary="Create a static list",
        description="A name another list has is refused (BadParams).",
        request=CreateListRequestSerializer,
        responses={200: CreateListResponseSerializer, **ERRORS},
        tags=TAGS,
    ),
)
class ListsView(APIView):
    """GET /api/lists — every static list; POST /api/lists — create one."""

    def get(self, request):
        lists = ContactList.objects.order_by("pk")
        return Response({"lists": [_list_json(contact_list) for contact_list in lists]})

    def post(self, request):
        serializer = CreateListRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            contact_list = list_create(**serializer.validated_data)
        except ListNameTaken as exc:
            raise IterableError(str(exc), "BadParams") from exc
        return Response({"listId": contact_list.pk})


@extend_schema_view(
    delete=extend_schema(
        operation_id="delete",
        summary="Delete a list",
        description="Its members leave it; the contacts stay. An unknown listId is BadParams.",
        parameters=[LIST_ID],
        responses=envelope_responses("List deleted."),
        tags=TAGS,
    )
)
class ListView(APIView):
    """DELETE /api/lists/{listId}."""

    def delete(self, request, listId):
        list_id = _path_list_id(listId)
        try:
            list_delete(list_id=list_id)
        except ListNotFound as exc:
            raise unknown_list(exc) from exc
        return iterable_response(f"List {list_id} deleted.")


@extend_schema_view(
    get=extend_schema(
        operation_id="getListCount",
        summary="Get count of users in list",
        description="The number of members, as text.",
        parameters=[LIST_ID],
        responses=TEXT,
        tags=TAGS,
    )
)
class ListSizeView(APIView):
    """GET /api/lists/{listId}/size — how many members, as plain text."""

    def get(self, request, listId):
        contact_list = _get_list(_path_list_id(listId))
        size = ListMembership.objects.filter(contact_list=contact_list).count()
        return HttpResponse(str(size), content_type="text/plain")


@extend_schema_view(
    get=extend_schema(
        operation_id="getUsers",
        summary="Get users in a list",
        description="Every member's email, one a line (with preferUserId, its userId "
        "where it has one), streamed.",
        parameters=[ListUsersQuerySerializer],
        responses=TEXT,
        tags=TAGS,
    )
)
class ListUsersView(APIView):
    """GET /api/lists/getUsers?listId= — every member, one a line, streamed."""

    def get(self, request):
        query = ListUsersQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        contact_list = _get_list(query.validated_data["listId"])
        identities = list_member_identities(
            contact_list=contact_list, prefer_user_id=query.validated_data["preferUserId"]
        )
        return StreamingHttpResponse(
            (f"{identity}\n" for identity in identities), content_type="text/plain"
        )


@extend_schema_view(
    get=extend_schema(
        operation_id="getUsersPreview",
        summary="Preview users in a list",
        description="A random sample of up to size members (1000 by default, at most "
        "5000), one a line.",
        parameters=[ListPreviewQuerySerializer],
        responses=TEXT,
        tags=TAGS,
    )
)
class ListPreviewUsersView(APIView):
    """GET /api/lists/previewUsers?listId=&size= — a random sample of members."""

    def get(self, request):
        query = ListPreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        sample = list_member_sample(
            contact_list=_get_list(data["listId"]),
            size=data["size"],
            prefer_user_id=data["preferUserId"],
        )
        return HttpResponse(
            "".join(f"{identity}\n" for identity in sample), content_type="text/plain"
        )


def subscribers_from(items):
    """The subscribers of a validated bulk list request, and the failures of
    those whose email or userId is malformed (by position)."""
    subscribers, positions, failures = [], [], []
    for index, data in enumerate(items):
        failure = identity_failure(index, data)
        if failure:
            failures.append(failure)
            continue
        positions.append(index)
        subscribers.append(
            Subscriber(
                email=data.get("email"),
                user_id=data.get("userId"),
                data=data.get("dataFields") or {},
                merge_nested=data.get("mergeNestedObjects", False),
            )
        )
    return subscribers, positions, failures


_FAILED_LISTS = {
    "invalidEmail": ("invalidEmails", None),
    "invalidUserId": (None, "invalidUserIds"),
    "notFound": ("notFoundEmails", "notFoundUserIds"),
    "conflict": ("conflictEmails", "conflictUserIds"),
}


def list_bulk_answer(count, subscribers, positions, failures, service_failures):
    """Iterable's UserBulkUpdateListResponse, plus each failure by position."""
    for failure in service_failures:
        subscriber = subscribers[failure.index]
        failures.append(
            {
                "index": positions[failure.index],
                "email": subscriber.email,
                "userId": subscriber.user_id,
                "reason": failure.reason,
                "msg": failure.msg,
            }
        )
    failures.sort(key=lambda failure: failure["index"])
    failed = {
        name: []
        for name in (
            "conflictEmails",
            "conflictUserIds",
            "forgottenEmails",
            "forgottenUserIds",
            "invalidDataEmails",
            "invalidDataUserIds",
            "invalidEmails",
            "invalidUserIds",
            "notFoundEmails",
            "notFoundUserIds",
        )
    }
    for failure in failures:
        by_email, by_user_id = _FAILED_LISTS[failure["reason"]]
        if failure["email"]:
            if by_email:
                failed[by_email].append(failure["email"])
        elif by_user_id and failure["userId"]:
            failed[by_user_id].append(failure["userId"])
    return {
        "successCount": count - len(failures),
        "failCount": len(failures),
        # Iterable's deprecated lists: every user that failed, by email or userId.
        "invalidEmails": [f["email"] for f in failures if f["email"]],
        "invalidUserIds": [f["userId"] for f in failures if not f["email"] and f["userId"]],
        "failedUpdates": failed,
        "failures": failures,
    }


@extend_schema_view(
    post=extend_schema(
        operation_id="subscribe",
        summary="Add subscribers to list",
        description="Unknown users are created (unless updateExistingUsersOnly) and their "
        "dataFields merged into their profiles; a subscriber that cannot be added (a "
        "malformed email, an unknown user with updateExistingUsersOnly, a userId another "
        "user holds) is reported by its position in subscribers while the others are "
        "added. An unknown listId is BadParams, and nothing is written.",
        request=SubscribeRequestSerializer,
        responses={200: ListBulkResponseSerializer, **ERRORS},
        tags=TAGS,
    )
)
class ListSubscribeView(APIView):
    """POST /api/lists/subscribe — add many users to a list, set-based."""

    def post(self, request):
        serializer = validate_bulk(SubscribeRequestSerializer, request.data, field="subscribers")
        data = serializer.validated_data
        subscribers, positions, failures = subscribers_from(data["subscribers"])
        try:
            change = list_subscribe(
                list_id=data["listId"],
                subscribers=subscribers,
                update_existing_only=data["updateExistingUsersOnly"],
            )
        except ListNotFound as exc:
            raise unknown_list(exc) from exc
        return Response(
            list_bulk_answer(
                len(data["subscribers"]), subscribers, positions, failures, change.failures
            )
        )
