"""Project-wide guards."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit as exc:
        pytest.fail(f"Models changed without a migration:\n{out.getvalue()} (exit {exc.code})")


def test_lower_apps_never_import_higher_ones():
    import pathlib

    order = ["contacts", "subscriptions", "messaging", "journeys"]
    root = pathlib.Path(__file__).resolve().parent.parent
    offences = []
    for level, app in enumerate(order):
        for path in (root / app).rglob("*.py"):
            text = path.read_text()
            for higher in order[level + 1 :]:
                if f"from {higher}" in text or f"import {higher}" in text:
                    offences.append(f"{path.relative_to(root)} imports {higher}")
    assert offences == []
