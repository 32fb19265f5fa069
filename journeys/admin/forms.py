"""The forms of the journey's own admin pages: import, test run, diagram period."""

import json
from datetime import datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from contacts.services import contact_find


class JourneyImportForm(forms.Form):
    file = forms.FileField(help_text="A journey document, as “Export as JSON” saves it.")
    name = forms.CharField(
        required=False, max_length=200, help_text="Empty: the name the document gives."
    )

    # Journey documents are small; a larger file is not one.
    MAX_BYTES = 2 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise ValidationError("That file is too large to be a journey document.")
        try:
            self.cleaned_data["document"] = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValidationError(f"That file is not JSON: {exc}") from None
        return upload


class TestRunForm(forms.Form):
    contact = forms.CharField(
        max_length=255, help_text="The contact to try the journey for: their email or userId."
    )
    send_to = forms.EmailField(
        required=False,
        label="Send tests to",
        help_text="Each send step sends its template here, as a test. Empty: nothing is sent.",
    )
    events_happen = forms.BooleanField(
        required=False,
        label="Awaited events happen",
        help_text="Waits for an event take their “event” branch (else their “timeout” branch).",
    )
    trigger_data = forms.JSONField(
        required=False,
        initial=dict,
        help_text='The triggering event\'s data, as JSON, e.g. {"cartId": "c-1"}.',
    )

    def clean_contact(self):
        typed = self.cleaned_data["contact"].strip()
        contact = contact_find(email=typed) if "@" in typed else None
        contact = contact or contact_find(user_id=typed)
        if contact is None:
            raise ValidationError(f"No contact has the email or userId “{typed}”.")
        return contact

    def clean_trigger_data(self):
        data = self.cleaned_data.get("trigger_data") or {}
        if not isinstance(data, dict):
            raise ValidationError('Give a JSON object, e.g. {"cartId": "c-1"}.')
        return data


class DiagramPeriodForm(forms.Form):
    """The dates the diagram's message figures cover (the last 30 days unless chosen)."""

    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def bounds(self):
        today = timezone.localdate()
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        until = data.get("until") or today
        since = data.get("since") or until - timedelta(days=29)
        zone = timezone.get_current_timezone()
        return (
            datetime.combine(since, time.min, tzinfo=zone),
            datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone),
        )
