"""Render message templates with the restricted engine.

The engine has no loaders and only messaging.template_library, and the
context holds plain JSON-like data (never model instances), so a template
can read the contact's fields, the triggering event and the links it is
given, and nothing else: not settings, not the environment, not files.
"""

import re
from html.parser import HTMLParser

from django.template import Context, Engine, TemplateSyntaxError

from messaging.sanitizing import plain_text, sanitize_html, sanitize_html_report

__all__ = [
    "RenderError",
    "TemplateSyntaxProblem",
    "check_syntax",
    "contact_context",
    "html_to_text",
    "plain_text",
    "render_string",
    "sanitize_html",
    "sanitize_html_report",
]


class RestrictedEngine(Engine):
    default_builtins = ["messaging.template_library"]


ENGINE = RestrictedEngine(loaders=[], libraries={}, string_if_invalid="", autoescape=True)


class TemplateSyntaxProblem(ValueError):
    """A template that does not compile. `detail` is what is wrong, without the
    "Template error:" the message starts with."""

    def __init__(self, message, detail=""):
        super().__init__(message)
        self.detail = detail or message


class RenderError(ValueError):
    pass


def check_syntax(source: str) -> None:
    try:
        ENGINE.from_string(source or "")
    except TemplateSyntaxError as exc:
        raise TemplateSyntaxProblem(f"Template error: {exc}", detail=str(exc)) from exc


def render_string(source: str, context: dict, *, html: bool) -> str:
    if not source:
        return ""
    try:
        rendered = ENGINE.from_string(source).render(Context(context, autoescape=html))
    except Exception as exc:  # any failure to render is the template's, not the sender's
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc
    # A plain str, not the engine's SafeString: whoever shows a rendered
    # message in a page must escape it, and a SafeString would slip through.
    return str.__str__(rendered)


def contact_context(contact) -> dict:
    """What a template may know about a contact: its attributes at top level
    (Iterable style, `{{ firstName }}`) and the standard fields under `contact`."""
    attributes = dict(contact.attributes or {})
    return {
        **attributes,
        "contact": {
            **attributes,
            "email": contact.email or "",
            "user_id": contact.user_id or "",
            "phone": contact.phone,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "locale": contact.locale,
            "timezone": contact.timezone,
        },
    }


# --- text parts ---------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    BLOCKS = {"p", "div", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "li", "table", "hr"}
    SKIP = {"head", "style", "script", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str | None] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.startswith("mailto:"):
                self.parts.append(f" ({href})")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """A readable plain-text part for an HTML email."""
    if not html:
        return ""
    parser = _TextExtractor()
    parser.feed(html)
    text = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
