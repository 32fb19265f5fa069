from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from contacts.admin import BigTableAdmin, ContactAdmin, ReadOnlyAdminMixin
from messaging.backends import get_backend
from messaging.context import template_variable_reference
from messaging.models import (
    Engagement,
    InAppMessage,
    Message,
    RejectedAddress,
    Suppression,
    Template,
)
from messaging.previews import (
    SAMPLE_EMAIL,
    recipient_noun,
    template_preview,
    template_send_test,
)
from messaging.selectors import ATTENTION_WINDOW, attention_messages_q
from messaging.sent import sent_content, todays_preview
from messaging.services import interrupted_messages_q, messages_resend
from messaging.template_library import MAX_WIDTH
from subscriptions.models import MessageType


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    """Template.clean() sanitizes the HTML and checks the template syntax of
    every field, so the form shows both as errors on the field concerned, and
    the page says what sanitizing took out when the template is saved."""

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

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            "variable_reference": template_variable_reference(),
            "render_limits": settings.WAYMARK_RENDERING,
            "max_width": MAX_WIDTH,
            **(extra_context or {}),
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        removed = getattr(obj, "sanitizer_removed", ())
        if removed:
            messages.warning(
                request,
                "Taken out of the HTML body, as email clients could run it or Waymark does "
                f"not keep it: {'; '.join(removed)}.",
            )

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
        send_test = path(
            "<int:object_id>/send-test/",
            self.admin_site.admin_view(self.send_test_view),
            name="messaging_template_send_test",
        )
        return [preview, send_test, *super().get_urls()]

    def preview_view(self, request, object_id):
        template = self._template_or_404(request, object_id)
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        return self._preview_page(request, template, request.GET)

    def send_test_view(self, request, object_id):
        """POST only (the admin checks its CSRF token): send the previewed template
        as a test, then back to the preview; bad input shows on the preview page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        template = self._template_or_404(request, object_id)
        if not self.has_change_permission(request, template):
            raise PermissionDenied
        may_choose_contact = request.user.has_perm("contacts.view_contact")
        email = request.POST.get("email", "") if may_choose_contact else ""
        event_json = request.POST.get("event", "")
        outcome = template_send_test(
            template=template,
            to_address=request.POST.get("to", ""),
            email=email,
            event_json=event_json,
            may_choose_contact=may_choose_contact,
        )
        if not outcome.sent:
            return self._preview_page(
                request, template, request.POST, test_to=request.POST.get("to", ""),
                test_error=outcome.message,
            )  # fmt: skip
        messages.success(request, outcome.message)
        # Back to the same preview; built here, never taken from the request.
        query = urlencode([(k, v) for k, v in (("email", email), ("event", event_json)) if v])
        url = reverse("admin:messaging_template_preview", args=[template.pk])
        return redirect(f"{url}?{query}" if query else url)

    def _template_or_404(self, request, object_id):
        return get_object_or_404(
            self.get_queryset(request).select_related("message_type__channel"), pk=object_id
        )

    def _preview_page(self, request, template, data, *, test_to=None, test_error=""):
        # Only staff who may view contacts choose whose data the preview shows.
        may_choose_contact = request.user.has_perm("contacts.view_contact")
        email = data.get("email", "") if may_choose_contact else ""
        event_json = data.get("event", "")
        preview = template_preview(
            template=template,
            email=email,
            event_json=event_json,
            may_choose_contact=may_choose_contact,
        )
        try:
            can_send_test = get_backend(template.medium).sends_to_address
        except ImproperlyConfigured:
            can_send_test = False
        can_send_test = can_send_test and self.has_change_permission(request, template)
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
                "preview": preview,
                "can_send_test": can_send_test,
                "recipient_noun": recipient_noun(template),
                "test_to": (
                    (request.user.email if preview.is_email else "") if test_to is None else test_to
                ),
                "test_error": test_error,
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


class AttentionFilter(admin.SimpleListFilter):
    """Messages that need a person, recent ones only (the dashboard links here)."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("yes", f"Failed or interrupted, last {ATTENTION_WINDOW.days} days")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(attention_messages_q())
        return queryset


class InterruptedFilter(admin.SimpleListFilter):
    """Messages whose worker died while handing them over: they may or may not
    have arrived, and are sent again only if staff re-send them."""

    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [("interrupted", "Interrupted (outcome unknown)")]

    def queryset(self, request, queryset):
        if self.value() == "interrupted":
            return queryset.filter(interrupted_messages_q())
        return queryset


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    """The send log. Read-only, and never deleted here: a message's row is what
    stops a retried job from sending it a second time. The one change staff
    make is a deliberate re-send of a message whose delivery was interrupted."""

    actions = ("resend_interrupted",)

    list_display = (
        "contact",
        "template",
        "status",
        "skip_reason",
        "to_address",
        "sent_at",
        "attempts",
        "error_summary",
    )
    list_filter = (
        "status",
        AttentionFilter,
        InterruptedFilter,
        "skip_reason",
        "medium",
        "origin",
        "is_test",
    )
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
                    ("resent_by", "resent_at"),
                )
            },
        ),
        ("Content", {"fields": ("content_as_sent",)}),
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

    @admin.action(
        description="Re-send selected interrupted messages (may deliver a second copy)",
        permissions=["resend"],
    )
    def resend_interrupted(self, request, queryset):
        outcome = messages_resend(messages=queryset, actor=request.user.get_username())
        if outcome.resent:
            self.message_user(
                request,
                f"{outcome.resent} message(s) will be sent again within a scheduler pass.",
                messages.SUCCESS,
            )
        if outcome.refused:
            self.message_user(
                request,
                f"{outcome.refused} message(s) left alone: only a message whose delivery was "
                "interrupted (filter “Interrupted”) can be re-sent.",
                messages.WARNING,
            )

    def has_resend_permission(self, request):
        return request.user.has_perm("messaging.resend_message")

    readonly_fields = ("content_as_sent",)

    @admin.display(description="Content as sent")
    def content_as_sent(self, obj):
        # What was kept when it was sent; never the template rendered again
        # without saying so.
        content = sent_content(obj)
        preview = None
        if content is None and obj.status == Message.Status.SENT and not obj.is_test:
            preview = todays_preview(obj)
        return render_to_string(
            "admin/messaging/message/content_field.html",
            {
                "message": obj,
                "content": content,
                "preview": preview,
                "kept_days": settings.WAYMARK_SENT_CONTENT_DAYS,
            },
        )

    @admin.display(description="Error")
    def error_summary(self, obj):
        # The first line says what went wrong; the message's page has all of it.
        return obj.error.splitlines()[0][:120] if obj.error else ""


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
