"""Failed admin logins are limited: guessing passwords stops after a few tries."""

import pytest
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


def log_in(client, username, password):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR="203.0.113.9",
    )


def test_after_five_wrong_passwords_even_the_right_one_is_refused(client, settings):
    user = UserFactory(is_superuser=True)

    wrong = [log_in(client, user.username, "guess").status_code for _ in range(5)]
    locked = log_in(client, user.username, PASSWORD)

    assert wrong == [200] * 4 + [429]
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_right_password_before_the_limit_logs_in_and_starts_the_count_again(client):
    user = UserFactory(is_superuser=True)

    for _ in range(3):
        log_in(client, user.username, "guess")
    success = log_in(client, user.username, PASSWORD)

    assert success.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
