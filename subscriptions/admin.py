import csv

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import pluralize
from django.urls import path

from contacts.admin import BigTableAdmin, ContactAdmin, ReadOnlyAdminMixin, become
from contacts.models import Contact
from subscriptions.models import Channel, ConsentRecord, ConsentSource, MessageType, Subscription
from subscriptions.selectors import consent_ledger_rows
from subscriptions.services import (
    channel_check,
    channel_save,
    message_type_check,
    message_type_save,
    subscription_set,
)


class ConsentRulesForm(forms.ModelForm):
    """Checks the consent rules with the service check that saving goes
    through too, so that they show as form errors. The check locks the rows it
    reads until the admin's transaction ends, so they still hold at save."""

    def check_consent_rules(self):
        raise NotImplementedError

    def _post_clean(self):
        super()._post_clean()
        if not self.errors:
            try:
                self.check_consent_rules()
            except ValidationError as exc:
                self._update_errors(exc)


class ChannelForm(ConsentRulesForm):
    class Meta:
        model = Channel
        fields = ("name", "medium", "kind", "description")
        help_texts = {
            "kind": (
                "Marketing: contacts may unsubscribe from the whole channel, and its message "
                "types may be opt-out, opt-in or double opt-in. Transactional (receipts, "
                "password resets): no unsubscribe is offered and every message type is "
                "opt-out, so its messages go to every contact with an address. A channel can "
                "become transactional only once none of its message types needs a "
                "subscription; contacts who unsubscribed while it was marketing still get "
                "nothing they unsubscribed from."
            ),
        }

    def check_consent_rules(self):
        channel_check(channel=self.instance)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ("name", "medium", "kind", "created_at")
    list_filter = ("medium", "kind")
    search_fields = ("name",)
    readonly_fields = ("created_at",)

    def save_model(self, request, obj, form, change):
        result = channel_save(channel=obj)
        if result.unsubscribed_contacts:
            count = result.unsubscribed_contacts
            messages.warning(
                request,
                f"{count} contact{pluralize(count)} unsubscribed from {obj} or its message "
                "types while it was marketing. Their unsubscribes still count: they get "
                "nothing they unsubscribed from.",
            )


class MessageTypeForm(ConsentRulesForm):
    class Meta:
        model = MessageType
        fields = (
            "channel",
            "name",
            "description",
            "policy",
            "frequency_limit",
            "frequency_period",
        )
        help_texts = {
            "policy": (
                "Who may be sent messages of this type. Opt-out: every contact, unless they "
                "unsubscribed from this type or its channel. Opt-in: only contacts who "
                "subscribed (on the preference center, through the API or by staff). Double "
                "opt-in: only contacts who subscribed and then confirmed by the link in the "
                "confirmation email; nothing is sent while they have not. Whatever the policy, "
                "an unsubscribe always wins, and blocklisted contacts and suppressed addresses "
                "get nothing. Transactional channels take opt-out types only. An opt-in or "
                "double-opt-in type cannot become opt-out (it would reach everyone who never "
                "subscribed): make a new message type instead."
            ),
        }

    def check_consent_rules(self):
        message_type_check(message_type=self.instance)


@admin.register(MessageType)
class MessageTypeAdmin(admin.ModelAdmin):
    form = MessageTypeForm
    list_display = ("name", "channel", "policy", "frequency", "created_at")
    list_filter = ("channel", "policy")
    list_select_related = ("channel",)
    search_fields = ("name", "channel__name")
    readonly_fields = ("created_at",)
    fieldsets = (
        (None, {"fields": ("channel", "name", "description", "policy")}),
        ("Frequency cap", {"fields": (("frequency_limit", "frequency_period"),)}),
        (
            "Tracking",
            {
                "fields": ("track_opens", "track_clicks"),
                "description": "Whether emails of this type count opens (a tracking pixel) "
                "and clicks (links through a tracked redirect).",
            },
        ),
        (None, {"fields": ("created_at",)}),
    )

    @admin.display(description="Frequency cap", ordering="frequency_limit")
    def frequency(self, obj):
        if obj.frequency_limit is None:
            return "—"
        return f"{obj.frequency_limit} {obj.get_frequency_period_display()}"

    def save_model(self, request, obj, form, change):
        message_type_save(message_type=obj)


class SubscriptionForm(forms.ModelForm):
    note = forms.CharField(
        max_length=255,
        required=False,
        help_text="Why it changed (kept in the consent record), e.g. “asked by phone”.",
    )

    class Meta:
        model = Subscription
        fields = ("contact", "channel", "message_type", "status")

    def clean(self):
        # The rules subscription_set enforces, checked here so that they show
        # as form errors rather than fail the save.
        cleaned = super().clean()
        channel = cleaned.get("channel", self.instance.channel if self.instance.pk else None)
        message_type = cleaned.get(
            "message_type", self.instance.message_type if self.instance.pk else None
        )
        status = cleaned.get("status")
        scope_channel = channel or (message_type.channel if message_type else None)
        if (
            scope_channel
            and scope_channel.is_transactional
            and status == Subscription.Status.UNSUBSCRIBED
        ):
            self.add_error(
                "status", f"{scope_channel} is transactional: contacts cannot unsubscribe from it."
            )
        if channel and status == Subscription.Status.PENDING:
            self.add_error("status", "Only message types await confirmation.")
        return cleaned


@admin.register(Subscription)
class SubscriptionAdmin(BigTableAdmin):
    """Staff changes go through subscription_set, so each one is in the consent
    ledger with the staff member as its actor."""

    form = SubscriptionForm
    list_display = ("contact", "scope", "status", "source", "updated_at")
    list_filter = ("status", "source")
    list_select_related = ("contact", "channel", "message_type__channel")
    search_fields = ("contact__email", "contact__user_id")
    autocomplete_fields = ("contact",)

    def get_fields(self, request, obj=None):
        return ("contact", "channel", "message_type", "status", "note", "source", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("source", "updated_at")
        return ("contact", "channel", "message_type", "source", "updated_at")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "message_type":
            kwargs["queryset"] = MessageType.objects.select_related("channel")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Channel or message type")
    def scope(self, obj):
        return obj.channel or obj.message_type

    def save_model(self, request, obj, form, change):
        requested = obj.status
        result = subscription_set(
            contact=obj.contact,
            status=requested,
            source=ConsentSource.ADMIN,
            channel=obj.channel,
            message_type=obj.message_type,
            actor=request.user,
            note=form.cleaned_data.get("note", ""),
        )
        become(obj, result.subscription)
        if obj.status != requested:
            messages.warning(
                request,
                f"{obj.message_type} needs double opt-in: the subscription counts once the "
                "contact confirms by link.",
            )


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    """The append-only consent ledger: readable, never edited here."""

    list_display = ("created_at", "contact", "action", "scope", "source", "actor", "ip_address")
    list_filter = ("action", "source")
    list_select_related = ("contact", "channel", "message_type__channel", "actor")
    search_fields = ("contact__email", "contact__user_id")

    @admin.display(description="Channel or message type")
    def scope(self, obj):
        return obj.channel or obj.message_type

    def get_urls(self):
        export = path(
            "contact/<int:contact_id>/csv/",
            self.admin_site.admin_view(self.export_view),
            name="subscriptions_consentrecord_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request, contact_id):
        """One contact's consent ledger as a CSV download, streamed: staff who
        may view both the contact and the ledger."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        if not (
            self.has_view_permission(request) and request.user.has_perm("contacts.view_contact")
        ):
            raise PermissionDenied
        contact = get_object_or_404(Contact, pk=contact_id)
        writer = csv.writer(Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in consent_ledger_rows(contact=contact)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="consent-{contact.pk}.csv"'
        response["Cache-Control"] = "no-store"
        return response


class Echo:
    """A file for csv.writer that hands each written row back to be streamed."""

    def write(self, value):
        return value


class SubscriptionInline(ReadOnlyAdminMixin, admin.TabularInline):
    """What the contact receives now; the full history is in the consent records."""

    model = Subscription
    fields = ("scope", "status", "source", "updated_at")
    readonly_fields = fields
    ordering = ("-updated_at",)
    extra = 0
    can_delete = False
    verbose_name_plural = "Subscriptions (change them on the preference center or via the API)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("channel", "message_type__channel")

    @admin.display(description="Channel or message type")
    def scope(self, obj):
        return obj.channel or obj.message_type


ContactAdmin.inlines = (*ContactAdmin.inlines, SubscriptionInline)
ContactAdmin.history_links = (
    *ContactAdmin.history_links,
    ("subscriptions_consentrecord", "Consent records"),
)
