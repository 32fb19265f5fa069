"""Journeys as documents: export, import as a draft, and the round trip."""

import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from journeys.models import ConditionStep, Journey, Step
from journeys.services.exchange import JourneyImportError, journey_export, journey_import
from journeys.services.graph import step_connections
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def export(journey):
    out = io.StringIO()
    call_command("export_journey", journey.name, stdout=out)
    return json.loads(out.getvalue())


def test_export_import_under_another_name_export_gives_the_same_document(welcome_series):
    first = export(welcome_series)

    copy = journey_import(document=first, name="Welcome series (copy)")

    second = export(copy)
    assert second == {**first, "name": "Welcome series (copy)"}
    assert copy.state == Journey.State.DRAFT
    condition = ConditionStep.objects.get(journey=copy)
    connections = step_connections(step=condition)
    assert {label: target.key for label, target in connections.items()} == {
        "yes": "done",
        "no": "nudge",
    }
    assert {target.journey_id for target in connections.values()} == {copy.pk}


def test_the_document_names_steps_by_key_and_templates_by_name(welcome_series):
    document = journey_export(journey=welcome_series)

    assert document["format"] == "waymark.journey/1"
    assert document["triggers"] == [{"type": "event", "event_name": "signed_up"}]
    assert document["audience"] == {}
    assert [step["key"] for step in document["steps"]] == [
        "welcome",
        "wait",
        "created-project",
        "nudge",
        "done",
    ]
    welcome, wait, condition = document["steps"][:3]
    assert welcome == {"key": "welcome", "type": "send_message", "template": "Welcome email"}
    assert wait == {"key": "wait", "type": "delay", "amount": 2, "unit": "days"}
    assert condition["connections"] == {"yes": "done", "no": "nudge"}


def test_export_journey_finds_a_journey_by_id_too(welcome_series):
    out = io.StringIO()
    call_command("export_journey", str(welcome_series.pk), stdout=out)

    assert json.loads(out.getvalue())["name"] == "Welcome series"


def test_export_journey_of_an_unknown_journey_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No journey is named or numbered 'Nope'"):
        call_command("export_journey", "Nope")


def test_import_journey_creates_a_draft_from_a_file(welcome_series, tmp_path):
    path = tmp_path / "welcome.json"
    path.write_text(json.dumps(export(welcome_series)))
    out = io.StringIO()

    call_command("import_journey", str(path), "--name", "Welcome again", stdout=out)

    journey = Journey.objects.get(name="Welcome again")
    assert journey.state == Journey.State.DRAFT
    assert journey.steps.count() == 5
    assert "Imported “Welcome again”" in out.getvalue()


def test_importing_under_a_name_already_taken_is_refused_and_writes_nothing(
    welcome_series, tmp_path
):
    path = tmp_path / "welcome.json"
    path.write_text(json.dumps(export(welcome_series)))
    steps = Step.objects.count()

    with pytest.raises(CommandError, match="A journey named “Welcome series” already exists"):
        call_command("import_journey", str(path))

    assert (Journey.objects.count(), Step.objects.count()) == (1, steps)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["steps"][0].update(template="Gone"), "no template is named 'Gone'"),
        (
            lambda d: d["steps"][2]["connections"].update(yes="nowhere"),
            "its 'yes' connection names 'nowhere', which is not a step of this journey",
        ),
        (lambda d: d["steps"][1].update(type="teleport"), "unknown type 'teleport'"),
        (lambda d: d["steps"][1].update(key="welcome"), "Step keys must be unique: welcome"),
        (lambda d: d["steps"][1].update(amount=-3), "In step 'wait': amount:"),
        (lambda d: d["steps"][1].update(connections={"yes": "done"}), "has no connection 'yes'"),
        (lambda d: d.update(format="other/2"), 'Not a journey document: "format"'),
    ],
)
def test_a_wrong_document_is_refused_with_where_and_why_and_writes_nothing(
    welcome_series, change, message
):
    document = journey_export(journey=welcome_series)
    change(document)
    steps = Step.objects.count()

    with pytest.raises(JourneyImportError, match=message):
        journey_import(document=document, name="Broken")

    assert not Journey.objects.filter(name="Broken").exists()
    assert Step.objects.count() == steps


