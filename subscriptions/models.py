from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from contacts.models import Contact


class ConsentSource(models.TextChoices):
    PREFERENCE_CENTER = "preference_center", "Preference center"
    ONE_CLICK = "one_click", "One-click unsubscribe"
    CONFIRMATION_LINK = "confirmation_link", "Confirmation link"
    API = "api", "API"
    JOURNEY = "journey", "Journey step"
    ADMIN = "admin", "Admin"
    IMPORT = "import", "Import"
    COMPLAINT = "complaint", "Spam complaint (reported by the mail provider)"
    PROVIDER = "provider", "Mail provider (its own unsubscribe link)"


class Channel(models.Model):
    """A medium (email, SMS, ...) used for one kind of message.

    Contacts may unsubscribe from a marketing channel as a whole;
    transactional channels (receipts, password resets) ignore that.
    """

    class Medium(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"
        PUSH = "push", "Push"
        WEB_PUSH = "web_push", "Web push"
        WHATSAPP = "whatsapp", "WhatsApp"
        IN_APP = "in_app", "In-app"
        WEBHOOK = "webhook", "Webhook"

    class Kind(models.TextChoices):
        MARKETING = "marketing", "Marketing"
        TRANSACTIONAL = "transactional", "Transactional"

    name = models.CharField(max_length=200, unique=True)
    medium = models.CharField(max_length=16, choices=Medium.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MARKETING)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["medium", "name"]

    def __str__(self):
        return self.name

    @property
    def is_transactional(self):
        return self.kind == self.Kind.TRANSACTIONAL

    def clean(self):
        # Run under a lock on this row by subscriptions.services.channel_save,
        # which message_type_save takes too: no type turns opt-in meanwhile.
        if not self.pk or not self.is_transactional:
            return
        needing_consent = [
            f"{message_type.name} ({message_type.policy_name})"
            for message_type in MessageType.objects.filter(channel_id=self.pk)
            .exclude(policy=MessageType.Policy.OPT_OUT)
            .order_by("name")
        ]
        if needing_consent:
            raise ValidationError(
                {
                    "kind": f"{self.name} cannot be transactional while it has message types "
                    f"that need a subscription: {', '.join(needing_consent)}. Make them "
                    "opt-out or move them to a marketing channel first."
                }
            )


class MessageType(models.Model):
    """What a message is about (newsletter, onboarding tips, receipts).

    Its policy decides who may receive it: opt-out types go to everyone who
    has not unsubscribed, opt-in types only to those who subscribed, and
    double-opt-in types only to those who confirmed by link.
    """

    class Policy(models.TextChoices):
        OPT_OUT = "opt_out", "Opt-out (sent unless unsubscribed)"
        OPT_IN = "opt_in", "Opt-in (sent only after subscribing)"
        DOUBLE_OPT_IN = "double_opt_in", "Double opt-in (sent only after a confirmed subscribe)"

    class Period(models.TextChoices):
        DAY = "day", "per day"
        WEEK = "week", "per week"

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="message_types")
    name = models.CharField(max_length=200)
    description = models.TextField(
        blank=True, help_text="Shown to subscribers on the preference center."
    )
    policy = models.CharField(max_length=16, choices=Policy.choices, default=Policy.OPT_OUT)
    frequency_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many messages of this type per contact per period. Empty: no cap.",
    )
    frequency_period = models.CharField(max_length=8, choices=Period.choices, default=Period.WEEK)
    track_opens = models.BooleanField(
        default=True, help_text="Count opens with a tracking pixel (email only)."
    )
    track_clicks = models.BooleanField(
        default=True, help_text="Count clicks by sending links through a tracked redirect."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["channel__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "name"], name="message_type_name_per_channel"
            ),
        ]

    def __str__(self):
        return f"{self.channel.name} / {self.name}"

    @property
    def policy_name(self):
        """The policy in a few words, for messages: "opt-in", "double opt-in"."""
        return self.policy.replace("_", "-").replace("double-", "double ")

    def clean(self):
        # Run under locks on the channels involved by
        # subscriptions.services.message_type_save; see Channel.clean.
        errors = {}
        stored = None
        if self.pk:
            stored = MessageType.objects.filter(pk=self.pk).values("policy", "channel_id").first()
        if self.channel_id and self.channel.is_transactional and self.policy != self.Policy.OPT_OUT:
            errors["policy"] = (
                f"{self.channel.name} is transactional: its message types go to every contact "
                "and must be opt-out. Choose opt-out, or a marketing channel."
            )
        elif (
            stored
            and stored["policy"] != self.Policy.OPT_OUT
            and self.policy == self.Policy.OPT_OUT
        ):
            was = MessageType(policy=stored["policy"]).policy_name
            errors["policy"] = (
                f"{self.name} is {was}: made opt-out, it would go to every contact who never "
                "subscribed. Create a new opt-out message type instead."
            )
        if stored and self.channel_id and stored["channel_id"] != self.channel_id:
            lifted = (
                Subscription.objects.filter(
                    channel_id=stored["channel_id"], status=Subscription.Status.UNSUBSCRIBED
                )
                .exclude(
                    contact_id__in=Subscription.objects.filter(
                        channel_id=self.channel_id, status=Subscription.Status.UNSUBSCRIBED
                    ).values("contact_id")
                )
                .count()
            )
            if lifted:
                old_channel = Channel.objects.get(pk=stored["channel_id"])
                errors["channel"] = (
                    f"{lifted} contact{'s' if lifted != 1 else ''} unsubscribed from "
                    f"{old_channel.name} but not from {self.channel.name}: moved there, "
                    f"{self.name} would reach them. Create the message type on "
                    f"{self.channel.name} instead."
                )
        if errors:
            raise ValidationError(errors)


