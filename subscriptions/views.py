"""The subscriber's pages: preference center, one-click unsubscribe, double
opt-in confirmation.

Each URL carries a signed token (subscriptions.tokens) that names one
contact; the pages show and change that contact only. Anything wrong with a
token gets the same 404 page and changes nothing. GET never changes anything
(mail scanners fetch links); changes are POSTs that go through services.
Redirects only ever go to this site's own pages, built here.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from contacts.models import Contact
from subscriptions import tokens
from subscriptions.forms import PreferencesForm
from subscriptions.models import MessageType, Subscription
from subscriptions.selectors import preference_center
from subscriptions.services import (
    double_opt_in_confirm,
    preferences_save,
    preferences_unsubscribe_all,
    unsubscribe_one_click,
)

Status = Subscription.Status

# RFC 8058: the body a mail client POSTs for a one-click unsubscribe.
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"


def _language(request, contact=None) -> str:
    """The contact's own language when the pages speak it, else the browser's."""
    if contact is not None and contact.locale:
        try:
            return translation.get_supported_language_variant(
                translation.to_language(contact.locale)
            )
        except LookupError:
            pass
    return translation.get_language_from_request(request)


def _content_security_policy() -> str:
    images = "'self'"
    if settings.WAYMARK_LOGO_URL.startswith(("https://", "http://")):
        logo = urlsplit(settings.WAYMARK_LOGO_URL)
        images += f" {logo.scheme}://{logo.netloc}"
    # No script at all; the one <style> block of the base template.
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src {images}; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def _page(request, template, context=None, *, status=200, contact=None):
    """Render a subscriber page in the contact's language, with the site's
    name and logo, and the headers every one of these pages carries."""
    with translation.override(_language(request, contact)):
        response = render(
            request,
            f"subscriptions/{template}",
            {
                "site_name": settings.WAYMARK_SITE_NAME,
                "logo_url": settings.WAYMARK_LOGO_URL,
                **(context or {}),
            },
            status=status,
        )
    # Personal pages behind secret URLs: kept out of caches, search engines
    # and other sites' Referer headers. Not "no-referrer": browsers then send
    # "Origin: null" with the page's own form posts, which CSRF refuses.
    add_never_cache_headers(response)
    response["Content-Security-Policy"] = _content_security_policy()
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _invalid(request, *, contact=None, expired=False):
    context = {"expired": expired}
    if contact is not None:
        context["preferences_path"] = _preferences_path(contact)
    return _page(request, "invalid_link.html", context, status=404, contact=contact)


def _preferences_path(contact) -> str:
    return reverse("subscriptions:preferences", args=[tokens.preferences_token(contact)])


def _client(request) -> dict:
    """Where a change came from, for the consent ledger."""
    return {
        "ip_address": request.META.get("REMOTE_ADDR") or None,
        "user_agent": request.headers.get("User-Agent", ""),
    }


def _contact(contact_id):
    return Contact.objects.filter(pk=contact_id).first()


# --- Preference center ---------------------------------------------------------


def _preferences_contact(token):
    """The contact a preferences token names, or None (bad token, forgotten contact)."""
    try:
        return _contact(tokens.contact_id_from_preferences_token(token))
    except tokens.BadToken:
        return None


@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request, token):
    contact = _preferences_contact(token)
    if contact is None:
        return _invalid(request)

    center = preference_center(contact=contact)
    form = PreferencesForm(center, request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        # The form offers marketing channels and types only, as they are now,
        # so preferences_save has nothing transactional to refuse.
        saved = preferences_save(contact=contact, choices=form.choices(), **_client(request))
        outcome = "pending" if saved.awaiting_confirmation else "saved"
        return HttpResponseRedirect(f"{_preferences_path(contact)}?{outcome}=1", status=303)
    return _page(
        request,
        "preferences.html",
        {
            "contact": contact,
            "form": form,
            "always_sent": center.always_sent,
            "saved": "saved" in request.GET or "pending" in request.GET,
            "pending": "pending" in request.GET,
            "unsubscribed_all": "unsubscribed" in request.GET,
            "unsubscribe_all_path": reverse("subscriptions:unsubscribe_all", args=[token]),
        },
        contact=contact,
    )


@require_POST
def unsubscribe_all(request, token):
    """The preference center's "unsubscribe from all marketing" button (CSRF checked)."""
    contact = _preferences_contact(token)
    if contact is None:
        return _invalid(request)
    preferences_unsubscribe_all(contact=contact, **_client(request))
    return HttpResponseRedirect(f"{_preferences_path(contact)}?unsubscribed=1", status=303)


