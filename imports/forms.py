from django import forms

from contacts.models import ContactList
from imports.models import Import
from subscriptions.models import Channel, MessageType


class UploadForm(forms.Form):
    contact_list = forms.ModelChoiceField(queryset=ContactList.objects.all(), label="Into the list")
    file = forms.FileField(
        label="CSV file",
        help_text="A header row naming each column, then one contact per row. "
        "Columns are mapped onto contacts on the next page.",
    )


# Header names that map themselves: the guess staff see first.
_GUESSES = {
    "email": "email",
    "emailaddress": "email",
    "userid": "user_id",
    "phone": "phone",
    "phonenumber": "phone",
    "mobile": "phone",
}


def _choices():
    choices = [
        ("", "— ignore this column —"),
        ("email", "Email"),
        ("user_id", "userId"),
        ("phone", "Phone number"),
        (
            "Attribute",
            [
                ("attribute:text", "Attribute (text)"),
                ("attribute:number", "Attribute (number)"),
                ("attribute:boolean", "Attribute (yes/no)"),
                ("attribute:date", "Attribute (date, YYYY-MM-DD)"),
            ],
        ),
    ]
    # Transactional channels have no consent to import: they go to everyone.
    channels = Channel.objects.exclude(kind=Channel.Kind.TRANSACTIONAL).order_by("name")
    if channels:
        choices.append(
            (
                "Subscribed to the channel (yes / no)",
                [(f"channel:{c.pk}", f"Channel: {c.name}") for c in channels],
            )
        )
    types = (
        MessageType.objects.exclude(channel__kind=Channel.Kind.TRANSACTIONAL)
        .select_related("channel")
        .order_by("channel__name", "name")
    )
    if types:
        choices.append(
            (
                "Subscribed to the message type (yes / no)",
                [(f"message_type:{t.pk}", f"Message type: {t}") for t in types],
            )
        )
    return choices


class MappingForm(forms.Form):
    """One choice per column of the file's header, with an attribute name
    for attribute columns; the service checks the mapping as a whole."""

    encoding = forms.ChoiceField(
        choices=Import.Encoding.choices,
        help_text="UTF-8 unless the file was saved by an older program: Excel on Windows "
        "saves Windows-1252.",
    )

    def __init__(self, *args, an_import, **kwargs):
        super().__init__(*args, **kwargs)
        self.an_import = an_import
        choices = _choices()
        self.columns = []
        for index, column in enumerate(an_import.header):
            spec = an_import.mapping.get(column)
            if spec:
                initial = spec["to"] + (
                    f":{spec['type']}" if spec["to"] == "attribute" else f":{spec.get('id')}"
                    if spec["to"] in ("channel", "message_type") else ""
                )  # fmt: skip
                name = spec.get("name") or column
            else:
                guess = _GUESSES.get(column.lower().replace("_", "").replace(" ", ""))
                initial = guess or "attribute:text"
                name = column
            self.fields[f"col_{index}"] = forms.ChoiceField(
                choices=choices, required=False, initial=initial, label=column
            )
            self.fields[f"name_{index}"] = forms.CharField(
                required=False, initial=name, max_length=100, label=f"Attribute name for {column}"
            )
            self.columns.append((column, self[f"col_{index}"], self[f"name_{index}"]))
        if an_import.encoding:
            self.fields["encoding"].initial = an_import.encoding
        elif not an_import.looks_utf8:
            self.fields["encoding"].initial = Import.Encoding.CP1252

    def mapping(self) -> dict:
        mapping = {}
        for index, column in enumerate(self.an_import.header):
            choice = self.cleaned_data.get(f"col_{index}")
            if not choice:
                continue
            target, _, detail = choice.partition(":")
            spec = {"to": target}
            if target == "attribute":
                spec["type"] = detail
                spec["name"] = self.cleaned_data.get(f"name_{index}", "").strip()
            elif target in ("channel", "message_type"):
                spec["id"] = int(detail)
            mapping[column] = spec
        return mapping
