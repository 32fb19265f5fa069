"""The webhook step: a call to a URL about the contact."""

import re
from time import monotonic

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import DataError, models, transaction
from django.utils import timezone

from contacts.conditions import (
    ConditionError,
    validate_attribute_path,
)
from contacts.services.users import UserError, UserUpdate, users_update
from journeys.models.steps.base import NEXT, NOT_CALLED_YET, Step, retry_or_fail, tries_so_far
from journeys.outcomes import (
    Abandoned,
    Continue,
    RetryAt,
)
from journeys.services.webhooks import (
    deep_merge,
    is_missing,
    json_path_value,
    nested,
    webhook_call,
)
from messaging.backends.safehttp import CheckedSession
from messaging.backends.webhook import USER_AGENT, render_body, signature_headers, url_problem
from messaging.context import message_context
from messaging.rendering import RenderError, TemplateSyntaxProblem, check_syntax, render_string

_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class WebhookStep(Step):
    """Call a URL about the contact (POST a JSON body built from the contact and
    the event, by default), then go on; optionally keep fields of the answer.

    Never calls a private, loopback, link-local or otherwise internal address
    (each host is resolved and checked, redirects too) unless the operator
    allows its network (WAYMARK_WEBHOOK_ALLOWED_NETWORKS). No answer in time,
    no connection, 408, 429 and 5xx are tried again a few times, minutes
    apart; another 4xx is not. A call that fails for good sends the contact
    along the "failed" connection (empty: on as after a success), with the
    status and the start of the answer in the step run. Saved fields go into
    the contact's attributes and/or the journey's data (`{{ event.<key> }}`
    in later steps).
    """

    performs_io = True

    class Method(models.TextChoices):
        POST = "POST", "POST"
        PUT = "PUT", "PUT"
        PATCH = "PATCH", "PATCH"
        GET = "GET", "GET"

    MAX_TIMEOUT = 30
    MAX_RETRIES = 5

    method = models.CharField(max_length=8, choices=Method.choices, default=Method.POST)
    url = models.CharField(
        max_length=2000,
        help_text="http:// or https:// URL; may use {{ contact.* }} and {{ event.* }}.",
    )
    headers = models.JSONField(
        default=dict,
        blank=True,
        help_text='Sent as written, e.g. {"Authorization": "Bearer …"}. '
        "They are kept with the journey and appear in its exported document.",
    )
    body = models.TextField(
        blank=True,
        help_text='JSON, e.g. {"email": "{{ contact.email }}", "plan": "{{ event.plan }}"}: '
        "each string is filled in on its own, so the contact's data stays a value. "
        "Empty: no body. A GET sends none.",
    )
    timeout = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TIMEOUT)],
        help_text="Seconds the URL has to answer (at most 30).",
    )
    retries = models.PositiveSmallIntegerField(
        default=3,
        validators=[MaxValueValidator(MAX_RETRIES)],
        help_text="Tries again after no answer, a network error, 408, 429 or 5xx: "
        "1, 4, 16 … minutes later (at most 5). Other answers are not tried again.",
    )
    save_to_attributes = models.JSONField(
        default=dict,
        blank=True,
        help_text='Fields of a JSON answer to keep on the contact: {"answer path": '
        '"attribute"}, e.g. {"data.id": "crm_id", "tiers.0": "tier"}.',
    )
    save_to_data = models.JSONField(
        default=dict,
        blank=True,
        help_text="Fields of a JSON answer later steps can use as {{ event.<key> }}: "
        '{"answer path": "key"}, e.g. {"data.score": "lead_score"}.',
    )
    FAILED = "failed"

    class Meta:
        verbose_name = "webhook step"

    def connection_labels(self):
        # "failed": where contacts go when the call fails for good (without
        # a connection of its own, on as after a success).
        return (NEXT, self.FAILED)

    def clean(self):
        super().clean()
        errors = {}
        url = self.url.strip()
        # Only what comes before a template tag can be checked before rendering.
        literal = url.split("{", 1)[0] if "{" in url else url
        if (literal and not literal.lower().startswith(("http://", "https://"))) or (
            "{" not in url and url_problem(url)
        ):
            errors["url"] = "The URL must start with https:// or http://."
        if self.method == self.Method.GET and self.body.strip():
            errors["body"] = "A GET request carries no body: choose POST, PUT or PATCH."
        for field in ("url", "body"):
            try:
                check_syntax(getattr(self, field))
            except TemplateSyntaxProblem as exc:
                errors.setdefault(field, str(exc))
        if not isinstance(self.headers, dict) or not all(
            isinstance(name, str)
            and _HEADER_NAME_RE.match(name)
            and isinstance(value, str)
            and "\r" not in value
            and "\n" not in value
            for name, value in self.headers.items()
        ):
            errors["headers"] = (
                'Give the headers as an object of names and text values, e.g. {"X-Token": "…"}.'
            )
        for field in ("save_to_attributes", "save_to_data"):
            if problem := self._mapping_problem(getattr(self, field)):
                errors[field] = problem
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def _mapping_problem(mapping) -> str:
        if not isinstance(mapping, dict):
            return 'Give an object: {"answer path": "where it goes"}.'
        for source, target in mapping.items():
            if not source or any(not part for part in str(source).split(".")):
                return f"{source!r} is not a path in the answer (e.g. data.id)."
            try:
                validate_attribute_path(target if isinstance(target, str) else "")
            except ConditionError as exc:
                return f"{source!r} → {target!r}: {exc}"
        return ""

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        tries = tries_so_far(self, runs)
        budget = settings.WAYMARK_ENGINE["LEASE"].total_seconds() / 3
        started, outcomes = monotonic(), []
        with CheckedSession() as session:
            for run in runs:
                if monotonic() - started > budget:
                    outcomes.append(RetryAt(at=timezone.now(), detail=NOT_CALLED_YET))
                else:
                    outcomes.append(self._call(run, session, tries[run.enrollment.pk]))
        return outcomes

    def _call(self, run, session, tries):
        def failed(detail):
            return Continue(
                run.following_or_next(self, self.FAILED), branch=self.FAILED, detail=detail
            )

        context = message_context(contact=run.contact, event=run.enrollment.trigger_data or {})
        try:
            url = render_string(self.url, context, html=False).strip()
            body, is_json = ("", False)
            if self.method != self.Method.GET:
                body, is_json = render_body(self.body, context)
        except RenderError as exc:
            return failed(f"failed: could not fill in the call: {exc}")
        if problem := url_problem(url):
            return failed(f"failed: {problem} It was {url[:200]!r}.")
        data = body.encode() if body else None
        headers = {"User-Agent": USER_AGENT, "Idempotency-Key": run.idempotency_key}
        if body:
            headers["Content-Type"] = "application/json" if is_json else "text/plain; charset=utf-8"
        headers.update(self.headers or {})
        headers.update(signature_headers(data))
        result = webhook_call(
            session=session,
            method=self.method,
            url=url,
            headers=headers,
            body=data,
            timeout=min(self.timeout, self.MAX_TIMEOUT),
        )
        if not result.ok:
            retries = self.retries if result.transient else 0
            return retry_or_fail(
                run, tries=tries, retries=retries, detail=result.detail, failed=failed
            )
        notes = self._save(run, result.data)
        if notes is None:
            return Abandoned(detail="another worker took the enrollment after the call")
        detail = "; ".join([result.detail, *notes])
        return Continue(run.following(self), branch="ok", detail=detail)

    def _save(self, run, answer) -> list | None:
        """Keep the answer's fields; notes for the step run (None: the lease is lost)."""
        if not (self.save_to_attributes or self.save_to_data):
            return []
        if answer is None:
            return ["the answer is not JSON: nothing saved"]
        notes, missing = [], []

        def found(mapping):
            merged = {}
            for source, target in mapping.items():
                value = json_path_value(answer, source)
                if is_missing(value):
                    missing.append(source)
                else:
                    merged = deep_merge(merged, nested(target, value))
            return merged

        attributes, data = found(self.save_to_attributes), found(self.save_to_data)
        enrollment, contact = run.enrollment, run.contact
        if data:
            trigger_data = deep_merge(enrollment.trigger_data or {}, data)
            from journeys.models.enrollment import Enrollment  # it imports this module

            try:
                with transaction.atomic():
                    kept = Enrollment.objects.filter(
                        pk=enrollment.pk, lease_token=run.token
                    ).update(trigger_data=trigger_data)
            except DataError:  # a value PostgreSQL will not store (a NUL character)
                notes.append("the journey's data could not store the answer's fields")
            else:
                if not kept:
                    return None
                enrollment.trigger_data = trigger_data
                notes.append(f"kept {', '.join(sorted(data))} for later steps")
        if attributes:
            identity = {"user_id": contact.user_id} if contact.user_id else {"email": contact.email}
            try:
                result = users_update(
                    updates=[UserUpdate(**identity, data=attributes, merge_nested=True)]
                )
                if result.failures:
                    raise UserError(result.failures[0].message)
            except UserError as exc:  # e.g. a value PostgreSQL will not store
                notes.append(f"attributes not saved: {exc}")
            else:
                contact.attributes = result.updated[0].contact.attributes
                notes.append(f"saved {', '.join(sorted(attributes))} on the contact")
        if missing:
            notes.append(f"not in the answer: {', '.join(missing)}")
        return notes
