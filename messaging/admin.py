from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path

from contacts.admin import BigTableAdmin, ContactAdmin, ReadOnlyAdminMixin
from messaging.models import (
    Engagement,
    InAppMessage,
    Message,
    RejectedAddress,
    Suppression,
    Template,
)
from messaging.previews import SAMPLE_EMAIL, template_preview
from subscriptions.models import MessageType


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    """Template.clean() sanitizes the HTML and checks the template syntax of
    every field, so the form shows both as errors on the field concerned."""

    list_display = ("name", "message_type", "medium", "subject", "updated_at")
    list_filter = ("message_type__channel__medium", "message_type__channel")
    list_select_related = ("message_type__channel",)
    search_fields = ("name", "subject")
    readonly_fields = ("created_at", "updated_at")
    save_on_top = True
    fieldsets = (
        (None, {"fields": ("name", "message_type")}),
        (
            "Email",
            {
                "fields": (
                    ("from_name", "from_email"),
                    "reply_to",
                    "subject",
                    "preheader",
                    "html_body",
                )
            },
        ),
        (
            "Text",
            {
                "fields": ("text_body",),
                "description": "The email's plain-text part, and the body of SMS, WhatsApp, "
                "push and webhook messages.",
            },
        ),
        (
            "Push and webhook",
            {
                "fields": ("title", ("http_method", "link_url")),
                "description": "Push: title and deep link. Webhook: method and URL.",
            },
        ),
        ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description="Medium", ordering="message_type__channel__medium")
    def medium(self, obj):
        return obj.message_type.channel.get_medium_display()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "message_type":
            kwargs["queryset"] = MessageType.objects.select_related("channel")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_urls(self):
        preview = path(
            "<int:object_id>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name="messaging_template_preview",
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request, object_id):
        template = get_object_or_404(
            self.get_queryset(request).select_related("message_type__channel"), pk=object_id
        )
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        email = request.GET.get("email", "")
        event_json = request.GET.get("event", "")
        return TemplateResponse(
            request,
            "admin/messaging/template/preview.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Preview of “{template}”",
                "opts": self.model._meta,
                "original": template,
                "email": email,
                "event_json": event_json,
                "sample_email": SAMPLE_EMAIL,
                "preview": template_preview(template=template, email=email, event_json=event_json),
            },
        )


class EngagementInline(ReadOnlyAdminMixin, admin.TabularInline):
    """What happened to the message after it was sent, in order."""

    model = Engagement
    fields = ("occurred_at", "kind", "source", "url", "hard_bounce", "details")
    readonly_fields = fields
    ordering = ("occurred_at", "id")
    extra = 0
    can_delete = False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    """The send log. Read-only, and never deleted here: a message's row is what
    stops a retried job from sending it a second time."""

    list_display = (
        "contact",
        "template",
        "status",
        "skip_reason",
        "to_address",
        "sent_at",
        "attempts",
    )
    list_filter = ("status", "skip_reason", "medium", "origin", "is_test")
    list_select_related = ("contact", "template")
    inlines = (EngagementInline,)
    # Newest first by id: created_at is indexed only after contact or status,
    # and sorting the whole send log by it would be a full scan.
    ordering = ("-pk",)
    search_fields = ("contact__email", "contact__user_id", "idempotency_key")
    exact_search_fields = ("idempotency_key", "provider_message_id")
    search_help_text = "Exact email or user id of a contact, idempotency key or provider id."
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "contact",
                    "template",
                    "message_type",
                    "channel",
                    "medium",
                    ("origin", "origin_id"),
                    "is_test",
                    "to_address",
                    "subject",
                    "context",
                    "links",
                )
            },
        ),
        (
            "Status",
            {
                "fields": (
                    "status",
                    "skip_reason",
                    "error",
                    "attempts",
                    "next_attempt_at",
                    "locked_until",
                    "idempotency_key",
                    "provider_message_id",
                )
            },
        ),
        (
            "Timeline",
            {
                "fields": (
                    "created_at",
                    "sent_at",
                    "failed_at",
                    "delivered_at",
                    "opened_at",
                    "clicked_at",
                    "bounced_at",
                    "complained_at",
                    "updated_at",
                )
            },
        ),
    )


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("address", "reason", "note", "created_at")
    list_filter = ("reason",)
    search_fields = ("address",)
    date_hierarchy = "created_at"
    readonly_fields = ("created_at",)

    def get_changeform_initial_data(self, request):
        return {"reason": Suppression.Reason.MANUAL, **super().get_changeform_initial_data(request)}

    def has_change_permission(self, request, obj=None):
        return False


ContactAdmin.history_links = (*ContactAdmin.history_links, ("messaging_message", "Messages"))


@admin.register(InAppMessage)
class InAppMessageAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    """Contacts' in-app inboxes, as the in-app backend wrote them; the app
    fetches them and marks them read."""

    list_display = ("contact", "title", "created_at", "read_at", "expires_at")
    list_select_related = ("contact",)
    ordering = ("-pk",)
    search_fields = ("contact__email", "contact__user_id")
    fields = ("contact", "message", "title", "body", "url", "created_at", "read_at", "expires_at")


@admin.register(RejectedAddress)
class RejectedAddressAdmin(admin.ModelAdmin):
    """Phone numbers a provider refused for good, per medium. Messages skip
    them; deleting an entry lets the number be tried again (say, after its
    owner texted START)."""

    list_display = ("address", "medium", "reason", "created_at")
    list_filter = ("medium",)
    search_fields = ("address",)
    fields = ("address", "medium", "reason", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


ContactAdmin.history_links = (
    *ContactAdmin.history_links,
    ("messaging_inappmessage", "In-app messages"),
)