# --- One-click unsubscribe (RFC 8058) ------------------------------------------


def _scope_status(contact, message_type) -> str | None:
    """The stored status of what this link unsubscribes from."""
    if settings.WAYMARK_UNSUBSCRIBE_SCOPE == "channel":
        scope = {"channel_id": message_type.channel_id}
    else:
        scope = {"message_type": message_type}
    return (
        Subscription.objects.filter(contact=contact, **scope)
        .values_list("status", flat=True)
        .first()
    )


# Mail clients POST without cookies or a CSRF token (RFC 8058); only the
# one-click body is accepted, anything else gets a 400 and changes nothing.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    try:
        contact_id, message_type_id = tokens.ids_from_unsubscribe_token(token)
    except tokens.BadToken:
        return _invalid(request)
    contact = _contact(contact_id)
    if contact is None:
        return _invalid(request)
    message_type = MessageType.objects.select_related("channel").filter(pk=message_type_id).first()
    if message_type is None:
        return _invalid(request, contact=contact)

    context = {
        "message_type": message_type,
        "channel": message_type.channel,
        "whole_channel": settings.WAYMARK_UNSUBSCRIBE_SCOPE == "channel",
        "preferences_path": _preferences_path(contact),
    }
    if message_type.channel.is_transactional:
        # Transactional messages offer no unsubscribe: the preference center
        # says what is always sent. A POST is never redirected (RFC 8058).
        if request.method == "POST":
            return _page(request, "always_sent.html", context, status=409, contact=contact)
        return HttpResponseRedirect(context["preferences_path"])

    if request.method == "POST":
        if request.POST.getlist(ONE_CLICK_FIELD) != [ONE_CLICK_VALUE]:
            return _page(request, "bad_request.html", context, status=400, contact=contact)
        unsubscribe_one_click(contact=contact, message_type=message_type, **_client(request))
        return _page(request, "unsubscribed.html", context, contact=contact)

    context["already"] = _scope_status(contact, message_type) == Status.UNSUBSCRIBED
    context["one_click"] = {"name": ONE_CLICK_FIELD, "value": ONE_CLICK_VALUE}
    return _page(request, "unsubscribe.html", context, contact=contact)


# --- Double opt-in confirmation ------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request, token):
    try:
        contact_id, message_type_id = tokens.ids_from_confirmation_token(token)
    except tokens.ExpiredToken as expired:
        return _invalid(request, contact=_contact(expired.contact_id), expired=True)
    except tokens.BadToken:
        return _invalid(request)
    contact = _contact(contact_id)
    if contact is None:
        return _invalid(request)
    message_type = MessageType.objects.select_related("channel").filter(pk=message_type_id).first()
    if message_type is None:
        return _invalid(request, contact=contact)

    context = {"message_type": message_type, "preferences_path": _preferences_path(contact)}
    if request.method == "POST":
        change = double_opt_in_confirm(
            contact=contact, message_type=message_type, **_client(request)
        )
        if change is None:
            return _page(
                request,
                "confirm.html",
                {**context, "state": "withdrawn"},
                status=409,
                contact=contact,
            )
        return _page(
            request, "confirmed.html", {**context, "changed": change.changed}, contact=contact
        )

    status = (
        Subscription.objects.filter(contact=contact, message_type=message_type)
        .values_list("status", flat=True)
        .first()
    )
    state = {Status.PENDING: "pending", Status.SUBSCRIBED: "confirmed"}.get(status, "withdrawn")
    return _page(request, "confirm.html", {**context, "state": state}, contact=contact)
