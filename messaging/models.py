import json
import re
import zlib

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

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

    # Fields written into mail headers: a line break there would start a new header.
    SINGLE_LINE_FIELDS = ("from_name", "from_email", "reply_to", "subject")
    # Fields written in the template language.
    TEMPLATE_FIELDS = ("subject", "preheader", "html_body", "text_body", "title", "link_url")

    def clean(self):
        from django.core.exceptions import ImproperlyConfigured

        from messaging.backends import get_backend

        if not self.message_type_id:
            return
        errors = self.content_problems()
        try:
            backend = get_backend(self.medium)
        except ImproperlyConfigured:
            raise ValidationError(
                {"message_type": f"No delivery backend is set up for {self.medium} messages."}
            ) from None
        # What each medium needs (an email's subject, an SMS's body, ...) is its backend's.
        for field, problem in backend.check_template(self).items():
            errors.setdefault(field, problem)
        if errors:
            raise ValidationError(errors)

    def content_problems(self) -> dict:
        """Make what staff wrote safe to store ({field: problems} for what cannot be).

        The HTML body is sanitized (what was taken out is left in
        `sanitizer_removed`, for the admin to say), the preheader reduced to
        its text, header fields kept to one line, and every template field
        checked to compile.
        """
        from messaging.rendering import (
            TemplateSyntaxProblem,
            check_syntax,
            plain_text,
            sanitize_html_report,
        )

        errors = {}
        for field in self.SINGLE_LINE_FIELDS:
            if re.search(r"[\r\n]", getattr(self, field) or ""):
                errors[field] = (
                    f"The {self._label(field)} must be a single line: remove the line break."
                )
        self.preheader = plain_text(self.preheader)
        sanitized = sanitize_html_report(self.html_body)
        if sanitized.problems:
            errors["html_body"] = list(sanitized.problems)
        else:
            self.html_body = sanitized.html
            self.sanitizer_removed = sanitized.removed
        for field in self.TEMPLATE_FIELDS:
            if field in errors:
                continue
            try:
                check_syntax(getattr(self, field))
            except TemplateSyntaxProblem as exc:
                errors[field] = f"Template error in the {self._label(field)}: {exc.detail}"
        return errors

    @classmethod
    def _label(cls, field):
        return cls._meta.get_field(field).verbose_name


