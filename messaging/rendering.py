"""Render message templates with the restricted engine.

The engine has no loaders and only messaging.template_library, and the
context holds plain JSON-like data (never model instances), so a template
can read the contact's fields, the triggering event and the links it is
given, and nothing else: not settings, not the environment, not files.
"""

import functools
import re
from html.parser import HTMLParser

import bleach
from bleach.css_sanitizer import CSSSanitizer
from django.template import Context, Engine, TemplateSyntaxError


class RestrictedEngine(Engine):
    default_builtins = ["messaging.template_library"]


ENGINE = RestrictedEngine(loaders=[], libraries={}, string_if_invalid="", autoescape=True)


class TemplateSyntaxProblem(ValueError):
    pass


class RenderError(ValueError):
    pass


def check_syntax(source: str) -> None:
    try:
        ENGINE.from_string(source or "")
    except TemplateSyntaxError as exc:
        raise TemplateSyntaxProblem(f"Template error: {exc}") from exc


@functools.lru_cache(maxsize=256)
def _compiled(source: str):
    # A batch renders the same few templates thousands of times; compiling is
    # most of the cost. Compiled templates hold no per-render state.
    return ENGINE.from_string(source)


def render_string(source: str, context: dict, *, html: bool) -> str:
    if not source:
        return ""
    try:
        rendered = _compiled(source).render(Context(context, autoescape=html))
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


# --- HTML sanitizing -----------------------------------------------------------

ALLOWED_HTML_TAGS = {
    "a", "abbr", "b", "blockquote", "body", "br", "center", "code", "div", "em", "font",
    "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "html", "i", "img", "li", "ol", "p",
    "pre", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "title", "tr", "u", "ul",
}  # fmt: skip
_COMMON_ATTRIBUTES = [
    "align", "bgcolor", "border", "class", "dir", "height", "id", "lang", "role", "style",
    "title", "valign", "width",
]  # fmt: skip
ALLOWED_HTML_ATTRIBUTES = {
    "*": _COMMON_ATTRIBUTES,
    "a": [*_COMMON_ATTRIBUTES, "href", "name", "target", "rel"],
    "img": [*_COMMON_ATTRIBUTES, "src", "alt"],
    "table": [*_COMMON_ATTRIBUTES, "cellpadding", "cellspacing"],
    "td": [*_COMMON_ATTRIBUTES, "colspan", "rowspan"],
    "th": [*_COMMON_ATTRIBUTES, "colspan", "rowspan"],
    "font": [*_COMMON_ATTRIBUTES, "color", "face", "size"],
}
_CLEANER = bleach.Cleaner(
    tags=ALLOWED_HTML_TAGS,
    attributes=ALLOWED_HTML_ATTRIBUTES,
    protocols={"http", "https", "mailto", "tel"},
    strip=True,
    strip_comments=True,
    css_sanitizer=CSSSanitizer(),
)
_SCRIPT_RE = re.compile(r"<(script|style|iframe|object)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def sanitize_html(html: str) -> str:
    """Keep the markup email clients render; drop scripts, handlers and unsafe URLs."""
    if not html:
        return ""
    return _CLEANER.clean(_SCRIPT_RE.sub("", html))


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
