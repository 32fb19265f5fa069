import hashlib
import zoneinfo

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.db.models import Q
from django.utils.timezone import get_default_timezone, now

from contacts.phones import InvalidPhoneNumber, normalise_phone


class LowercaseEmailField(models.EmailField):
    """An email stored and compared in lower case, so uniqueness and lookups
    are case-insensitive on every database."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value.strip().lower() if isinstance(value, str) else value

    def to_python(self, value):
        value = super().to_python(value)
        return value.strip().lower() if isinstance(value, str) else value


def validate_timezone(value):
    if value and value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name.")


class Contact(models.Model):
    """One person Waymark can reach, identified by email, user id or both."""

    email = LowercaseEmailField(max_length=254, unique=True, null=True, blank=True)
    user_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    # Stored in E.164 form (clean() normalises what is typed); room for a
    # number typed with spaces and dashes to reach clean().
    phone = models.CharField(
        max_length=32,
        blank=True,
        db_index=True,
        help_text="With its country code, e.g. +14155550123 (or as typed locally when "
        "WAYMARK_DEFAULT_PHONE_REGION is set); stored in E.164 form.",
    )
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone])
    locale = models.CharField(max_length=35, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    blocklisted = models.BooleanField(
        default=False, help_text="A blocklisted contact is sent nothing, on any channel."
    )
    lists = models.ManyToManyField(
        "ContactList", through="ListMembership", related_name="contacts", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(email__isnull=False) | Q(user_id__isnull=False),
                name="contact_has_email_or_user_id",
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="contact_created_idx")]

    def __str__(self):
        return self.email or f"user {self.user_id}"

    def clean(self):
        if not self.email:
            self.email = None
        if not self.user_id:
            self.user_id = None
        errors = {}
        if self.email is None and self.user_id is None:
            errors[NON_FIELD_ERRORS] = "A contact needs an email address or a user id."
        if self.phone:
            try:
                self.phone = normalise_phone(self.phone)
            except InvalidPhoneNumber as exc:
                errors["phone"] = str(exc)
        if errors:
            raise ValidationError(errors)

    @property
    def zone(self):
        """The contact's time zone, or the site's (TIME_ZONE) when none is known."""
        try:
            return zoneinfo.ZoneInfo(self.timezone) if self.timezone else get_default_timezone()
        except (KeyError, ValueError):
            return get_default_timezone()

    @property
    def first_name(self):
        return self.attributes.get("firstName") or self.attributes.get("first_name") or ""

    @property
    def last_name(self):
        return self.attributes.get("lastName") or self.attributes.get("last_name") or ""


class ContactList(models.Model):
    """A static list: contacts join and leave it explicitly."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ListMembership(models.Model):
    class Source(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "Admin"
        IMPORT = "import", "Import"
        JOURNEY = "journey", "Journey step"

    contact_list = models.ForeignKey(ContactList, on_delete=models.CASCADE)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE)
    joined_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.ADMIN)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact_list", "contact"], name="list_member_once"),
        ]
        indexes = [models.Index(fields=["contact", "contact_list"], name="membership_contact_idx")]

    def __str__(self):
        return f"{self.contact} in {self.contact_list}"


