import json

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import IntegerField, OuterRef, Q, QuerySet, Subquery
from django.http import HttpResponseNotAllowed, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from contacts.admin_timeline import ContactPageMixin
from contacts.conditions import ConditionError
from contacts.forms.conditions import ConditionEditor, ConditionField
from contacts.models import (
    ApiKey,
    Contact,
    ContactList,
    DeviceToken,
    Event,
    ForgottenAddress,
    ListMembership,
    Segment,
)
from contacts.phones import InvalidPhoneNumber, normalise_phone
from contacts.selectors import audience_preview, lists_member_estimates
from contacts.services import api_key_create, api_key_revoke, device_tokens_disable, event_track
from contacts.services.forget import contact_delete, contact_forget
from contacts.services.lists import memberships_joined


def become(obj, saved):
    """Make the admin's unsaved `obj` the row a service saved, so the admin can
    go on to log the addition and redirect to it."""
    for field in type(saved)._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered big table from PostgreSQL's planner statistics.

    COUNT(*) over millions of rows takes seconds, and an admin page only needs
    to know roughly how many pages there are. A filtered list is counted
    exactly up to `exact_up_to` rows, and beyond that the planner's estimate
    of the filtered query stands in (a filter such as "sent" matches millions).
    Small tables and other databases get the exact count.
    """

    estimate_above = 100_000
    exact_up_to = 10_000

    @cached_property
    def count(self):
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return super().count
        if not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                    [connection.ops.quote_name(queryset.model._meta.db_table)],
                )
                row = cursor.fetchone()
            if row and row[0] >= self.estimate_above:
                return row[0]
            return super().count
        counted = queryset.order_by()[: self.exact_up_to].count()
        if counted < self.exact_up_to:
            return counted
        plan = json.loads(queryset.order_by().explain(format="json"))
        return max(int(plan[0]["Plan"]["Plan Rows"]), counted)


class ReadOnlyAdminMixin:
    """Shown in the admin, never added, changed or deleted there: logs and
    ledgers that only services write."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BigTableAdmin(admin.ModelAdmin):
    """For tables with millions of rows: no full COUNT(*) on the changelist, and
    search by exact values the indexes can find.

    The admin's default search is a case-insensitive substring match, which
    scans the whole table. Here a search term matches `exact_search_fields`
    exactly, or names a contact by email or user id (looked up first, so the
    table is then read through its contact index).
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # No sorting by a column header: sorting millions of rows by a column
    # without an index reads and sorts them all. Lists come newest first.
    sortable_by = ()
    exact_search_fields = ()
    contact_lookup = "contact"
    search_help_text = "Exact email or user id of a contact."

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q()
        for field in self.exact_search_fields:
            condition |= Q(**{field: term})
        if self.contact_lookup:
            contact_ids = list(
                Contact.objects.filter(Q(email=term.lower()) | Q(user_id=term)).values_list(
                    "pk", flat=True
                )
            )
            if contact_ids:
                condition |= Q(**{f"{self.contact_lookup}__in": contact_ids})
        if not condition:
            return queryset.none(), False
        return queryset.filter(condition), False


class ListMembershipInline(admin.TabularInline):
    model = ListMembership
    fields = ("contact_list", "source", "joined_at")
    readonly_fields = ("source", "joined_at")
    autocomplete_fields = ("contact_list",)
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("contact_list")


@admin.register(Contact)
class ContactAdmin(ContactPageMixin, BigTableAdmin):
    """A contact with their lists. Apps above contacts add what they keep about
    a contact from their own admin modules (imports only flow downwards):
    inlines to `inlines`, (admin URL name, label) pairs to `history_links`,
    each a changelist of that contact's rows, and actions to `actions` (with
    the has_<name>_permission method their `permissions` name). The contact
    page (contacts.admin_timeline) shows everything about one contact: apps
    add panels to it and sources to its timeline (contacts.timeline)."""

    list_display = (
        "email", "user_id", "first_name", "phone", "blocklisted", "created_at", "contact_page",
    )  # fmt: skip
    list_filter = ("blocklisted", "created_at")
    search_fields = ("email", "user_id", "phone")
    search_help_text = "Exact email, user id or phone number (E.164, e.g. +14155550123)."
    readonly_fields = ("history", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("email", "user_id", "phone", "blocklisted")}),
        ("Profile", {"fields": ("timezone", "locale", "attributes")}),
        ("History", {"fields": ("history", "created_at", "updated_at")}),
    )
    inlines = (ListMembershipInline,)
    history_links = (("contacts_event", "Events"), ("contacts_devicetoken", "Devices"))
    actions = ("forget_selected",)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.model is ListMembership:
            for membership in formset.new_objects:
                memberships_joined(
                    contact_list_id=membership.contact_list_id, contact_ids=[membership.contact_id]
                )

    def lookup_allowed(self, lookup, value, request=None):
        # A list's member count links here filtered by the list; without a list
        # filter in the sidebar (which would load every list), the admin would
        # refuse that lookup.
        if lookup == "lists__id__exact":
            return True
        return super().lookup_allowed(lookup, value, request)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(email=term.lower()) | Q(user_id=term)
        if term.startswith("+"):
            # Phones are stored in E.164 form: "+1 415 555 0123" finds +14155550123.
            try:
                condition |= Q(phone=normalise_phone(term))
            except InvalidPhoneNumber:
                condition |= Q(phone=term)
        return queryset.filter(condition), False

    @admin.display(description="First name")
    def first_name(self, obj):
        return obj.first_name

    # Deleting a contact also deletes rows the admin never lets staff delete
    # one by one (the consent ledger, the send log, in-app inboxes), so the
    # admin's own check would refuse every contact that has any. The service
    # erases them, each app its own; deleting a contact needs only the
    # permission to delete contacts.
    def get_deleted_objects(self, objs, request):
        deleted, model_count, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, set(), protected

    def delete_model(self, request, obj):
        contact_delete(contact=obj, actor=request.user, source="admin")

    def delete_queryset(self, request, queryset):
        for contact in queryset:
            contact_delete(contact=contact, actor=request.user, source="admin")

    @admin.action(description="Forget (erase personal data)", permissions=["delete"])
    def forget_selected(self, request, queryset):
        if request.POST.get("confirmed") == "yes":
            for contact in queryset:
                contact_forget(contact=contact, actor=request.user, source="admin")
            count = len(queryset)
            self.message_user(
                request,
                f"Forgot {count} contact(s): their personal data is erased, and their "
                "addresses will never be sent anything again.",
                messages.SUCCESS,
            )
            return None
        return TemplateResponse(
            request,
            "admin/contacts/contact/forget_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "title": "Forget contacts",
                "opts": self.model._meta,
                "queryset": queryset,
                "count": queryset.count(),
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.display(description="Their records")
    def history(self, obj):
        if obj.pk is None:
            return "—"
        return format_html_join(
            " · ",
            '<a href="{}?contact__id__exact={}">{}</a>',
            (
                (reverse(f"admin:{name}_changelist"), obj.pk, label)
                for name, label in self.history_links
            ),
        )


class CountOf(Subquery):
    """How many rows a (sliced) subquery returns."""

    template = "(SELECT count(*) FROM (%(subquery)s) AS counted)"
    output_field = IntegerField()


class ContactListChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # Lists counted to the cap: their size from the statistics, in one query.
        self.result_list = list(self.result_list)
        cap = self.model_admin.members_counted_up_to
        estimates = lists_member_estimates(
            list_ids=[row.pk for row in self.result_list if row.member_count > cap]
        )
        for row in self.result_list:
            row.member_estimate = estimates.get(row.pk)


@admin.register(ContactList)
class ContactListAdmin(admin.ModelAdmin):
    list_display = ("name", "members", "description", "created_at")
    search_fields = ("name",)
    readonly_fields = ("created_at",)
    # Each list on the page is counted up to this many members: counting a
    # list of a million on every load took 430 ms. Past it, the page shows
    # PostgreSQL's estimate.
    members_counted_up_to = 10_000

    def get_queryset(self, request):
        # A correlated count, for the lists on the page only, through the
        # membership index, and stopped one past the cap.
        members = ListMembership.objects.filter(contact_list=OuterRef("pk")).order_by()
        return (
            super()
            .get_queryset(request)
            .annotate(member_count=CountOf(members.values("pk")[: self.members_counted_up_to + 1]))
        )

    def get_changelist(self, request, **kwargs):
        return ContactListChangeList

    def get_urls(self):
        from contacts.admin_exports import list_export_urls

        return [*list_export_urls(self.admin_site), *super().get_urls()]

    @admin.display(description="Members", ordering="member_count")
    def members(self, obj):
        url = reverse("admin:contacts_contact_changelist")
        cap = self.members_counted_up_to
        if obj.member_count <= cap:
            shown = f"{obj.member_count:,}"
        elif (estimate := getattr(obj, "member_estimate", None)) and estimate > cap:
            shown = f"about {estimate:,}"
        else:
            shown = f"more than {cap:,}"
        return format_html('<a href="{}?lists__id__exact={}">{}</a>', url, obj.pk, shown)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """Segments are edited as rules (contacts.forms.conditions), with a live
    count and sample of the contacts they match (`preview_view`)."""

    list_display = ("name", "description", "updated_at")
    search_fields = ("name", "description")
    readonly_fields = ("created_at", "updated_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        editor = ConditionEditor(
            preview_url=reverse("admin:contacts_segment_preview"),
            segment_id=obj.pk if obj else None,
        )
        kwargs["widgets"] = {**kwargs.get("widgets", {}), "conditions": editor}
        kwargs["field_classes"] = {**kwargs.get("field_classes", {}), "conditions": ConditionField}
        return super().get_form(request, obj, change, **kwargs)

    def get_urls(self):
        from contacts.admin_exports import segment_export_urls

        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("preview/", preview, name="contacts_segment_preview"),
            *segment_export_urls(self.admin_site),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        """How many contacts a condition matches and ten of them, as JSON:
        `conditions` (the tree as JSON) and `segment` (the id of the segment
        it is for, if saved) by POST, or in the query string. The ten are
        left out (null) for staff who may not view contacts."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        raw = data.get("conditions", "").strip()
        try:
            tree = json.loads(raw) if raw else {}
        except ValueError as exc:
            return JsonResponse({"error": f"The JSON is not valid: {exc}."}, status=400)
        try:
            segment = Segment(pk=int(data.get("segment", "")))
        except ValueError:
            segment = None  # a segment not saved yet
        try:
            preview = audience_preview(tree=tree, segment=segment)
        except ConditionError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        # The sample shows who the contacts are: only to those who may see contacts.
        sample = preview.sample if request.user.has_perm("contacts.view_contact") else None
        return JsonResponse(
            {
                "count": preview.count,
                "count_capped": preview.count_capped,
                "summary": preview.summary,
                "warnings": preview.warnings,
                "sample": None
                if sample is None
                else [
                    {
                        "email": contact.email,
                        "user_id": contact.user_id,
                        "url": reverse("admin:contacts_contact_change", args=[contact.pk]),
                    }
                    for contact in sample
                ],
            }
        )


