"""Steps that change things: the contact, another journey's entries; the exit."""

import copy

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from contacts.conditions import (
    ConditionError,
    parse_value,
    validate_attribute_path,
)
from contacts.models import ContactList, ListMembership
from contacts.services.lists import memberships_add
from contacts.sql import update_from_values
from journeys.models.journey import Journey
from journeys.models.steps.base import Step
from journeys.outcomes import (
    Complete,
    Continue,
)
from subscriptions.models import Channel, ConsentSource, MessageType, Subscription
from subscriptions.services import subscription_set


class UpdateContactStep(Step):
    """Change the contact, then go on: set, remove or add to an attribute (a
    lead score up or down), add to or remove from a list, subscribe to or
    unsubscribe from a message type, unsubscribe from a channel, or blocklist.

    Consent changes go through the consent services and write the ledger
    (source "journey step"). The change is written in the same transaction
    as the contact's move to the next step: if that move is not made (another
    worker took the enrollment), neither is the change. Adding to a number
    that is not one fails the step, with the reason, rather than guess.
    """

    class Action(models.TextChoices):
        SET = "set", "Set an attribute"
        UNSET = "unset", "Remove an attribute"
        INCREMENT = "increment", "Add to a number attribute (a negative value subtracts)"
        ADD_TO_LIST = "add_to_list", "Add to a list"
        REMOVE_FROM_LIST = "remove_from_list", "Remove from a list"
        SUBSCRIBE = "subscribe", "Subscribe to a message type"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe from a message type"
        UNSUBSCRIBE_CHANNEL = "unsubscribe_channel", "Unsubscribe from a channel"
        BLOCKLIST = "blocklist", "Blocklist the contact"

    ATTRIBUTE_ACTIONS = (Action.SET, Action.UNSET, Action.INCREMENT)

    action = models.CharField(max_length=24, choices=Action.choices, default=Action.SET)
    attribute = models.CharField(
        max_length=255, blank=True, help_text='Attribute path, e.g. "score" or "address.city".'
    )
    value = models.CharField(
        max_length=500,
        blank=True,
        help_text='Read as JSON when it parses (30, true, "x"): the value to set, or to add.',
    )
    contact_list = models.ForeignKey(
        ContactList, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    message_type = models.ForeignKey(
        MessageType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = "update contact step"

    def clean(self):
        super().clean()
        needs = {
            self.Action.ADD_TO_LIST: "contact_list",
            self.Action.REMOVE_FROM_LIST: "contact_list",
            self.Action.SUBSCRIBE: "message_type",
            self.Action.UNSUBSCRIBE: "message_type",
            self.Action.UNSUBSCRIBE_CHANNEL: "channel",
        }
        if self.action in self.ATTRIBUTE_ACTIONS:
            try:
                validate_attribute_path(self.attribute)
            except ConditionError as exc:
                raise ValidationError({"attribute": str(exc)}) from exc
            if self.action == self.Action.INCREMENT and not isinstance(
                parse_value(self.value), int | float
            ):
                raise ValidationError({"value": "Give the number to add, e.g. 10 or -5."})
        elif (field := needs.get(self.action)) and getattr(self, f"{field}_id") is None:
            raise ValidationError({field: "Choose one for this action."})
        scope = self.channel if self.action == self.Action.UNSUBSCRIBE_CHANNEL else None
        if self.action == self.Action.UNSUBSCRIBE and self.message_type_id:
            scope = self.message_type.channel
        if scope is not None and scope.is_transactional:
            raise ValidationError(f"{scope} is transactional: contacts cannot unsubscribe from it.")

    def execute(self, run):
        contact, action = run.contact, self.action
        if action in self.ATTRIBUTE_ACTIONS:
            detail = self._update_attribute(contact)
        elif action == self.Action.ADD_TO_LIST:
            joined = memberships_add(
                pairs={(contact.pk, self.contact_list_id)}, source=ListMembership.Source.JOURNEY
            )
            detail = f"added to {self.contact_list}" if joined else "already in the list"
        elif action == self.Action.REMOVE_FROM_LIST:
            ListMembership.objects.filter(
                contact_list_id=self.contact_list_id, contact_id=contact.pk
            ).delete()
            detail = f"removed from {self.contact_list}"
        elif action == self.Action.BLOCKLIST:
            type(contact).objects.filter(pk=contact.pk).update(blocklisted=True)
            contact.blocklisted = True
            detail = "blocklisted"
        else:
            status = (
                Subscription.Status.SUBSCRIBED
                if action == self.Action.SUBSCRIBE
                else Subscription.Status.UNSUBSCRIBED
            )
            scope = (
                {"channel": self.channel}
                if action == self.Action.UNSUBSCRIBE_CHANNEL
                else {"message_type": self.message_type}
            )
            change = subscription_set(
                contact=contact,
                status=status,
                source=ConsentSource.JOURNEY,
                note=f"Journey {run.enrollment.journey_id}, step “{self.key}”"[:255],
                **scope,
            )
            detail = f"{change.subscription.status}" if change.changed else "unchanged"
        return Continue(run.following(self), detail=detail)

    def execute_many(self, runs):
        """Attribute, list and blocklist changes are written for the whole
        batch at once (a few statements, whatever its size); consent changes
        go through the consent service contact by contact."""
        contacts = {run.contact.pk: run.contact for run in runs}
        action = self.action
        if action in self.ATTRIBUTE_ACTIONS:
            details = self._update_attributes(list(contacts.values()))
        elif action == self.Action.ADD_TO_LIST:
            already = set(
                ListMembership.objects.filter(
                    contact_list_id=self.contact_list_id, contact_id__in=contacts
                ).values_list("contact_id", flat=True)
            )
            memberships_add(
                pairs={(pk, self.contact_list_id) for pk in contacts.keys() - already},
                source=ListMembership.Source.JOURNEY,
            )
            details = {
                pk: "already in the list" if pk in already else f"added to {self.contact_list}"
                for pk in contacts
            }
        elif action == self.Action.REMOVE_FROM_LIST:
            ListMembership.objects.filter(
                contact_list_id=self.contact_list_id, contact_id__in=contacts
            ).delete()
            details = dict.fromkeys(contacts, f"removed from {self.contact_list}")
        elif action == self.Action.BLOCKLIST:
            type(runs[0].contact).objects.filter(pk__in=contacts).update(blocklisted=True)
            for contact in contacts.values():
                contact.blocklisted = True
            details = dict.fromkeys(contacts, "blocklisted")
        else:
            return super().execute_many(runs)
        return [Continue(run.following(self), detail=details[run.contact.pk]) for run in runs]

    def _update_attribute(self, contact):
        return self._update_attributes([contact])[contact.pk]

    def _update_attributes(self, contacts):
        """Apply the attribute action to each contact; {contact id: detail}.

        The rows are locked: an API update of the same contact waits, and
        neither loses the other's change. One SELECT and one UPDATE for all.
        """
        model = type(contacts[0])
        locked = dict(
            model.objects.select_for_update()
            .filter(pk__in=[c.pk for c in contacts])
            .order_by("pk")
            .values_list("pk", "attributes")
        )
        details, changed, now = {}, [], timezone.now()
        for contact in contacts:
            attributes, details[contact.pk] = self._changed(locked.get(contact.pk))
            if attributes is not None:
                contact.attributes = attributes  # what the journey's next steps read
                contact.updated_at = now
                changed.append(contact)
        if changed:
            update_from_values(model, changed, ["attributes", "updated_at"])
        return details

    def _changed(self, current):
        """(the attributes after the action, or None if unchanged; the detail)."""
        attributes = copy.deepcopy(current or {})
        *parents, leaf = self.attribute.split(".")
        node = attributes
        for part in parents:
            if not isinstance(node.get(part), dict):
                if self.action == self.Action.UNSET:
                    return None, f"{self.attribute} was not set"
                node[part] = {}
            node = node[part]
        if self.action == self.Action.UNSET:
            if node.pop(leaf, _NOT_SET) is _NOT_SET:
                return None, f"{self.attribute} was not set"
            return attributes, f"{self.attribute} removed"
        if self.action == self.Action.SET:
            node[leaf] = parse_value(self.value)
        else:
            current = node.get(leaf, 0)
            if isinstance(current, bool) or not isinstance(current, int | float):
                raise ValueError(f"{self.attribute} holds {current!r}, not a number to add to")
            node[leaf] = current + parse_value(self.value)
        return attributes, f"{self.attribute} = {node[leaf]!r}"


_NOT_SET = object()


class StartJourneyStep(Step):
    """Enter the contact into another journey, then go on here.

    The other journey must be live, with a trigger "Another journey starts
    it" naming this journey (or any), and its audience and re-entry policy
    decide as for any entry; it receives this passage's trigger data. When it does not
    take the contact, the step says why and the contact goes on all the same.
    """

    target = models.ForeignKey(
        Journey,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The journey the contact enters.",
    )

    class Meta:
        verbose_name = "start journey step"

    def clean(self):
        super().clean()
        if self.target_id and self.target_id == self.journey_id:
            raise ValidationError({"target": "A journey cannot start itself: use a connection."})

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        """The whole batch enters the other journey with one INSERT … SELECT."""
        from journeys.services.entry import journey_takes_from_journey, journeys_enroll_contacts

        target = Journey.objects.filter(pk=self.target_id).first()
        if target is None or target.state != Journey.State.LIVE:
            detail = f"“{target}” is not live: not started" if target else "no such journey"
            return [Continue(run.following(self), detail=detail) for run in runs]
        if not journey_takes_from_journey(journey=target, source_journey_id=self.journey_id):
            detail = f"“{target}” has no trigger taking contacts from this journey: not started"
            return [Continue(run.following(self), detail=detail) for run in runs]
        entered = journeys_enroll_contacts(
            journey=target,
            entries=[(run.contact.pk, run.enrollment.trigger_data) for run in runs],
        )
        return [
            Continue(
                run.following(self),
                detail=f"started “{target}”"
                if run.contact.pk in entered
                else f"“{target}” did not take them (re-entry policy or audience)",
            )
            for run in runs
        ]


class ExitStep(Step):
    """End the contact's passage through the journey here: they have completed
    it, as if they had run off its last step."""

    continues = False

    class Meta:
        verbose_name = "exit step"

    def execute(self, run):
        return Complete()


# --- steps that call out: a webhook, a note to staff ----------------------------------

# A call that failed for a passing reason (no answer, 5xx, the mail server
# down) is tried again after 1, 4, 16 … minutes, as many times as the step allows.
