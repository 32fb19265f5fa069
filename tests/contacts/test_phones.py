"""Phone numbers are kept in E.164 form; a number that cannot exist is a clear error."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, normalise_phone
from tests.factories import ContactFactory


@pytest.mark.parametrize(
    ("typed", "region", "stored"),
    [
        ("+14155550123", "", "+14155550123"),
        ("+1 (415) 555-0123", "", "+14155550123"),
        ("  +44 20 7946 0958 ", "", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("(415) 555-0123", "us", "+14155550123"),
        # A number with its country code ignores the default region.
        ("+33 6 12 34 56 78", "GB", "+33612345678"),
    ],
)
def test_numbers_are_normalised_to_e164(typed, region, stored):
    assert normalise_phone(typed, region=region) == stored


@pytest.mark.parametrize("typed", ["12345", "+999", "+1 415", "call me", "+44 20 7946 09581234"])
def test_a_number_that_cannot_exist_is_refused_with_the_number_in_the_message(typed):
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalise_phone(typed, region="GB")

    assert f"“{typed}” is not a valid phone number." in str(caught.value)


def test_without_a_default_region_a_local_number_is_asked_for_its_country_code(settings):
    settings.WAYMARK_DEFAULT_PHONE_REGION = ""

    with pytest.raises(InvalidPhoneNumber) as caught:
        normalise_phone("020 7946 0958")

    assert "with its country code" in str(caught.value)


def test_the_default_region_comes_from_settings(settings):
    settings.WAYMARK_DEFAULT_PHONE_REGION = "GB"

    assert normalise_phone("020 7946 0958") == "+442079460958"


@pytest.mark.django_db
def test_cleaning_a_contact_stores_its_phone_in_e164_form():
    contact = Contact(email="ada@example.com", phone="+1 (415) 555-0123")

    contact.full_clean()

    assert contact.phone == "+14155550123"


@pytest.mark.django_db
def test_an_invalid_phone_is_an_error_on_the_phone_field():
    contact = Contact(email="ada@example.com", phone="555-not-a-number")

    with pytest.raises(ValidationError) as caught:
        contact.full_clean()

    assert caught.value.message_dict == {
        "phone": [
            "“555-not-a-number” is not a valid phone number. "
            "Write it with its country code, e.g. +14155550123."
        ]
    }


@pytest.mark.django_db
def test_a_contact_without_email_or_user_id_and_a_bad_phone_hears_of_both():
    contact = Contact(phone="12")

    with pytest.raises(ValidationError) as caught:
        contact.full_clean()

    errors = caught.value.message_dict
    assert "A contact needs an email address or a user id." in errors["__all__"]
    assert "is not a valid phone number" in errors["phone"][0]


def _contact_form(**fields):
    return {
        "email": "ada@example.com",
        "user_id": "",
        "phone": "",
        "timezone": "",
        "locale": "",
        "attributes": "{}",
        "listmembership_set-TOTAL_FORMS": "0",
        "listmembership_set-INITIAL_FORMS": "0",
        "subscriptions-TOTAL_FORMS": "0",
        "subscriptions-INITIAL_FORMS": "0",
        **fields,
    }


@pytest.mark.django_db
def test_the_contact_form_shows_an_invalid_phone_and_saves_nothing(admin_client):
    contact = ContactFactory(email="ada@example.com", phone="+14155550123")

    response = admin_client.post(
        reverse("admin:contacts_contact_change", args=[contact.pk]),
        _contact_form(phone="0800 <b>not</b> a number"),
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "is not a valid phone number" in page
    # What the staff member typed comes back escaped.
    assert "<b>not</b>" not in page
    contact.refresh_from_db()
    assert contact.phone == "+14155550123"


@pytest.mark.django_db
def test_the_contact_form_stores_a_typed_number_in_e164_form(admin_client, settings):
    settings.WAYMARK_DEFAULT_PHONE_REGION = "GB"
    contact = ContactFactory(email="ada@example.com")

    response = admin_client.post(
        reverse("admin:contacts_contact_change", args=[contact.pk]),
        _contact_form(phone="020 7946 0958"),
    )

    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.phone == "+442079460958"


@pytest.mark.django_db
def test_contact_search_finds_a_phone_typed_with_spaces(admin_client):
    ContactFactory(email="ada@example.com", phone="+14155550123")
    ContactFactory(email="grace@example.com", phone="+14155550199")

    response = admin_client.get(
        reverse("admin:contacts_contact_changelist"), {"q": "+1 415 555 0123"}
    )

    assert list(response.context["cl"].result_list.values_list("email", flat=True)) == [
        "ada@example.com"
    ]
