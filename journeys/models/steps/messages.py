"""Steps that send: a message to the contact, a note to staff."""

import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import models
from django.urls import reverse

from journeys.models.steps.base import Step, retry_or_fail, tries_so_far
from journeys.outcomes import (
    Abandoned,
    Continue,
    RetryAt,
)
from messaging.context import message_context
from messaging.models import Message, Template
from messaging.rendering import RenderError, TemplateSyntaxProblem, check_syntax, render_string
from messaging.services import SendRequest, messages_send


class SendMessageStep(Step):
    """Send a template to the contact, on whatever channel its message type is on.

    Consent is checked when the message goes out, not at entry, and a
    journey paused in the meantime holds the contact here until it goes live
    again. Whatever the send's outcome (sent, skipped, failed, or left to
    messaging's own retries), the contact goes on; the outcome is on the
    Message. Contacts at this step in one batch are sent to together.
    """

    performs_io = True

    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = "send message step"

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        results = messages_send(
            [
                SendRequest(
                    contact=run.contact,
                    template=self.template,
                    idempotency_key=run.idempotency_key,
                    origin=Message.Origin.JOURNEY,
                    origin_id=run.enrollment.pk,
                    origin_step_id=self.pk,
                    context=run.template_context(),
                    hold=run.send_hold,
                )
                for run in runs
            ]
        )
        outcomes = []
        for run, result in zip(runs, results, strict=True):
            if result.abandoned:
                outcomes.append(Abandoned(detail=result.detail))
            elif result.deferred:
                # Same step, same counter: the send happens when the journey runs again.
                outcomes.append(RetryAt(at=run.now, message=result.message, detail=result.detail))
            else:
                outcomes.append(
                    Continue(run.following(self), message=result.message, detail=result.detail)
                )
        return outcomes


class NotifyStaffStep(Step):
    """Email staff that the contact reached this step, then go on.

    A transactional note to people of the company, not a message to the
    contact: the contact's consent and subscriptions do not apply, and
    nothing is recorded as sent to them. Recipients are addresses and/or
    the active members of a group; the subject and body are templates over
    the contact and the event (plain text), and the email ends with a link
    to the contact's page in the admin. A mail server that fails is tried
    again a few times, minutes apart; after that the contact goes on and
    the step run says the note was not sent.
    """

    performs_io = True

    RETRIES = 3

    recipients = models.TextField(
        blank=True, help_text="Email addresses, separated by commas or new lines."
    )
    staff_group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Also every active member of this group who has an email address.",
    )
    subject = models.CharField(
        max_length=300,
        default="{{ contact.email }} reached a journey step",
        help_text="May use {{ contact.* }} and {{ event.* }}.",
    )
    body = models.TextField(
        blank=True,
        help_text="Plain text; may use {{ contact.* }} and {{ event.* }}. A link to the "
        "contact's page in the admin is added at the end.",
    )

    class Meta:
        verbose_name = "notify staff step"

    def addresses(self) -> list[str]:
        return [part for part in re.split(r"[\s,;]+", self.recipients or "") if part]

    def clean(self):
        super().clean()
        errors = {}
        bad = []
        for address in self.addresses():
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            errors["recipients"] = f"Not an email address: {', '.join(bad)}."
        elif not self.addresses() and self.staff_group_id is None:
            errors["recipients"] = "Give an address, or choose a group to notify."
        for field in ("subject", "body"):
            try:
                check_syntax(getattr(self, field))
            except TemplateSyntaxProblem as exc:
                errors[field] = str(exc)
        if errors:
            raise ValidationError(errors)

    def _recipients(self) -> list[str]:
        found = dict.fromkeys(address.lower() for address in self.addresses())
        if self.staff_group_id:
            members = (
                get_user_model()
                .objects.filter(groups=self.staff_group_id, is_active=True)
                .exclude(email="")
                .order_by("email")
                .values_list("email", flat=True)
            )
            found.update(dict.fromkeys(email.lower() for email in members))
        return list(found)

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        recipients = self._recipients()
        if not recipients:
            return [
                Continue(run.following(self), branch="", detail="no one to notify: not sent")
                for run in runs
            ]
        tries = tries_so_far(self, runs)
        emails = [self._email(run, recipients) for run in runs]
        connection = get_connection()
        try:
            connection.open()
        except Exception as exc:  # the mail server is down: every note waits
            problem = f"{type(exc).__name__}: {exc}"
            return [self._not_sent(run, tries, problem) for run in runs]
        outcomes = []
        try:
            for run, email in zip(runs, emails, strict=True):
                if isinstance(email, str):  # a template that would not render
                    outcomes.append(Continue(run.following(self), branch="", detail=email))
                    continue
                email.connection = connection
                try:
                    email.send()
                except Exception as exc:
                    outcomes.append(self._not_sent(run, tries, f"{type(exc).__name__}: {exc}"))
                    continue
                outcomes.append(
                    Continue(
                        run.following(self), detail=f"notified {len(recipients)} staff member(s)"
                    )
                )
        finally:
            connection.close()
        return outcomes

    def _not_sent(self, run, tries, problem):
        def failed(detail):
            return Continue(run.following(self), detail=f"not sent: {detail}")

        return retry_or_fail(
            run, tries=tries[run.enrollment.pk], retries=self.RETRIES, detail=problem[:300],
            failed=failed,
        )  # fmt: skip

    def _email(self, run, recipients):
        """The note for `run`, or why it could not be written."""
        context = message_context(contact=run.contact, event=run.enrollment.trigger_data or {})
        try:
            subject = render_string(self.subject, context, html=False)
            body = render_string(self.body, context, html=False)
        except RenderError as exc:
            return f"not sent: the note could not be filled in: {exc}"[:500]
        # One line, whatever the data held: a subject is a header.
        subject = " ".join(subject.split())[:250] or f"{run.contact} reached “{self.key}”"
        link = settings.SITE_URL + reverse("admin:contacts_contact_change", args=[run.contact.pk])
        journey = self.journey  # one query for the batch: the step is shared
        step = self.name or self.key
        footer = f"Contact: {run.contact}\n{link}\n\nJourney “{journey}”, step “{step}”."
        text = f"{body.rstrip()}\n\n-- \n{footer}\n" if body.strip() else f"{footer}\n"
        return EmailMessage(subject=subject, body=text, to=recipients)