@admin.register(Event)
class EventAdmin(BigTableAdmin):
    """Events are facts as reported: staff may record one (to try a journey,
    say), which goes through the same service as the API, but not rewrite one."""

    list_display = ("name", "contact", "occurred_at", "received_at")
    list_select_related = ("contact",)
    # Newest first by id: occurred_at has no index of its own, and sorting the
    # whole table by it would be a full scan.
    ordering = ("-pk",)
    search_fields = ("name", "client_event_id", "contact__email", "contact__user_id")
    exact_search_fields = ("name", "client_event_id")
    search_help_text = "Exact event name, event id, or a contact's email or user id."
    fields = (
        "contact",
        "name",
        "data",
        "occurred_at",
        "client_event_id",
        "campaign_id",
        "template_id",
        "received_at",
    )
    autocomplete_fields = ("contact",)
    readonly_fields = ("received_at",)

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        tracked = event_track(
            name=obj.name,
            email=obj.contact.email,
            user_id=obj.contact.user_id,
            data=obj.data,
            occurred_at=obj.occurred_at,
            client_event_id=obj.client_event_id,
            campaign_id=obj.campaign_id,
            template_id=obj.template_id,
        )
        become(obj, tracked.event)


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are made by the service, which returns the raw key once; only its
    digest is stored, so the key is shown in a message right after it is added."""

    list_display = (
        "name", "scope", "prefix", "active", "created_by", "created_at", "last_used_at",
    )  # fmt: skip
    list_filter = (ApiKeyStatusFilter, "scope")
    list_select_related = ("created_by",)
    search_fields = ("name", "prefix")
    actions = ("revoke_keys",)
    readonly_fields = ("prefix", "active", "created_by", "created_at", "last_used_at", "revoked_at")

    def get_fields(self, request, obj=None):
        # Adding asks only for a name and a scope: the service makes the key.
        if obj is None:
            return ("name", "scope")
        return ("name", "scope", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        # A key's scope is part of what it was handed out for: make a new key instead.
        return self.readonly_fields if obj is None else ("scope", *self.readonly_fields)

    def lookup_allowed(self, lookup, value, request=None):
        # The admin would otherwise filter on any field given in the URL, and
        # ?key_hash__startswith=… would reveal the hash one character at a time.
        if lookup.split("__")[0] == "key_hash":
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="Active", boolean=True)
    def active(self, obj):
        return obj.is_active

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        api_key, raw_key = api_key_create(name=obj.name, scope=obj.scope, created_by=request.user)
        become(obj, api_key)
        request.waymark_raw_api_key = raw_key

    def response_add(self, request, obj, post_url_continue=None):
        # The raw key goes on this one page, never into a message (kept in a
        # cookie until shown) or a log: only its hash is stored.
        response = TemplateResponse(
            request,
            "admin/contacts/apikey/created.html",
            {
                **self.admin_site.each_context(request),
                "title": f"API key for “{obj.name}”",
                "opts": self.model._meta,
                "original": obj,
                "raw_key": request.waymark_raw_api_key,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        for api_key in keys:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {len(keys)} API key(s).", messages.SUCCESS)


class DeviceTokenStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("disabled", "Disabled")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(disabled_at__isnull=True)
        if self.value() == "disabled":
            return queryset.filter(disabled_at__isnull=False)
        return queryset


@admin.register(DeviceToken)
class DeviceTokenAdmin(BigTableAdmin):
    """The devices contacts receive push notifications on. Apps and browsers
    register them (contacts.services.device_token_register); a token the
    provider rejects is disabled rather than deleted, so the reason stays
    visible. Staff can look, and disable a device, but not make tokens up."""

    list_display = ("contact", "platform", "app_id", "active", "last_seen_at", "disabled_reason")
    list_filter = ("platform", DeviceTokenStatusFilter)
    list_select_related = ("contact",)
    ordering = ("-pk",)
    search_fields = ("token", "contact__email", "contact__user_id")
    exact_search_fields = ("token",)
    search_help_text = "Exact token, or a contact's email or user id."
    fields = (
        "contact",
        "platform",
        "token",
        "app_id",
        "subscription",
        "created_at",
        "last_seen_at",
        "disabled_at",
        "disabled_reason",
    )
    readonly_fields = fields
    actions = ("disable_tokens",)

    def has_add_permission(self, request):
        return False

    @admin.display(description="Active", boolean=True)
    def active(self, obj):
        return obj.is_active

    @admin.action(description="Disable selected devices", permissions=["change"])
    def disable_tokens(self, request, queryset):
        count = device_tokens_disable(
            ids=queryset.values_list("pk", flat=True), reason=f"Disabled by {request.user}"
        )
        self.message_user(request, f"Disabled {count} device(s).", messages.SUCCESS)


@admin.register(ForgottenAddress)
class ForgottenAddressAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Addresses of forgotten contacts, as digests only: nothing is sent to
    them again. Searching for an address finds its entry, if it has one."""

    list_display = ("kind", "digest", "source", "requested_by", "created_at")
    list_filter = ("kind", "source")
    search_fields = ("digest",)
    search_help_text = "An exact email address or phone number (E.164, e.g. +14155550123)."

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(digest=ForgottenAddress.digest_of(term)), False