class Message(models.Model):
    """One intended send to one contact: the send log and the metrics source.

    The idempotency key makes a send happen at most once whatever retries
    and re-runs occur. `status` is the send's own outcome; what happened
    afterwards (delivered, opened, clicked, bounced, complained) is kept in
    Engagement, with the first time of each stamped here for metrics.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class SkipReason(models.TextChoices):
        BLOCKLISTED = "blocklisted", "Contact is blocklisted"
        NO_ADDRESS = "no_address", "No address for this channel"
        INVALID_ADDRESS = "invalid_address", "The address for this channel is not valid"
        # Consent reasons are subscriptions' (subscriptions.consent.ConsentSkipReason).
        CHANNEL_UNSUBSCRIBED = (
            ConsentSkipReason.CHANNEL_UNSUBSCRIBED.value,
            ConsentSkipReason.CHANNEL_UNSUBSCRIBED.label,
        )
        MESSAGE_TYPE_UNSUBSCRIBED = (
            ConsentSkipReason.MESSAGE_TYPE_UNSUBSCRIBED.value,
            ConsentSkipReason.MESSAGE_TYPE_UNSUBSCRIBED.label,
        )
        NOT_OPTED_IN = ConsentSkipReason.NOT_OPTED_IN.value, ConsentSkipReason.NOT_OPTED_IN.label
        NOT_CONFIRMED = ConsentSkipReason.NOT_CONFIRMED.value, ConsentSkipReason.NOT_CONFIRMED.label
        SUPPRESSED = "suppressed", "Address suppressed (bounce or complaint)"
        FREQUENCY_CAP = "frequency_cap", "Frequency cap of the message type reached"
        DAILY_CAP = "daily_cap", "Daily limit per channel reached"
        # Set by whoever asked for the send (messaging.signals.message_sending):
        # a journey's message is stopped when the contact left the journey
        # or the journey stopped running since the send was decided.
        LEFT_JOURNEY = "left_journey", "Contact left the journey before it was sent"
        JOURNEY_NOT_LIVE = "journey_not_live", "The journey was no longer live"

    class Origin(models.TextChoices):
        JOURNEY = "journey", "Journey"
        API = "api", "API"
        SYSTEM = "system", "Waymark (e.g. a double opt-in confirmation)"
        TEST = "test", "Test send from the admin"

    # The send's own outcome is recorded: never hand the message over again.
    FINAL = {Status.SENT, Status.FAILED, Status.SKIPPED}
    # The error of a message whose worker died between handing it over and
    # recording the outcome: it may or may not have arrived, so it is not
    # sent again unless staff re-send it (messaging.services.resend).
    INTERRUPTED_ERROR = (
        "Delivery was interrupted; the outcome is unknown, so it was not sent again."
    )

    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="messages")
    message_type = models.ForeignKey(MessageType, on_delete=models.PROTECT, related_name="+")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    medium = models.CharField(max_length=16, choices=Channel.Medium.choices)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    # What asked for the send, within its origin (a journey's enrollment id).
    origin_id = models.BigIntegerField(null=True, blank=True)
    # The step that sent it, within its origin (a journey's send step id):
    # what the per-step figures (MessageTally) are kept by.
    origin_step_id = models.BigIntegerField(null=True, blank=True)
    is_test = models.BooleanField(
        default=False, help_text="Sent by staff to try a template; counted in no metric."
    )
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    skip_reason = models.CharField(max_length=32, choices=SkipReason.choices, blank=True)
    error = models.TextField(blank=True, help_text="Why it failed, or more on why it was skipped.")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A claim by messaging's retry pass (messaging.services.retries).
    locked_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    # Template data besides the contact's own (the triggering event): kept so
    # a retry, and the view-in-browser page, render what the first try did.
    context = models.JSONField(default=dict, blank=True)
    to_address = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    # The URLs the rendered message links to; click tracking redirects only to these.
    links = models.JSONField(default=list, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    # Set when staff re-sent a message whose delivery was interrupted.
    resent_by = models.CharField(
        max_length=150, blank=True, help_text="Who re-sent it after an interrupted delivery."
    )
    resent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("resend_message", "Can re-send a message whose delivery was interrupted"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(contact__isnull=False) | Q(is_test=True),
                name="message_has_contact_unless_test",
            ),
        ]
        indexes = [
            models.Index(fields=["contact", "created_at"], name="message_contact_time"),
            # Frequency caps count a contact's recent sends.
            models.Index(fields=["contact", "sent_at"], name="message_contact_sent"),
            models.Index(fields=["status", "created_at"], name="message_status_time"),
            models.Index(fields=["template", "status"], name="message_template_status"),
            # Messaging's retry pass: queued rows whose next attempt is due.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="queued", next_attempt_at__isnull=False),
                name="message_retry_due",
            ),
        ]

    def __str__(self):
        return f"{self.template} to {self.to_address or self.contact} ({self.status})"


class MessageTally(models.Model):
    """Messages counted per origin, origin step, template, UTC day and metric.

    Written by the database itself (triggers, messaging.tallies), so every
    path that stamps a message counts: the sending pipeline, retries, staff
    re-sends, tracking links and provider webhooks. Each statement that
    changes messages appends one delta row per key and day (`folded` false);
    messaging.services.tallies folds them into one row per key and day. A
    figure is the sum of `n` over both kinds of row, so it is exact whether
    or not the last fold has run. Test messages are not counted, and deleting
    messages (forgetting a contact) takes nothing away.
    """

    class Metric(models.TextChoices):
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    origin = models.CharField(max_length=16, choices=Message.Origin.choices)
    origin_step_id = models.BigIntegerField(null=True, blank=True)
    # No constraint: a trigger writes these rows on the messages' hot path,
    # and a template's figures may outlive it.
    template = models.ForeignKey(
        Template, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    day = models.DateField()
    metric = models.CharField(max_length=16, choices=Metric.choices)
    n = models.BigIntegerField()
    # False for a delta row written by a trigger, true for a folded row.
    folded = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "message tallies"
        indexes = [
            # A journey's figures: its steps' rows, by day.
            models.Index(fields=["origin_step_id", "day"], name="messagetally_step_day"),
            # The fold rewrites the (template, day) pairs that have delta rows.
            models.Index(fields=["template", "day"], name="messagetally_template_day"),
            models.Index(fields=["id"], condition=Q(folded=False), name="messagetally_unfolded"),
        ]

    def __str__(self):
        return f"{self.metric} {self.day}: {self.n}"


class Engagement(models.Model):
    """Something that happened to a sent message: one row per delivery, open,
    click, bounce or complaint, in the order they came.

    Append-only: a message can be opened, then bounce or draw a complaint,
    and each stays on record. The first time of each kind is also stamped on
    the Message (`opened_at`, ...) so metrics count messages with plain
    aggregates.
    """

    class Kind(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    # Message.<field> holding the first time of each kind.
    FIRST_TIME_FIELDS = {
        Kind.DELIVERED: "delivered_at",
        Kind.OPENED: "opened_at",
        Kind.CLICKED: "clicked_at",
        Kind.BOUNCED: "bounced_at",
        Kind.COMPLAINED: "complained_at",
    }

    class Source(models.TextChoices):
        TRACKING = "tracking", "Waymark's tracking links"
        PROVIDER = "provider", "Provider webhook"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="engagements")
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="engagements"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    occurred_at = models.DateTimeField()
    url = models.CharField(max_length=2000, blank=True, help_text="The link clicked.")
    # A hard (permanent) bounce suppresses the address; a soft one does not.
    hard_bounce = models.BooleanField(default=False)
    details = models.JSONField(default=dict, blank=True)
    # The provider's event id, so a webhook delivered twice is recorded once.
    provider_event_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["message", "kind"], name="engagement_message_kind"),
            models.Index(fields=["contact", "occurred_at"], name="engagement_contact_time"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.message_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


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


class SentContent(models.Model):
    """What a sent message carried, as rendered at the instant it was sent:
    the subject, HTML and text of an email, the body of an SMS or push, kept
    so staff see what the contact received even after the template or the
    contact's attributes changed.

    Written with the message's outcome (messaging.services.sending), only
    for messages handed over successfully, and kept WAYMARK_SENT_CONTENT_DAYS
    days (messaging.services.sent_content prunes the rest). The parts are
    zlib-compressed JSON: HTML emails of tens of kilobytes, millions of them,
    shrink several times over.
    """

    message = models.OneToOneField(
        Message, primary_key=True, on_delete=models.CASCADE, related_name="sent_content"
    )
    stored_at = models.DateTimeField(db_index=True)
    # zlib(JSON of the non-empty parts: subject, html, text, title, url, method).
    data = models.BinaryField()

    PARTS = ("subject", "html", "text", "title", "url", "method")
    # Compressed on the sending worker, once per message: zlib's fastest
    # level costs a fraction of the default's time for nearly its size.
    LEVEL = 1

    class Meta:
        verbose_name = "sent content"
        verbose_name_plural = "sent content"

    def __str__(self):
        return f"Content of message {self.message_id}"

    @classmethod
    def pack(cls, parts: dict) -> bytes:
        kept = {name: parts[name] for name in cls.PARTS if parts.get(name)}
        raw = json.dumps(kept, ensure_ascii=False, separators=(",", ":")).encode()
        return zlib.compress(raw, cls.LEVEL)

    @classmethod
    def unpack(cls, data) -> dict:
        parts = json.loads(zlib.decompress(bytes(data)))
        return {name: parts.get(name, "") for name in cls.PARTS}

    @property
    def parts(self) -> dict:
        return self.unpack(self.data)
