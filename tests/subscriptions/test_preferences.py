"""The preference center: GET shows every message type by channel with the
contact's choices; POST (with CSRF) saves only what the subscriber changed."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from subscriptions.models import Channel, ConsentRecord, MessageType, Subscription
from subscriptions.services import contact_consent_skip_reason
from subscriptions.tokens import preferences_token
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    MessageTypeFactory,
    SubscriptionFactory,
)
from tests.subscriptions.pages import Tab

pytestmark = pytest.mark.django_db

BROWSER = {"HTTP_USER_AGENT": "Mozilla/5.0 (Phone)", "REMOTE_ADDR": "203.0.113.5"}


@pytest.fixture
def browser():
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def ada():
    return ContactFactory(email="ada@example.com")


@pytest.fixture
def email():
    return ChannelFactory(name="Email", description="Messages to your inbox.")


@pytest.fixture
def newsletter(email):
    return MessageTypeFactory(channel=email, name="Newsletter", description="News, monthly.")


@pytest.fixture
def offers(email):
    return MessageTypeFactory(channel=email, name="Offers", policy=MessageType.Policy.OPT_IN)


@pytest.fixture
def digest(email):
    return MessageTypeFactory(
        channel=email, name="Weekly digest", policy=MessageType.Policy.DOUBLE_OPT_IN
    )


@pytest.fixture
def receipts():
    channel = ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
    return MessageTypeFactory(channel=channel, name="Order receipts")


def path_for(contact):
    return f"/preferences/{preferences_token(contact)}/"


def status_of(contact, scope):
    key = "channel" if isinstance(scope, Channel) else "message_type"
    return (
        Subscription.objects.filter(contact=contact, **{key: scope})
        .values_list("status", flat=True)
        .first()
    )


def test_the_page_shows_every_message_type_by_channel_with_its_state(
    browser, ada, newsletter, offers, digest, receipts
):
    SubscriptionFactory(contact=ada, message_type=digest, status="pending")
    # Another contact's choices never show on Ada's page.
    SubscriptionFactory(contact=ContactFactory(), message_type=newsletter, status="unsubscribed")

    tab = Tab(browser, path_for(ada))

    assert "<legend>Email</legend>" in tab.html
    assert "Messages to your inbox." in tab.html and "News, monthly." in tab.html
    assert tab.checked("Newsletter")  # opt-out: received until unsubscribed
    assert not tab.checked("Offers")  # opt-in, never subscribed
    assert tab.checked("Weekly digest")  # asked for, awaiting confirmation
    assert not tab.checked("Unsubscribe from everything on Email")
    labels = {label.split(" ", 1)[0]: label for label in tab.labels}
    assert "Sent unless you unsubscribe. Subscribed" in labels["Newsletter"]
    assert "Sent only if you subscribe. Not subscribed" in labels["Offers"]
    assert "Awaiting confirmation: check your inbox" in labels["Weekly"]
    assert "Sent once you subscribe and confirm by email." in labels["Weekly"]
    # Transactional types: listed as always sent, with no box to untick.
    assert "Always sent" in tab.html and "Order receipts" in tab.html
    assert not any(label.startswith("Order receipts") for label in tab.labels)
    assert "ada@example.com" in tab.html


def test_get_changes_nothing(browser, ada, newsletter, digest):
    browser.get(path_for(ada))
    browser.head(path_for(ada))

    assert not Subscription.objects.exists()
    assert not ConsentRecord.objects.exists()


def test_saving_records_only_what_changed_with_time_ip_and_user_agent(
    browser, ada, newsletter, offers, digest
):
    tab = Tab(browser, path_for(ada))
    tab.untick("Newsletter")
    tab.tick("Offers")

    response = tab.save(**BROWSER)

    assert response.status_code == 303
    assert response["Location"] == f"{path_for(ada)}?saved=1"
    assert status_of(ada, newsletter) == "unsubscribed"
    assert status_of(ada, offers) == "subscribed"
    assert status_of(ada, digest) is None  # untouched: no row, no record
    records = ConsentRecord.objects.order_by("id")
    assert [(r.message_type, r.action) for r in records] == [
        (newsletter, "unsubscribed"),
        (offers, "subscribed"),
    ]
    assert {(r.source, r.ip_address, r.user_agent) for r in records} == {
        ("preference_center", "203.0.113.5", "Mozilla/5.0 (Phone)")
    }
    assert all(r.created_at for r in records)
    reloaded = Tab(browser, response["Location"])
    assert "Your choices are saved." in reloaded.html
    assert not reloaded.checked("Newsletter") and reloaded.checked("Offers")


def test_a_post_without_csrf_token_is_refused(browser, ada, newsletter):
    tab = Tab(browser, path_for(ada))
    tab.untick("Newsletter")
    data = tab.data()
    del data["csrfmiddlewaretoken"]

    response = browser.post(path_for(ada), data)

    assert response.status_code == 403
    assert not Subscription.objects.exists()


def test_subscribing_to_a_double_opt_in_type_awaits_confirmation(browser, ada, digest):
    tab = Tab(browser, path_for(ada))
    tab.tick("Weekly digest")

    response = tab.save()

    assert response["Location"].endswith("?pending=1")
    assert status_of(ada, digest) == "pending"
    assert ConsentRecord.objects.get().action == "confirmation_requested"
    assert contact_consent_skip_reason(contact=ada, message_type=digest) == "not_confirmed"
    page = Tab(browser, response["Location"])
    assert "Check your inbox" in page.html
    assert page.checked("Weekly digest")


def test_a_form_posted_twice_saves_once(browser, ada, newsletter, offers, digest):
    tab = Tab(browser, path_for(ada))
    tab.untick("Newsletter")
    tab.tick("Offers")
    tab.tick("Weekly digest")

    first = tab.save()
    second = tab.save()  # the same form again: a double click, a resubmit

    assert first.status_code == second.status_code == 303
    assert (status_of(ada, newsletter), status_of(ada, offers), status_of(ada, digest)) == (
        "unsubscribed",
        "subscribed",
        "pending",
    )
    assert ConsentRecord.objects.count() == 3


def test_two_tabs_changing_different_things_both_count(browser, ada, newsletter, offers):
    first_tab = Tab(browser, path_for(ada))
    second_tab = Tab(browser, path_for(ada))  # opened before the first one saves

    first_tab.untick("Newsletter")
    first_tab.save()
    second_tab.tick("Offers")  # still shows Newsletter ticked, as it was
    second_tab.save()

    assert status_of(ada, newsletter) == "unsubscribed"  # not undone by the stale tab
    assert status_of(ada, offers) == "subscribed"
    assert ConsentRecord.objects.count() == 2


def test_between_tabs_the_last_choice_for_a_field_wins(browser, ada, newsletter):
    early = Tab(browser, path_for(ada))
    early.untick("Newsletter")
    early.save()
    later = Tab(browser, path_for(ada))
    later.tick("Newsletter")
    later.save()

    early.save()  # the first tab saves its choice again, last

    assert status_of(ada, newsletter) == "unsubscribed"
    assert list(ConsentRecord.objects.order_by("id").values_list("action", flat=True)) == [
        "unsubscribed",
        "subscribed",
        "unsubscribed",
    ]


def test_the_channel_box_unsubscribes_from_everything_on_it_and_unticking_lifts_it(
    browser, ada, newsletter, offers
):
    tab = Tab(browser, path_for(ada))
    tab.tick("Unsubscribe from everything on Email")
    tab.save()

    assert status_of(ada, newsletter.channel) == "unsubscribed"
    assert status_of(ada, newsletter) is None  # its own choice is kept as it was
    assert contact_consent_skip_reason(contact=ada, message_type=newsletter) == (
        "channel_unsubscribed"
    )
    tab = Tab(browser, path_for(ada))
    assert tab.checked("Unsubscribe from everything on Email")
    assert "You receive nothing on this channel now" in tab.html

    tab.untick("Unsubscribe from everything on Email")
    tab.save()

    assert status_of(ada, newsletter.channel) == "subscribed"
    assert contact_consent_skip_reason(contact=ada, message_type=newsletter) is None
    assert [r.action for r in ConsentRecord.objects.order_by("id")] == [
        "unsubscribed",
        "subscribed",
    ]


def test_unsubscribe_from_all_marketing_leaves_every_marketing_channel(
    browser, ada, newsletter, receipts
):
    sms = MessageTypeFactory(channel=ChannelFactory(name="SMS", medium="sms"), name="Alerts")
    tab = Tab(browser, path_for(ada))
    (unsubscribe_all,) = tab.other_forms
    token = next(i["value"] for i in unsubscribe_all["inputs"] if i["name"].startswith("csrf"))

    response = browser.post(unsubscribe_all["action"], {"csrfmiddlewaretoken": token}, **BROWSER)
    again = browser.post(unsubscribe_all["action"], {"csrfmiddlewaretoken": token})

    assert response.status_code == again.status_code == 303
    assert status_of(ada, newsletter.channel) == status_of(ada, sms.channel) == "unsubscribed"
    assert status_of(ada, receipts.channel) is None  # transactional: always sent
    assert contact_consent_skip_reason(contact=ada, message_type=receipts) is None
    assert ConsentRecord.objects.filter(source="preference_center").count() == 2
    page = Tab(browser, response["Location"])
    assert "You are unsubscribed from all marketing messages." in page.html
    assert page.checked("Unsubscribe from everything on Email")
    assert page.checked("Unsubscribe from everything on SMS")


def test_unsubscribe_from_all_needs_a_csrf_post(browser, ada, newsletter):
    path = f"{path_for(ada)}unsubscribe-all/"

    assert browser.get(path).status_code == 405
    assert browser.post(path).status_code == 403
    assert not Subscription.objects.exists()


def test_fields_for_what_the_page_does_not_offer_are_ignored_and_the_rest_is_saved(
    browser, ada, newsletter, receipts
):
    tab = Tab(browser, path_for(ada))
    tab.untick("Newsletter")
    data = tab.data()
    # A transactional type, a type that does not exist, a channel that does
    # not exist, and a name that is no field: as if changed on the page.
    data.update(
        {
            f"initial-type_{receipts.pk}": "True",
            "initial-type_999999": "True",
            "channel_999999_unsubscribed": "on",
            "type_x": "on",
        }
    )

    response = browser.post(path_for(ada), data)

    assert response.status_code == 303
    assert status_of(ada, newsletter) == "unsubscribed"
    assert not Subscription.objects.exclude(message_type=newsletter).exists()


def test_a_bare_post_changes_nothing(browser, ada, newsletter):
    tab = Tab(browser, path_for(ada))

    response = browser.post(
        path_for(ada), {"csrfmiddlewaretoken": tab.hidden["csrfmiddlewaretoken"]}
    )

    assert response.status_code == 303
    assert not ConsentRecord.objects.exists()


@pytest.mark.parametrize(
    "mangle",
    [lambda t: t[:-1], lambda t: t[: len(t) // 2], lambda t: "x" + t],
    ids=["truncated", "halved", "prefixed"],
)
def test_a_tampered_link_gets_404_and_changes_nothing(browser, ada, newsletter, mangle):
    tab = Tab(browser, path_for(ada))
    tab.untick("Newsletter")
    bad = f"/preferences/{mangle(preferences_token(ada))}/"

    shown = browser.get(bad)
    posted = browser.post(bad, tab.data())
    all_off = browser.post(f"{bad}unsubscribe-all/", tab.data())

    assert shown.status_code == posted.status_code == all_off.status_code == 404
    assert "This link is not valid" in shown.content.decode()
    assert not Subscription.objects.exists()


def test_a_link_only_reaches_its_own_contact(browser, ada, newsletter):
    bob = ContactFactory(email="bob@example.com")
    tab = Tab(browser, path_for(ada))
    tab.untick("Newsletter")

    # Ada's form, posted to Bob's link, changes Bob only; Ada's page shows none of Bob.
    browser.post(path_for(bob), tab.data())

    assert status_of(bob, newsletter) == "unsubscribed"
    assert status_of(ada, newsletter) is None
    assert "bob@example.com" not in Tab(browser, path_for(ada)).html


def test_a_link_of_another_purpose_or_to_a_forgotten_contact_gets_404(browser, newsletter):
    from subscriptions.tokens import unsubscribe_token

    bob = ContactFactory()
    bobs_unsubscribe = unsubscribe_token(bob, newsletter)
    forgotten = path_for(bob)
    bob.delete()
    ada = ContactFactory()

    assert browser.get(f"/preferences/{unsubscribe_token(ada, newsletter)}/").status_code == 404
    assert browser.get(f"/preferences/{bobs_unsubscribe}/").status_code == 404
    assert browser.get(forgotten).status_code == 404


def test_an_expired_confirmation_is_shown_and_ticking_it_asks_again(browser, ada, digest, settings):
    settings.WAYMARK_CONFIRMATION_MAX_AGE = timedelta(days=7)
    with time_machine.travel("2025-03-01 12:00Z"):
        tab = Tab(browser, path_for(ada))
        tab.tick("Weekly digest")
        tab.save()

    with time_machine.travel("2025-03-20 12:00Z"):
        tab = Tab(browser, path_for(ada))
        assert not tab.checked("Weekly digest")
        assert "Confirmation link expired" in tab.html
        tab.tick("Weekly digest")
        tab.save()
        tab.save()  # twice: still one new request

        assert Tab(browser, path_for(ada)).checked("Weekly digest")
    records = ConsentRecord.objects.order_by("id")
    assert [r.action for r in records] == ["confirmation_requested", "confirmation_requested"]
    assert status_of(ada, digest) == "pending"


def test_names_and_descriptions_staff_wrote_are_escaped(browser, ada, email):
    MessageTypeFactory(
        channel=email, name="<b>Bold</b> news", description='<img src=x onerror="alert(1)">'
    )

    html = browser.get(path_for(ada)).content.decode()

    assert "<b>Bold</b>" not in html and "&lt;b&gt;Bold&lt;/b&gt; news" in html
    assert "<img src=x" not in html


def test_the_page_carries_the_sites_name_and_logo(browser, ada, newsletter, settings):
    settings.WAYMARK_SITE_NAME = "Acme & Co"
    settings.WAYMARK_LOGO_URL = "https://cdn.acme.test/logo.png"

    response = browser.get(path_for(ada))

    html = response.content.decode()
    assert '<img class="logo" src="https://cdn.acme.test/logo.png" alt="Acme &amp; Co">' in html
    assert "· Acme &amp; Co</title>" in html
    assert "img-src 'self' https://cdn.acme.test;" in response["Content-Security-Policy"]


def test_without_a_logo_the_page_shows_the_name(browser, ada, newsletter):
    html = browser.get(path_for(ada)).content.decode()

    assert '<span class="name">Waymark</span>' in html
    assert "<img" not in html


def test_the_page_is_neither_cached_nor_framed_nor_indexed(browser, ada, newsletter):
    response = browser.get(path_for(ada))

    assert "no-store" in response["Cache-Control"]
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "form-action 'self'" in response["Content-Security-Policy"]
    assert response["Referrer-Policy"] == "same-origin"
    assert '<meta name="viewport"' in response.content.decode()


def _queries_for_page(client, contact):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path_for(contact))
    assert response.status_code == 200
    return len(queries)


def test_the_page_costs_the_same_queries_for_n_and_2n_message_types(browser, ada):
    receipts = ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
    SubscriptionFactory(
        contact=ada,
        channel=ChannelFactory(name="Channel 0"),
        message_type=None,
        status="unsubscribed",
    )

    def add_types(count):
        for n in range(count):
            channel = ChannelFactory(name=f"Channel {n % 3}")
            message_type = MessageTypeFactory(channel=channel, policy="double_opt_in")
            SubscriptionFactory(contact=ada, message_type=message_type, status="pending")
            MessageTypeFactory(channel=receipts)

    add_types(5)
    n = _queries_for_page(browser, ada)
    add_types(5)
    two_n = _queries_for_page(browser, ada)

    assert MessageType.objects.count() == 20
    assert n == two_n


@pytest.mark.parametrize("locale", ["fr", "fr-FR", "fr_CA"])
def test_the_page_speaks_the_contacts_language(browser, newsletter, locale):
    pierre = ContactFactory(email="pierre@example.com", locale=locale)

    html = browser.get(path_for(pierre), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<html lang="fr">' in html
    assert "Enregistrer mes choix" in html
    assert "Me désabonner de tout sur Email" in html
    assert "Save my choices" not in html


def test_a_language_the_pages_do_not_speak_falls_back_to_the_browsers(browser, newsletter):
    hans = ContactFactory(locale="de")

    german_browser = browser.get(path_for(hans), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    french_browser = browser.get(path_for(hans), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert '<html lang="en">' in german_browser and "Save my choices" in german_browser
    assert "Enregistrer mes choix" in french_browser


def test_a_bad_link_is_explained_in_the_browsers_language(browser):
    response = browser.get("/preferences/not-a-token/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9")

    assert response.status_code == 404
    assert "Ce lien n\u2019est pas valide" in response.content.decode()


def test_a_logo_url_that_is_no_web_address_stops_waymark_at_start():
    import os
    import subprocess
    import sys

    env = {**os.environ, "DEBUG": "true", "WAYMARK_LOGO_URL": "javascript:alert(1)"}
    started = subprocess.run(
        [sys.executable, "-c", "import config.settings"], env=env, capture_output=True, text=True
    )

    assert started.returncode != 0
    assert "WAYMARK_LOGO_URL must be an http(s) URL or a path" in started.stderr


def test_the_save_service_refuses_a_transactional_choice_and_saves_nothing(
    ada, newsletter, receipts
):
    from subscriptions.services import ConsentError, PreferenceChoice, preferences_save

    with pytest.raises(ConsentError, match="transactional"):
        preferences_save(
            contact=ada,
            choices=[
                PreferenceChoice(newsletter, receive=False),
                PreferenceChoice(receipts, receive=False),
            ],
        )

    assert not Subscription.objects.exists()
    assert not ConsentRecord.objects.exists()
