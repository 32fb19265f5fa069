"""Public pages of messaging: tracking redirects, the open pixel, view in browser.

Each URL carries a signed token (messaging.tracking); anything tampered with
gets a 404 and changes nothing. Clicks only ever redirect to a URL stored
with the message, so the redirector cannot send anyone elsewhere.
"""

import base64

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from messaging import tracking
from messaging.models import Engagement, Message, SentContent
from messaging.rendering import RenderError
from messaging.services import engagement_record, message_render_again

# The smallest transparent GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _details(request):
    return {
        "user_agent": request.headers.get("User-Agent", "")[:512],
        "ip": request.META.get("REMOTE_ADDR", ""),
    }


def _sent_message(message_id):
    message = Message.objects.filter(pk=message_id, status=Message.Status.SENT).first()
    if message is None or message.is_test:
        raise Http404("No such message.")
    return message


@require_safe
@never_cache
def open_pixel(request, token):
    try:
        message_id = tracking.message_id_from_open_token(token)
    except tracking.BadTrackingToken:
        raise Http404("This link is not valid.") from None
    message = _sent_message(message_id)
    engagement_record(
        message=message,
        kind=Engagement.Kind.OPENED,
        source=Engagement.Source.TRACKING,
        details=_details(request),
    )
    return HttpResponse(PIXEL, content_type="image/gif")


@require_safe
@never_cache
def click(request, token):
    try:
        message_id, index = tracking.click_from_token(token)
    except tracking.BadTrackingToken:
        raise Http404("This link is not valid.") from None
    message = _sent_message(message_id)
    if index >= len(message.links):
        raise Http404("This link is not valid.")
    url = message.links[index]
    engagement_record(
        message=message,
        kind=Engagement.Kind.CLICKED,
        source=Engagement.Source.TRACKING,
        url=url,
        details=_details(request),
    )
    return HttpResponseRedirect(url)


@require_safe
def view_in_browser(request, token):
    try:
        message_id = tracking.message_id_from_view_token(token)
    except tracking.BadTrackingToken:
        raise Http404("This link is not valid.") from None
    message = _sent_message(message_id)
    try:
        subject, html, text = _as_sent(message)
    except RenderError:
        raise Http404("This message can no longer be shown.") from None
    # Links open outside the frame, in a tab of their own.
    html = f'<base target="_blank">{html}' if html else ""
    response = render(
        request,
        "messaging/view_in_browser.html",
        {"subject": subject, "html": html, "text": text},
    )
    # The message's own HTML is shown in a sandboxed frame of its own (srcdoc):
    # no script runs, nothing it links to can act on this site.
    response["Content-Security-Policy"] = (
        "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'; "
        "frame-src 'self'; frame-ancestors 'none'"
    )
    return response


def _as_sent(message):
    """(subject, HTML, text) of what the message carried: as kept when it was
    sent (SentContent), else rendered again (sent before content was kept,
    or kept no longer: WAYMARK_SENT_CONTENT_DAYS)."""
    try:
        parts = message.sent_content.parts
    except SentContent.DoesNotExist:
        rendered = message_render_again(message=message)
        return rendered.subject or rendered.title, rendered.html, rendered.text
    return (
        parts.get("subject") or parts.get("title", ""),
        parts.get("html", ""),
        parts.get("text", ""),
    )
