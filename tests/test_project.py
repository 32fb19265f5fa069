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


def test_no_app_imports_the_imports_app():
    """CSV imports sit above contacts and subscriptions (they write both):
    nothing below may depend on them."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    offences = [
        str(path.relative_to(root))
        for app in ("contacts", "subscriptions", "messaging", "journeys")
        for path in (root / app).rglob("*.py")
        if "from imports" in path.read_text() or "import imports" in path.read_text()
    ]
    assert offences == []


def test_waymark_refuses_the_development_secret_key_without_debug():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    refused = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True
    )
    allowed = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={**env, "DEBUG": "true"},
        capture_output=True,
        text=True,
    )

    assert refused.returncode != 0
    assert "SECRET_KEY is not set" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr
