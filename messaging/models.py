from django.core.exceptions import ValidationError
from django.db import models

from contacts.models import Contact, LowercaseEmailField
from subscriptions.consent import ConsentSkipReason
from subscriptions.models import Channel, MessageType


class Template(models.Model):
    """The content of one message, written in the restricted template language.

    Which fields matter depends on the channel's medium: email uses subject,
    preheader, HTML and text; SMS and WhatsApp use the text body; push uses
    title, text body and link; webhooks use method, link and text body.
    """

    name = models.CharField(max_length=200, unique=True)
    message_type = models.ForeignKey(
        MessageType, on_delete=models.PROTECT, related_name="templates"
    )
    from_name = models.CharField(max_length=200, blank=True)
    from_email = models.EmailField(
        blank=True, help_text="Empty: the DEFAULT_FROM_EMAIL setting is used."
    )
    reply_to = models.EmailField(blank=True)
    subject = models.CharField(max_length=500, blank=True)
    preheader = models.CharField(max_length=500, blank=True)
    html_body = models.TextField(
        "HTML body",
        blank=True,
        help_text="Sanitized on save: scripts and unsafe markup are removed.",
    )
    text_body = models.TextField(
        blank=True,
        help_text="Email plain-text part (derived from the HTML when empty); the body of SMS, "
        "WhatsApp, push and webhook messages.",
    )
    title = models.CharField(max_length=200, blank=True, help_text="Push notification title.")
    link_url = models.CharField(
        "link URL", max_length=2000, blank=True, help_text="Push deep link or webhook URL."
    )
    http_method = models.CharField(
        "HTTP method",
        max_length=8,
        blank=True,
        choices=[("POST", "POST"), ("PUT", "PUT"), ("PATCH", "PATCH"), ("GET", "GET")],
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def medium(self):
        return self.message_type.channel.medium

    def clean(self):
        from messaging.rendering import TemplateSyntaxProblem, check_syntax, sanitize_html

        if not self.message_type_id:
            return
        medium = self.medium
        errors = {}
        if medium == Channel.Medium.EMAIL:
            if not self.subject:
                errors["subject"] = "An email needs a subject."
            if not self.html_body and not self.text_body:
                errors["html_body"] = "An email needs an HTML or a text body."
        elif not self.text_body and medium != Channel.Medium.WEBHOOK:
            errors["text_body"] = "This channel needs a text body."
        if medium == Channel.Medium.WEBHOOK and not self.link_url:
            errors["link_url"] = "A webhook needs a URL."
        self.html_body = sanitize_html(self.html_body)
        for field in ("subject", "preheader", "html_body", "text_body", "title", "link_url"):
            try:
                check_syntax(getattr(self, field))
            except TemplateSyntaxProblem as exc:
                errors.setdefault(field, str(exc))
        if errors:
            raise ValidationError(errors)


class Message(models.Model):
    """One intended send to one contact: the send log and the metrics source.

    The idempotency key makes a send happen at most once whatever retries
    and re-runs occur; status moves forward, each step stamped.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class SkipReason(models.TextChoices):
        BLOCKLISTED = "blocklisted", "Contact is blocklisted"
        NO_ADDRESS = "no_address", "No address for this channel"
        INVALID_ADDRESS = "invalid_address", "The address for this channel is not valid"
        # Consent reasons are subscriptions' (subscriptions.consent.ConsentSkipReason).
        CHANNEL_UNSUBSCRIBED = (
            ConsentSkipReason.CHANNEL_UNSUBSCRIBED.value,
            (ConsentSkipReason.CHANNEL_UNSUBSCRIBED.label),
        )
        MESSAGE_TYPE_UNSUBSCRIBED = (
            ConsentSkipReason.MESSAGE_TYPE_UNSUBSCRIBED.value,
            (ConsentSkipReason.MESSAGE_TYPE_UNSUBSCRIBED.label),
        )
        NOT_OPTED_IN = ConsentSkipReason.NOT_OPTED_IN.value, ConsentSkipReason.NOT_OPTED_IN.label
        NOT_CONFIRMED = ConsentSkipReason.NOT_CONFIRMED.value, ConsentSkipReason.NOT_CONFIRMED.label
        SUPPRESSED = "suppressed", "Address suppressed (bounce or complaint)"
        FREQUENCY_CAP = "frequency_cap", "Frequency cap reached"

    class Origin(models.TextChoices):
        JOURNEY = "journey", "Journey"
        API = "api", "API"

    # Statuses after which the message must never be handed to a backend again.
    ATTEMPTED = {
        Status.SENDING,
        Status.SENT,
        Status.DELIVERED,
        Status.OPENED,
        Status.CLICKED,
        Status.BOUNCED,
        Status.COMPLAINED,
    }
    FINAL = ATTEMPTED | {Status.FAILED, Status.SKIPPED}

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="messages")
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="messages")
    message_type = models.ForeignKey(MessageType, on_delete=models.PROTECT, related_name="+")
    medium = models.CharField(max_length=16, choices=Channel.Medium.choices)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    skip_reason = models.CharField(max_length=32, choices=SkipReason.choices, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    to_address = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["contact", "created_at"], name="message_contact_time"),
            models.Index(fields=["status", "created_at"], name="message_status_time"),
            models.Index(fields=["template", "status"], name="message_template_status"),
        ]

    def __str__(self):
        return f"{self.template} to {self.contact} ({self.status})"


class Suppression(models.Model):
    """An address nothing is sent to, whoever owns it: hard bounces,
    complaints, forgotten contacts and manual entries."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        COMPLAINT = "complaint", "Spam complaint"
        FORGOTTEN = "forgotten", "Contact asked to be forgotten"
        MANUAL = "manual", "Added by staff"

    address = LowercaseEmailField(
        max_length=254, unique=True, help_text="Email address (lower case)."
    )
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.address} ({self.get_reason_display()})"


class InAppMessage(models.Model):
    """A message waiting in a contact's in-app inbox, written by the in-app
    backend when the message is delivered; the app fetches it (an API of its
    own) and marks it read."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="in_app_messages")
    # One inbox entry per send, however often delivery is retried.
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="in_app")
    title = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    url = models.CharField("URL", max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Not shown after this time; empty: kept until read."
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "in-app message"
        indexes = [
            # The app reads one contact's inbox, newest first.
            models.Index(fields=["contact", "-created_at"], name="in_app_inbox"),
        ]

    def __str__(self):
        return f"In-app message {self.pk} for {self.contact_id}"


class RejectedAddress(models.Model):
    """A phone number a provider refused for a medium for good (not a valid
    mobile number, or its owner texted STOP): messages on that medium skip it
    until staff delete the entry. Email has Suppression for the same."""

    medium = models.CharField(max_length=16, choices=Channel.Medium.choices)
    address = models.CharField(max_length=254)
    reason = models.CharField(max_length=500, help_text="What the provider said.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "rejected addresses"
        constraints = [
            models.UniqueConstraint(fields=["medium", "address"], name="rejected_address_once"),
        ]

    def __str__(self):
        return f"{self.address} ({self.get_medium_display()})"
