"""A browser tab for Django's test client: load a subscriber page, tick boxes,
submit its form as a browser would (hidden fields, checked boxes, CSRF token)."""

from html.parser import HTMLParser


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []
        self._form = None
        self._label_for = None
        self.labels = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._form = {"action": attrs.get("action"), "inputs": []}
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None:
            self._form["inputs"].append(attrs)
        elif tag == "label" and "for" in attrs:
            self._label_for = attrs["for"]
            self.labels[self._label_for] = ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "label":
            self._label_for = None

    def handle_data(self, data):
        if self._label_for:
            self.labels[self._label_for] += data


def forms_of(html):
    parser = _Forms()
    parser.feed(html)
    return parser


class Tab:
    """One open tab on the preference center: what it showed when it loaded,
    and what the subscriber ticked since."""

    def __init__(self, client, path):
        self.client = client
        self.path = path
        self.load()

    def load(self):
        response = self.client.get(self.path)
        assert response.status_code == 200, response.status_code
        self.html = response.content.decode()
        parsed = forms_of(self.html)
        self.form, *self.other_forms = parsed.forms
        self.hidden = {
            i["name"]: i.get("value", "") for i in self.form["inputs"] if i["type"] == "hidden"
        }
        self.boxes = {
            i["name"]: "checked" in i for i in self.form["inputs"] if i["type"] == "checkbox"
        }
        ids = {i["id"]: i["name"] for i in self.form["inputs"] if i["type"] == "checkbox"}
        self.labels = {
            " ".join(text.split()): ids[for_id]
            for for_id, text in parsed.labels.items()
            if for_id in ids
        }
        return response

    def box(self, label_start):
        """The checkbox whose label starts with this text."""
        (name,) = [name for label, name in self.labels.items() if label.startswith(label_start)]
        return name

    def checked(self, label_start):
        return self.boxes[self.box(label_start)]

    def tick(self, label_start, value=True):
        self.boxes[self.box(label_start)] = value

    def untick(self, label_start):
        self.tick(label_start, False)

    def data(self):
        return {**self.hidden, **{name: "on" for name, on in self.boxes.items() if on}}

    def save(self, **extra):
        return self.client.post(self.form["action"] or self.path, self.data(), **extra)
