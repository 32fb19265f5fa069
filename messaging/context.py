"""The data a message template sees, built in one place for sends, previews and tests.

A template sees the contact's attributes (at top level, Iterable style, and
under `contact` with the standard fields), the triggering event under
`event`, and its links under `links` (with Iterable's names as aliases).
Every call builds fresh dicts from JSON-like data, so whatever a template
does to what it sees reaches neither the contact nor a later message.
"""

from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import quote

from django.conf import settings

from messaging import tracking
from messaging.rendering import contact_context, template_data
from subscriptions.tokens import preferences_url, unsubscribe_token, unsubscribe_url


@dataclass(frozen=True)
class MessageLinks:
    """The links one message carries.

    `one_click` and `mailto` are the List-Unsubscribe targets; a
    transactional message has neither (it offers the preference center only).
    """

    unsubscribe: str
    preferences: str
    view_in_browser: str
    one_click: str = ""
    mailto: str = ""
    # Tracking: the message the links belong to, and what its type tracks.
    message_id: int | None = None
    track_opens: bool = False
    track_clicks: bool = False

    def as_context(self) -> dict:
        return {
            "unsubscribe": self.unsubscribe,
            "preferences": self.preferences,
            "view_in_browser": self.view_in_browser,
        }

    @property
    def untracked(self) -> tuple:
        """Links click tracking leaves alone: they must work wherever the mail is read."""
        return (self.unsubscribe, self.preferences, self.view_in_browser)


def unsubscribe_mailto(token: str) -> str:
    address = settings.WAYMARK_UNSUBSCRIBE_MAILTO
    if not address:
        domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
        address = f"unsubscribe@{domain}"
    return f"mailto:{address}?subject={quote('unsubscribe ' + token)}"


def message_links(*, contact, message_type, message_id) -> MessageLinks:
    """The real links of a message to a saved contact."""
    preferences = preferences_url(contact)
    tracked = {
        "view_in_browser": tracking.view_url(message_id),
        "message_id": message_id,
        "track_opens": message_type.track_opens,
        "track_clicks": message_type.track_clicks,
    }
    if message_type.channel.is_transactional:
        return MessageLinks(unsubscribe=preferences, preferences=preferences, **tracked)
    one_click = unsubscribe_url(contact, message_type)
    return MessageLinks(
        unsubscribe=one_click,
        preferences=preferences,
        one_click=one_click,
        mailto=unsubscribe_mailto(unsubscribe_token(contact, message_type)),
        **tracked,
    )


def placeholder_links() -> MessageLinks:
    """Links for previews and test sends: they show where the links go, and act on no one."""
    base = f"{settings.SITE_URL}/example"
    return MessageLinks(
        unsubscribe=f"{base}/unsubscribe/",
        preferences=f"{base}/preferences/",
        view_in_browser=f"{base}/view/",
    )


def message_context(*, contact, event=None, data=None, links: MessageLinks | None = None) -> dict:
    """The context to render a template with for `contact`.

    `data` is the dataFields of a send asked for through the API: as in
    Iterable, they override the contact's attributes at top level. With no
    triggering event they also stand in for it, so a journey's template that
    reads `{{ event.x }}` renders the same when the API sends it.
    """
    links = links or placeholder_links()
    context = dict(contact_context(contact))
    if data:
        context.update({key: value for key, value in data.items() if key != "contact"})
    context["event"] = dict(event if event is not None else (data or {}))
    context["links"] = links.as_context()
    # Iterable's names for the same links, so imported templates keep working.
    context["unsubscribeUrl"] = links.unsubscribe
    context["hostedUnsubscribeUrl"] = links.preferences
    context["viewInBrowserUrl"] = links.view_in_browser
    # One read-only copy, made once: every field the message renders shares it,
    # and nothing a template does reaches the contact, the event or the next message.
    return template_data(context)


# What each name message_context offers means, for the reference beside the
# template editor. The names themselves are read from message_context (see
# template_variable_reference), so a name added there and not here shows up
# without a meaning, and the test of the reference fails.
VARIABLE_MEANINGS = {
    "contact.email": "The contact's email address.",
    "contact.user_id": "The contact's user id in your product.",
    "contact.phone": "The contact's phone number (E.164).",
    "contact.first_name": "The firstName (or first_name) attribute.",
    "contact.last_name": "The lastName (or last_name) attribute.",
    "contact.locale": "The contact's locale, e.g. fr_FR.",
    "contact.timezone": "The contact's time zone, e.g. Europe/Paris.",
    "contact.<attribute>": "Any attribute of the contact, e.g. contact.plan.",
    "<attribute>": "The same attributes at top level, Iterable style: firstName, plan.",
    "event.<field>": "A field of the event that started the journey (or of the API send's "
    "dataFields), e.g. event.plan.",
    "links.unsubscribe": "One-click unsubscribe link for this message type (the preference "
    "center, for a transactional message).",
    "links.preferences": "The contact's preference center.",
    "links.view_in_browser": "This message as a web page.",
    "unsubscribeUrl": "The same as links.unsubscribe (Iterable's name).",
    "hostedUnsubscribeUrl": "The same as links.preferences (Iterable's name).",
    "viewInBrowserUrl": "The same as links.view_in_browser (Iterable's name).",
}


def template_variable_reference() -> list[tuple[str, str]]:
    """(name, meaning) for every variable a template can use, in the order
    message_context builds them: read from the context it builds for a
    contact with no attributes and an empty event, so the reference lists
    what templates really see. Names that stand for any attribute or event
    field are written <attribute> and <field>."""
    from contacts.models import Contact

    context = message_context(contact=Contact(email="", attributes={}), event={})
    names = []
    for name, value in context.items():
        if name == "contact":
            names += [f"contact.{field}" for field in value] + ["contact.<attribute>"]
            names.append("<attribute>")  # the attributes, at top level
        elif name == "event":
            names.append("event.<field>")
        elif isinstance(value, dict):
            names += [f"{name}.{key}" for key in value]
        else:
            names.append(name)
    return [(name, VARIABLE_MEANINGS.get(name, "")) for name in names]
