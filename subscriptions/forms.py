"""The preference center's form: one checkbox per marketing message type, one
"unsubscribe from everything" per marketing channel."""

from dataclasses import dataclass

from django import forms

from subscriptions.selectors import ChannelChoices, MessageTypeChoice, PreferenceCenter
from subscriptions.services import PreferenceChoice


@dataclass(frozen=True)
class _Row:
    choice: MessageTypeChoice
    field: forms.BoundField


@dataclass(frozen=True)
class _Group:
    choices: ChannelChoices
    unsubscribe_field: forms.BoundField
    rows: list[_Row]


class PreferencesForm(forms.Form):
    """Each field carries, in a hidden twin, the value the page showed
    (`show_hidden_initial`), so a save applies only what the subscriber
    changed on that page: two tabs changing different things both count,
    and a stale tab does not undo what another saved."""

    def __init__(self, center: PreferenceCenter, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.center = center
        self._scopes = {}
        for group in center.channels:
            name = f"channel_{group.channel.pk}_unsubscribed"
            self.fields[name] = forms.BooleanField(
                required=False, initial=group.unsubscribed, show_hidden_initial=True
            )
            # Checked means "receive nothing on this channel".
            self._scopes[name] = (group.channel, False)
            for choice in group.message_types:
                name = f"type_{choice.message_type.pk}"
                self.fields[name] = forms.BooleanField(
                    required=False, initial=choice.receives, show_hidden_initial=True
                )
                self._scopes[name] = (choice.message_type, True)

    def groups(self) -> list[_Group]:
        """The fields by channel, for the template."""
        return [
            _Group(
                group,
                self[f"channel_{group.channel.pk}_unsubscribed"],
                [
                    _Row(choice, self[f"type_{choice.message_type.pk}"])
                    for choice in group.message_types
                ],
            )
            for group in self.center.channels
        ]

    def choices(self) -> list[PreferenceChoice]:
        """What the subscriber changed on the page, for preferences_save."""
        changed = []
        for name in self.changed_data:
            scope, checked_receives = self._scopes[name]
            checked = self.cleaned_data[name]
            changed.append(PreferenceChoice(scope, receive=checked == checked_receives))
        return changed