class Subscription(models.Model):
    """A contact's current choice for one channel or one message type.

    Exactly one of `channel` and `message_type` is set. A channel row only
    ever means "unsubscribed from the whole channel" (or a later resubscribe);
    message-type rows carry the per-type state. History lives in ConsentRecord.
    """

    class Status(models.TextChoices):
        SUBSCRIBED = "subscribed", "Subscribed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        PENDING = "pending", "Awaiting confirmation"

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="subscriptions")
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    message_type = models.ForeignKey(
        MessageType, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    source = models.CharField(max_length=32, choices=ConsentSource.choices)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(channel__isnull=True) & Q(message_type__isnull=False))
                | (Q(channel__isnull=False) & Q(message_type__isnull=True)),
                name="subscription_one_scope",
            ),
            models.UniqueConstraint(
                fields=["contact", "channel"],
                condition=Q(channel__isnull=False),
                name="subscription_once_per_channel",
                violation_error_message="This contact already has a subscription for this channel.",
            ),
            models.UniqueConstraint(
                fields=["contact", "message_type"],
                condition=Q(message_type__isnull=False),
                name="subscription_once_per_message_type",
                violation_error_message=(
                    "This contact already has a subscription for this message type."
                ),
            ),
        ]

    def __str__(self):
        scope = self.channel or self.message_type
        return f"{self.contact} {self.status} {scope}"


class ConsentRecord(models.Model):
    """Append-only ledger of every consent change: who, what, when, from where.

    Never updated; deleted only when a contact asks to be forgotten.
    """

    class Action(models.TextChoices):
        SUBSCRIBED = "subscribed", "Subscribed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        CONFIRMATION_REQUESTED = "confirmation_requested", "Confirmation requested"
        CONFIRMED = "confirmed", "Confirmed (double opt-in)"

    Source = ConsentSource

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consent_records")
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message_type = models.ForeignKey(
        MessageType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=32, choices=Action.choices)
    source = models.CharField(max_length=32, choices=ConsentSource.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["contact", "created_at"], name="consent_contact_time")]

    def __str__(self):
        scope = self.channel or self.message_type
        return f"{self.contact_id} {self.action} {scope} via {self.source}"