def test_a_conditions_next_from_an_older_document_fills_the_branch_it_leaves_out(
    welcome_series,
):
    document = journey_export(journey=welcome_series)
    condition = next(step for step in document["steps"] if step["type"] == "condition")
    condition["connections"] = {"next": "nudge", "yes": "done"}

    copy = journey_import(document=document, name="From an older document")

    connections = step_connections(step=ConditionStep.objects.get(journey=copy))
    assert {label: target.key for label, target in connections.items()} == {
        "yes": "done",
        "no": "nudge",
    }


def test_the_admin_exports_a_journey_and_imports_it_back(welcome_series):
    user = UserFactory(is_superuser=False)
    user.groups.add(Group.objects.get(name="Journey drafters"))
    client = Client()
    client.force_login(user)
    changelist = reverse("admin:journeys_journey_changelist")

    download = client.post(
        changelist, {"action": "export_json", "_selected_action": [welcome_series.pk]}
    )
    assert download["Content-Disposition"] == 'attachment; filename="welcome-series.json"'
    upload = SimpleUploadedFile("welcome-series.json", download.content, "application/json")
    imported = client.post(
        reverse("admin:journeys_journey_import"), {"file": upload, "name": "Welcome, imported"}
    )

    journey = Journey.objects.get(name="Welcome, imported")
    assert imported.status_code == 302
    assert imported["Location"] == reverse("admin:journeys_journey_change", args=[journey.pk])
    assert (journey.state, journey.steps.count()) == (Journey.State.DRAFT, 5)


def test_the_admin_import_page_shows_what_is_wrong(welcome_series):
    client = Client()
    client.force_login(UserFactory(is_superuser=True))
    document = journey_export(journey=welcome_series)  # its name is taken
    upload = SimpleUploadedFile("w.json", json.dumps(document).encode(), "application/json")

    page = client.post(reverse("admin:journeys_journey_import"), {"file": upload})

    assert page.status_code == 200
    assert "A journey named “Welcome series” already exists" in page.content.decode()
    assert Journey.objects.count() == 1


def test_a_viewer_may_not_import(db):
    user = UserFactory(is_superuser=False)
    user.groups.add(Group.objects.get(name="Journey viewers"))
    client = Client()
    client.force_login(user)

    assert client.get(reverse("admin:journeys_journey_import")).status_code == 403


def test_a_list_join_journey_names_its_list_and_needs_it_where_imported(db):
    from tests.factories import ContactListFactory, ExitStepFactory, JourneyFactory

    readers = ContactListFactory(name="Readers")
    journey = JourneyFactory(
        name="Readers welcome", trigger_type="list_join", trigger_event_name="",
        trigger_list=readers,
    )  # fmt: skip
    ExitStepFactory(journey=journey, key="done", position=1)
    document = journey_export(journey=journey)

    copy = journey_import(document=document, name="Readers welcome 2")

    assert document["triggers"] == [{"type": "list_join", "list": "Readers"}]
    assert [t.contact_list for t in copy.triggers.all()] == [readers]
    with pytest.raises(JourneyImportError, match=r"triggers\[0\]: no list 'Gone'"):
        journey_import(document={**document, "triggers": [{"type": "list_join", "list": "Gone"}]},
                       name="Readers welcome 3")  # fmt: skip
    assert not Journey.objects.filter(name="Readers welcome 3").exists()


def test_a_document_with_the_single_trigger_of_earlier_versions_still_imports(welcome_series):
    document = journey_export(journey=welcome_series)
    del document["triggers"]
    document["trigger"] = {"type": "event", "event_name": "signed_up"}

    copy = journey_import(document=document, name="Welcome, as it was")

    assert [(t.kind, t.event_name) for t in copy.triggers.all()] == [("event", "signed_up")]


def test_a_delay_until_a_time_of_day_round_trips(db):
    from datetime import time

    from journeys.models import DelayStep
    from tests.factories import DelayStepFactory, JourneyFactory

    journey = JourneyFactory(name="Mornings")
    DelayStepFactory(
        journey=journey, key="nine", position=1, wait_until="time_of_day",
        at_time=time(9, 0), weekdays="01234",
    )  # fmt: skip
    document = journey_export(journey=journey)

    copy = journey_import(document=document, name="Mornings 2")

    assert document["steps"][0] == {
        "key": "nine", "type": "delay", "amount": 2, "unit": "days",
        "wait_until": "time_of_day", "at_time": "09:00:00", "weekdays": "01234",
    }  # fmt: skip
    delay = DelayStep.objects.get(journey=copy)
    assert (delay.wait_until, delay.at_time, delay.weekdays) == ("time_of_day", time(9), "01234")
    assert journey_export(journey=copy) == {**document, "name": "Mornings 2"}


