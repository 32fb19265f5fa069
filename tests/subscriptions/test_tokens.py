"""Signed links to the subscriber's pages: they name one contact and serve one purpose."""

from datetime import timedelta

import pytest
import time_machine
from django.core import signing

from subscriptions import tokens
from subscriptions.tokens import BadToken, ExpiredToken
from tests.factories import ContactFactory, MessageTypeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada():
    return ContactFactory(email="ada@example.com")


@pytest.fixture
def newsletter():
    return MessageTypeFactory(name="Newsletter")


def token_of(url, prefix):
    path = url.removeprefix("https://waymark.example")
    assert path.startswith(prefix) and path.endswith("/")
    return path.removeprefix(prefix).removesuffix("/")


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = "https://waymark.example"


def test_each_url_is_absolute_and_its_token_names_the_contact(ada, newsletter):
    preferences = token_of(tokens.preferences_url(ada), "/preferences/")
    unsubscribe = token_of(tokens.unsubscribe_url(ada, newsletter), "/unsubscribe/")
    confirmation = token_of(tokens.confirmation_url(ada, newsletter), "/confirm/")

    assert tokens.contact_id_from_preferences_token(preferences) == ada.pk
    assert tokens.ids_from_unsubscribe_token(unsubscribe) == (ada.pk, newsletter.pk)
    assert tokens.ids_from_confirmation_token(confirmation) == (ada.pk, newsletter.pk)


def test_tokens_are_compact_and_give_away_neither_id_nor_address(ada, newsletter):
    preferences = tokens.preferences_token(ada)
    unsubscribe = tokens.unsubscribe_token(ada, newsletter)

    assert len(preferences) < 60 and len(unsubscribe) < 60
    for token in (preferences, unsubscribe):
        assert "ada" not in token and "example" not in token
        assert token.isascii() and "/" not in token


def test_a_token_cannot_be_made_for_another_contact_from_an_id(ada):
    other = ContactFactory()
    genuine = tokens.preferences_token(ada)
    signature = genuine.rsplit(":", 1)[1]
    # The payload of another contact's id, signed with nothing, or with this
    # contact's signature, is refused.
    forged_payload = signing.b64_encode(f"[{other.pk}]".encode()).decode()

    for forged in (f"{forged_payload}:{signature}", forged_payload, f"{other.pk}:{signature}"):
        with pytest.raises(BadToken):
            tokens.contact_id_from_preferences_token(forged)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated signature
        lambda t: t[: len(t) // 2],  # cut in half
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character changed
        lambda t: "x" + t,
        lambda t: "",
        lambda t: "é" + t,
        lambda t: t.replace(":", ""),
    ],
)
def test_a_tampered_or_truncated_token_is_refused(ada, newsletter, mangle):
    with pytest.raises(BadToken):
        tokens.contact_id_from_preferences_token(mangle(tokens.preferences_token(ada)))
    with pytest.raises(BadToken):
        tokens.ids_from_unsubscribe_token(mangle(tokens.unsubscribe_token(ada, newsletter)))
    with pytest.raises(BadToken):
        tokens.ids_from_confirmation_token(mangle(tokens.confirmation_token(ada, newsletter)))


def test_a_token_serves_only_its_own_purpose(ada, newsletter):
    preferences = tokens.preferences_token(ada)
    unsubscribe = tokens.unsubscribe_token(ada, newsletter)
    confirmation = tokens.confirmation_token(ada, newsletter)

    for token in (unsubscribe, confirmation):
        with pytest.raises(BadToken):
            tokens.contact_id_from_preferences_token(token)
    for token in (preferences, confirmation):
        with pytest.raises(BadToken):
            tokens.ids_from_unsubscribe_token(token)
    for token in (preferences, unsubscribe):
        with pytest.raises(BadToken):
            tokens.ids_from_confirmation_token(token)


def test_a_token_of_another_site_is_refused(ada, newsletter, settings):
    settings.SECRET_KEY = "another-site-entirely-" + "x" * 40
    foreign = (
        tokens.preferences_token(ada),
        tokens.unsubscribe_token(ada, newsletter),
        tokens.confirmation_token(ada, newsletter),
    )
    settings.SECRET_KEY = "this-site-" + "y" * 40

    with pytest.raises(BadToken):
        tokens.contact_id_from_preferences_token(foreign[0])
    with pytest.raises(BadToken):
        tokens.ids_from_unsubscribe_token(foreign[1])
    with pytest.raises(BadToken):
        tokens.ids_from_confirmation_token(foreign[2])


def test_a_token_signed_under_a_retired_key_keeps_working(ada, settings):
    # Old emails must keep working across a key rotation (SECRET_KEY_FALLBACKS).
    settings.SECRET_KEY = "the-old-key-" + "o" * 40
    old = tokens.preferences_token(ada)
    settings.SECRET_KEY = "the-new-key-" + "n" * 40
    settings.SECRET_KEY_FALLBACKS = ["the-old-key-" + "o" * 40]

    assert tokens.contact_id_from_preferences_token(old) == ada.pk


def test_signed_values_that_are_not_ids_are_refused():
    # Authentic signatures over the wrong shape: never trusted as ids.
    for values in (["1"], [True], [1, 2, 3], {"id": 1}, [None]):
        token = signing.Signer(salt=tokens.PREFERENCES_SALT).sign_object(values)
        with pytest.raises(BadToken):
            tokens.contact_id_from_preferences_token(token)


def test_preference_and_unsubscribe_links_never_expire(ada, newsletter):
    with time_machine.travel("2020-01-01 12:00Z"):
        preferences = tokens.preferences_token(ada)
        unsubscribe = tokens.unsubscribe_token(ada, newsletter)

    with time_machine.travel("2030-01-01 12:00Z"):
        assert tokens.contact_id_from_preferences_token(preferences) == ada.pk
        assert tokens.ids_from_unsubscribe_token(unsubscribe) == (ada.pk, newsletter.pk)


def test_a_confirmation_link_expires_after_the_configured_age_but_still_names_its_contact(
    ada, newsletter, settings
):
    settings.WAYMARK_CONFIRMATION_MAX_AGE = timedelta(days=7)
    with time_machine.travel("2025-03-01 12:00Z", tick=False):
        token = tokens.confirmation_token(ada, newsletter)

    with time_machine.travel("2025-03-08 11:59Z", tick=False):
        assert tokens.ids_from_confirmation_token(token) == (ada.pk, newsletter.pk)
    with (
        time_machine.travel("2025-03-08 12:01Z", tick=False),
        pytest.raises(ExpiredToken) as expired,
    ):
        tokens.ids_from_confirmation_token(token)
    assert (expired.value.contact_id, expired.value.message_type_id) == (ada.pk, newsletter.pk)


def test_an_expired_token_that_was_tampered_with_is_only_bad(ada, newsletter):
    with time_machine.travel("2025-03-01 12:00Z", tick=False):
        token = tokens.confirmation_token(ada, newsletter)

    with time_machine.travel("2025-04-01 12:00Z", tick=False), pytest.raises(BadToken) as raised:
        tokens.ids_from_confirmation_token(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not isinstance(raised.value, ExpiredToken)