class Segment(models.Model):
    """A dynamic audience: whoever matches `conditions` at the time it is read.

    `conditions` is a tree in Waymark's condition language (docs/conditions.md),
    evaluated in SQL by `contacts.conditions.compile_conditions`. It may name
    other segments, never itself, directly or through others.
    """

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    conditions = models.JSONField(
        default=dict,
        help_text="Who belongs: rules on attributes, lists, other segments, events and "
        "message engagement, combined with all / any / not. The editor shows how many "
        "contacts match and a few of them; the rules are described in docs/conditions.md.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        from contacts.conditions import ConditionError, conditions_validate

        try:
            conditions_validate(self.conditions, segment=self)
        except ConditionError as exc:
            raise ValidationError({"conditions": str(exc)}) from exc


class Event(models.Model):
    """Something a contact did, as told by an integrator or by tracking."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=255)
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    # The integrator's own event id (Iterable's `id`): re-sending it updates
    # the stored event instead of recording it twice.
    client_event_id = models.CharField(max_length=512, null=True, blank=True, unique=True)
    campaign_id = models.BigIntegerField(null=True, blank=True)
    template_id = models.BigIntegerField(null=True, blank=True)
    # Whether listeners (journeys' entries, exits and goals) have had it: new
    # events are handed to them in batches after the request that stored them
    # (contacts.services.events_dispatch).
    dispatched = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["contact", "name", "occurred_at"], name="event_contact_name_time"),
            models.Index(fields=["name", "occurred_at"], name="event_name_time"),
            models.Index(fields=["id"], condition=Q(dispatched=False), name="event_undispatched"),
        ]

    def __str__(self):
        return f"{self.name} by {self.contact_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


class ApiKey(models.Model):
    """A key an integrator sends in the `Api-Key` header.

    Only a SHA-256 digest is stored: keys are 256-bit random strings, so a
    fast hash is enough, and lookups stay one indexed query.
    """

    class Scope(models.TextChoices):
        SERVER = "server", "Server-side: every endpoint"
        CLIENT = "client", "Client-side: track events, update a user, register devices"

    name = models.CharField(max_length=200)
    scope = models.CharField(
        max_length=8,
        choices=Scope.choices,
        default=Scope.SERVER,
        help_text="A client-side key ships inside apps and web pages, where anyone can read "
        "it: it may only do what an app does for its own user.",
    )
    prefix = models.CharField(max_length=12, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self):
        return self.revoked_at is None


class DeviceToken(models.Model):
    """A device a contact receives push notifications on: an app install
    (its FCM registration token) or a browser (its web push subscription).

    A contact may have many; a message goes to every active one. A token the
    provider rejects for good is disabled, with the provider's reason, and
    never used again unless the app registers it anew.
    """

    class Platform(models.TextChoices):
        IOS = "ios", "iOS"
        ANDROID = "android", "Android"
        WEB = "web", "Web browser"

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="device_tokens")
    platform = models.CharField(max_length=8, choices=Platform.choices)
    token = models.CharField(
        max_length=2048,
        unique=True,
        help_text="The app's FCM registration token; for a browser, its push endpoint URL.",
    )
    app_id = models.CharField(
        "app / bundle id", max_length=255, blank=True, help_text="Which app registered it."
    )
    # Web push only: the browser's PushSubscription (endpoint, keys.p256dh, keys.auth).
    subscription = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(default=now)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [
            # Sending reads a contact's active tokens for the platforms of a medium.
            models.Index(
                fields=["contact", "platform"],
                condition=Q(disabled_at__isnull=True),
                name="device_token_active",
            ),
        ]

    def __str__(self):
        return f"{self.get_platform_display()} device of {self.contact_id}"

    @property
    def is_active(self):
        return self.disabled_at is None


class ForgottenAddress(models.Model):
    """An email address or phone number whose owner asked to be forgotten,
    kept only as a SHA-256 digest, so nothing is ever sent to it again even
    when a new contact brings the same address back (an import, the API).

    The digest is a plain SHA-256 of the address as Waymark stores it (email
    trimmed and in lower case, phone in E.164), hex-encoded: unsalted on
    purpose, since a salt taken from a secret would lose every entry when the
    secret is rotated. A digest of a known address can be recomputed, so it
    tells only whether that address was forgotten, never what an entry is.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", "Email address"
        PHONE = "phone", "Phone number"

    digest = models.CharField(max_length=64, unique=True, editable=False)
    kind = models.CharField(max_length=8, choices=Kind.choices, editable=False)
    # Who asked, without naming the person: "api", "admin", ...
    source = models.CharField(max_length=16, blank=True, editable=False)
    requested_by = models.CharField(
        max_length=255, blank=True, editable=False, help_text="The API key or staff member."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Forgotten {self.get_kind_display().lower()} {self.digest[:12]}…"

    @staticmethod
    def digest_of(address: str) -> str:
        return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()

    @staticmethod
    def digest_sql(column: str, connection) -> str:
        """SQL computing digest_of() from a stored address column, on
        PostgreSQL and on SQLite (where Django registers SHA256())."""
        if connection.vendor == "postgresql":
            return f"encode(sha256(convert_to(lower(trim({column})), 'UTF8')), 'hex')"
        return f"SHA256(lower(trim({column})))"
