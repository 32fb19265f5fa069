"""The condition editor: rules built without writing JSON, for any condition
field (segments, and journeys' conditions and audiences).

`ConditionEditor` is a widget for a JSON form field holding a tree of the
condition language (docs/conditions.md). It renders the JSON in a textarea,
which is the field itself: without JavaScript it is all there is, and it is
what the form posts. admin/waymark/conditions.js reads the tree from it, shows
it as rows of rules in groups, and writes the tree back as the rules change;
the textarea stays in a collapsible "JSON" section, and editing it there
redraws the rules. Given a `preview_url` (an endpoint answering like
SegmentAdmin's preview view), the editor shows how many contacts match and a
few of them as the rules change.

Checking the tree is the model's job (`conditions_validate` in its clean()):
its messages name the rule in error (`all[1].not: ...`), and the script marks
that rule.
"""

from collections.abc import Callable, Iterable

from django import forms

from contacts.conditions import ATTRIBUTE_OPERATORS

# What a rule may name by id, and where the editor finds the names to show:
# key -> a callable giving (id, name) pairs. Apps above contacts add theirs
# (messaging: templates and message types; journeys: journeys).
CHOICES: dict[str, Callable[[], Iterable[tuple[int, str]]]] = {}
# A select of thousands of names helps nobody, and the page would carry them
# all; a rule naming one beyond these shows its id.
MAX_CHOICES = 1_000


def register_condition_choices(key: str, choices: Callable[[], Iterable[tuple[int, str]]]):
    """Let rules name rows of kind `key` ("list", "template") by their names."""
    CHOICES[key] = choices


def _lists():
    from contacts.models import ContactList

    return ContactList.objects.order_by("name").values_list("pk", "name")[:MAX_CHOICES]


def _segments():
    from contacts.models import Segment

    return Segment.objects.order_by("name").values_list("pk", "name")[:MAX_CHOICES]


register_condition_choices("list", _lists)
register_condition_choices("segment", _segments)


def condition_choices() -> dict[str, list[list]]:
    """What rules may name, by kind: {"list": [[id, name], ...], ...} (one
    query per kind)."""
    return {key: [[pk, str(label)] for pk, label in source()] for key, source in CHOICES.items()}


class ConditionEditor(forms.Textarea):
    """Edits a condition tree as rules; the JSON stays editable beside them."""

    template_name = "contacts/widgets/condition_editor.html"

    class Media:
        css = {"all": ("admin/waymark/conditions.css",)}
        js = ("admin/waymark/conditions.js",)

    def __init__(self, attrs=None, *, preview_url=None, segment_id=None, choices=None):
        """`choices` (from `condition_choices()`) saves their queries when many
        editors share a page, as the forms of an inline formset do; without
        it each editor reads them as it renders."""
        super().__init__({"rows": 10, "cols": 80, "class": "vLargeTextField", **(attrs or {})})
        self.preview_url = preview_url
        # The segment being edited: not offered as a rule of its own.
        self.segment_id = segment_id
        self.choices = choices

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        choices = dict(self.choices if self.choices is not None else condition_choices())
        if self.segment_id is not None and "segment" in choices:
            choices["segment"] = [c for c in choices["segment"] if c[0] != self.segment_id]
        context["widget"].update(
            options_id=f"{context['widget']['attrs'].get('id') or name}-options",
            preview_url=self.preview_url or "",
            segment_id="" if self.segment_id is None else self.segment_id,
            # Read by the script through json_script, which escapes it for the page.
            options={"choices": choices, "operators": ATTRIBUTE_OPERATORS},
        )
        return context


class ConditionField(forms.JSONField):
    """A condition tree. Left empty, it is `{}`: no rules (a segment of
    everyone; a journey condition refuses it in its own check)."""

    widget = ConditionEditor

    def __init__(self, **kwargs):
        kwargs["required"] = False
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return {} if value is None else value
