"""Open and click tracking: signed URLs, and rewriting a rendered message to use them.

A click URL names a message and the position of a link in that message's
stored `links`, signed; the redirect goes only to that stored URL, so the
redirector cannot be pointed anywhere else (no open redirect). An open URL
names a message, signed. Signatures are salted per purpose.
"""

import html
import re

from django.conf import settings
from django.core import signing

OPEN_SALT = "waymark.messaging.open"
CLICK_SALT = "waymark.messaging.click"
VIEW_SALT = "waymark.messaging.view"

# href="…" / href='…' with an absolute http(s) URL; the rendered HTML comes
# from sanitized templates, so attributes are quoted.
_HREF_RE = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_BODY_END_RE = re.compile(r"</body\s*>", re.IGNORECASE)


class BadTrackingToken(ValueError):
    pass


def _sign(salt, value: str) -> str:
    return signing.Signer(salt=salt).sign(value)


def _unsign(salt, token: str) -> str:
    try:
        return signing.Signer(salt=salt).unsign(token)
    except signing.BadSignature as exc:
        raise BadTrackingToken("This link is not valid.") from exc


def open_url(message_id: int) -> str:
    return f"{settings.SITE_URL}/t/o/{_sign(OPEN_SALT, str(message_id))}.gif"


def click_url(message_id: int, index: int) -> str:
    return f"{settings.SITE_URL}/t/c/{_sign(CLICK_SALT, f'{message_id}.{index}')}/"


def view_url(message_id: int) -> str:
    return f"{settings.SITE_URL}/m/{_sign(VIEW_SALT, str(message_id))}/"


def message_id_from_open_token(token: str) -> int:
    value = _unsign(OPEN_SALT, token)
    if not value.isdigit():
        raise BadTrackingToken("This link is not valid.")
    return int(value)


def message_id_from_view_token(token: str) -> int:
    value = _unsign(VIEW_SALT, token)
    if not value.isdigit():
        raise BadTrackingToken("This link is not valid.")
    return int(value)


def click_from_token(token: str) -> tuple[int, int]:
    """(message id, link index) named by a click token."""
    message_id, _, index = _unsign(CLICK_SALT, token).partition(".")
    if not (message_id.isdigit() and index.isdigit()):
        raise BadTrackingToken("This link is not valid.")
    return int(message_id), int(index)


def track_links(rendered_html: str, message_id: int, *, keep=()) -> tuple[str, list[str]]:
    """Point every http(s) link of `rendered_html` at its click URL.

    Returns the new HTML and the list of original URLs (a link's index in
    it is its click token's index). URLs in `keep` (the unsubscribe and
    preference links, which must work even where redirects are blocked)
    are left as they are.
    """
    links: list[str] = []
    positions: dict[str, int] = {}
    keep = set(keep)

    def rewrite(match):
        prefix, quote, escaped_url = match.groups()
        url = html.unescape(escaped_url)
        if url in keep:
            return match.group(0)
        if url not in positions:
            positions[url] = len(links)
            links.append(url)
        return f"{prefix}{quote}{click_url(message_id, positions[url])}{quote}"

    return _HREF_RE.sub(rewrite, rendered_html), links


def links_in(rendered_html: str, *, keep=()) -> list[str]:
    """The http(s) URLs `rendered_html` links to, in order, once each, but those in `keep`."""
    seen = []
    for match in _HREF_RE.finditer(rendered_html):
        url = html.unescape(match.group(3))
        if url not in seen and url not in keep:
            seen.append(url)
    return seen


def _pixel(message_id: int) -> str:
    return (
        f'<img src="{open_url(message_id)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0">'
    )


def add_open_pixel(rendered_html: str, message_id: int) -> str:
    pixel = _pixel(message_id)
    ends = list(_BODY_END_RE.finditer(rendered_html))
    if not ends:
        return rendered_html + pixel
    at = ends[-1].start()
    return rendered_html[:at] + pixel + rendered_html[at:]


def untracked(rendered_html: str, message_id: int, links) -> str:
    """`rendered_html` as sent, for staff to look at: without its open pixel,
    and its click URLs pointed back at the links they redirect to, so that
    looking records no open and following a link no click."""
    # Whatever SITE_URL was when it was sent.
    pixel = re.compile(
        r'<img src="https?://[^"]*/t/o/'
        + re.escape(_sign(OPEN_SALT, str(message_id)))
        + r'\.gif"[^>]*>'
    )
    html_out = pixel.sub("", rendered_html)
    click = re.compile(r"https?://[^\"'\s<>]*?/t/c/([^/\"'\s<>]+)/")

    def restore(match):
        try:
            clicked, index = click_from_token(match.group(1))
        except BadTrackingToken:
            return match.group(0)
        if clicked != message_id or index >= len(links):
            return match.group(0)
        return html.escape(links[index])

    return click.sub(restore, html_out)