def test_every_kind_of_trigger_and_the_audience_round_trip(db):
    from datetime import UTC, datetime, time

    from tests.factories import (
        ChannelFactory,
        ContactListFactory,
        ExitStepFactory,
        JourneyFactory,
        JourneyTriggerFactory,
        MessageTypeFactory,
        SegmentFactory,
    )

    journey = JourneyFactory(
        name="Everything",
        trigger_event_name="",
        reentry="period",
        reentry_period_days=30,
        audience={"attribute": "plan", "op": "eq", "value": "pro"},
    )
    ExitStepFactory(journey=journey, key="done", position=1)
    readers, pros = ContactListFactory(name="Readers"), SegmentFactory(name="Pros")
    news = MessageTypeFactory(name="News", channel=ChannelFactory(name="Email"))
    for fields in (
        {"kind": "event", "event_name": "purchase", "event_filter": {"plan": "pro"}},
        {"kind": "list_join", "contact_list": readers},
        {"kind": "segment_entry", "segment": pros},
        {"kind": "api"},
        {
            "kind": "schedule",
            "segment": pros,
            "starts_at": datetime(2027, 1, 10, 9, tzinfo=UTC),
            "every": 2,
            "every_unit": "weeks",
            "at_local_time": time(9, 30),
        },
        {"kind": "date_attribute", "date_attribute": "birthday", "offset_days": -3},
        {"kind": "journey", "source_journey": JourneyFactory(name="Onboarding")},
        {"kind": "subscription", "message_type": news, "subscription_change": "unsubscribed"},
        {"kind": "subscription", "channel": news.channel, "subscription_change": "subscribed"},
    ):
        JourneyTriggerFactory(journey=journey, **fields)
    document = journey_export(journey=journey)

    copy = journey_import(document=json.loads(json.dumps(document)), name="Everything 2")

    assert journey_export(journey=copy) == {**document, "name": "Everything 2"}
    assert document["audience"] == {"attribute": "plan", "op": "eq", "value": "pro"}
    assert document["triggers"][4] == {
        "type": "schedule",
        "segment": "Pros",
        "starts_at": "2027-01-10T09:00:00+00:00",
        "every": 2,
        "every_unit": "weeks",
        "at_local_time": "09:30:00",
    }
    assert document["triggers"][6] == {"type": "journey", "journey": "Onboarding"}
    assert document["triggers"][7] == {
        "type": "subscription",
        "message_type": "Email / News",
        "change": "unsubscribed",
    }


@pytest.mark.parametrize(
    ("triggers", "error"),
    [
        ([{"type": "someday"}], r"triggers\[0\]: unknown type 'someday'"),
        ([{"type": "event"}], r"In triggers\[0\]: event_name: Name the event"),
        ([{"type": "event", "event_name": "x", "colour": 1}], r"unknown field\(s\) colour"),
        ([{"type": "segment_entry", "segment": "Nobody"}], r"triggers\[0\]: no segment 'Nobody'"),
        ([{"type": "schedule", "starts_at": "2027-01-10T09:00:00Z"}], "one list or one segment"),
        ("event", r'"triggers" must be a list'),
    ],
)
def test_a_bad_trigger_is_refused_and_nothing_is_imported(welcome_series, triggers, error):
    document = {**journey_export(journey=welcome_series), "triggers": triggers}

    with pytest.raises(JourneyImportError, match=error):
        journey_import(document=document, name="Broken")

    assert not Journey.objects.filter(name="Broken").exists()


def test_the_full_example_in_the_format_guide_is_what_export_prints(db):
    import re
    from pathlib import Path

    from django.conf import settings

    from journeys.demo import demo_workspace_load

    demo_workspace_load()
    guide = (Path(settings.BASE_DIR) / "docs" / "journey-format.md").read_text()
    example = re.search(r"## A full example.*?```json\n(.*?)```", guide, re.S).group(1)

    exported = journey_export(journey=Journey.objects.get(name="Welcome series"))

    assert json.loads(example) == exported
