"""Rendering is bounded in size and time: one heavy template fails alone."""

import pytest

from contacts.services import events_dispatch_all
from journeys.models import Enrollment
from journeys.services.scheduling import scheduler_tick
from messaging.models import Message
from messaging.rendering import RenderError, TemplateSyntaxProblem, check_syntax, render_string
from tests.factories import (
    ContactFactory,
    DelayStepFactory,
    JourneyFactory,
    SendMessageStepFactory,
    TemplateFactory,
)


@pytest.fixture
def limits(settings):
    """Small limits, so that a test reaches them quickly."""
    settings.WAYMARK_RENDERING = {"MAX_CHARS": 10_000, "TIMEOUT": 0.5}
    return settings.WAYMARK_RENDERING


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 'x'|rjust:'50000000' }}", 'rjust:"50000000" asks for 50,000,000 characters'),
        ("{{ 'x'|ljust:'50000000' }}", 'ljust:"50000000" asks for 50,000,000 characters'),
        ("{{ 'x'|center:'-50000000' }}", 'center:"-50000000" asks for 50,000,000 characters'),
        ("{{ 'x'|stringformat:'50000000s' }}", 'stringformat:"50000000s" asks for 50,000,000'),
        ("{{ 1.5|floatformat:'5000000' }}", 'floatformat:"5000000" asks for 5,000,000'),
    ],
)
def test_a_padding_filter_with_a_huge_literal_width_is_refused_on_save(source, message):
    with pytest.raises(TemplateSyntaxProblem, match=message):
        check_syntax(source)
    with pytest.raises(RenderError, match=message):
        render_string(source, {}, html=True)


def test_a_padding_width_from_the_data_is_refused_when_rendering():
    with pytest.raises(RenderError, match="asks for 50,000,000 characters; the most is 1,000"):
        render_string("{{ name|rjust:event.width }}", {"event": {"width": 50_000_000}}, html=True)


def test_padding_within_the_cap_works():
    assert render_string("[{{ 'ab'|rjust:'5' }}]", {}, html=False) == "[   ab]"


def test_nested_loops_over_long_lists_stop_at_the_time_limit(limits):
    items = list(range(3000))

    with pytest.raises(RenderError, match=r"took more than 0\.5 seconds to render"):
        render_string(
            "{% for a in items %}{% for b in items %}{% endfor %}{% endfor %}",
            {"items": items},
            html=True,
        )


def test_output_stops_at_the_size_limit(settings):
    # The time limit has its own test: here it is far off, so that a slow
    # machine cannot reach it before the size limit.
    settings.WAYMARK_RENDERING = {"MAX_CHARS": 10_000, "TIMEOUT": 30}

    with pytest.raises(RenderError, match="longer than 10,000 characters"):
        render_string(
            "{% for a in items %}{% for b in items %}{{ a }}{{ b }}{% endfor %}{% endfor %}",
            {"items": list(range(3000))},
            html=True,
        )


@pytest.mark.parametrize(
    "source",
    [
        # Each filter multiplies what it is given: chained, they grow exponentially.
        "{{ s" + "|force_escape" * 20 + " }}",
        "{{ s" + "|urlencode:''" * 20 + " }}",
        "{% with a=s|add:s %}{% with b=a|add:a %}{% with c=b|add:b %}{% with d=c|add:c %}"
        "{% with e=d|add:d %}{% with f=e|add:e %}{% with g=f|add:f %}{% with h=g|add:g %}"
        "{{ h|length }}{% endwith %}{% endwith %}{% endwith %}{% endwith %}{% endwith %}"
        "{% endwith %}{% endwith %}{% endwith %}",
        "{{ words|join:s }}",
        "{{ s|make_list|join:s }}",
    ],
)
def test_filters_that_multiply_their_input_stop_at_the_size_limit(limits, source):
    context = {"s": "&" * 2000, "words": ["a"] * 2000}

    with pytest.raises(RenderError, match="longer than 10,000 characters"):
        render_string(source, context, html=True)


def test_a_render_over_a_limit_leaves_the_next_render_unaffected(limits):
    with pytest.raises(RenderError):
        render_string(
            "{% for a in items %}{{ items }}{% endfor %}", {"items": [1] * 5000}, html=True
        )

    assert render_string("Hi {{ name }}", {"name": "Ada"}, html=True) == "Hi Ada"


def test_the_default_limits_allow_a_large_newsletter():
    items = [{"title": f"Story {n}", "summary": "word " * 40} for n in range(300)]

    html = render_string(
        "{% for item in items %}<h2>{{ item.title }}</h2><p>{{ item.summary }}</p>{% endfor %}",
        {"items": items},
        html=True,
    )

    assert html.count("<h2>") == 300


@pytest.mark.django_db(transaction=True)
def test_a_worker_fails_the_heavy_message_and_sends_the_others(
    api_client, smtp_server, run_worker, limits
):
    # Given a welcome journey whose email loops over a list in the contact's data
    journey = JourneyFactory(trigger_event_name="signed_up")
    SendMessageStepFactory(
        journey=journey,
        position=1,
        template=TemplateFactory(
            html_body="<p>Hi {{ contact.first_name }}</p>{% for a in contact.history %}"
            "{% for b in contact.history %}{% endfor %}{% endfor %}"
        ),
    )
    DelayStepFactory(journey=journey, position=2)
    ContactFactory(email="nia@example.com", attributes={"firstName": "Nia"})
    ContactFactory(
        email="eve@example.com", attributes={"firstName": "Eve", "history": list(range(3000))}
    )

    # When both sign up and one worker job advances them
    for email in ("eve@example.com", "nia@example.com"):
        response = api_client.post(
            "/api/events/track", {"email": email, "eventName": "signed_up"}, format="json"
        )
        assert response.status_code == 200
    events_dispatch_all()
    scheduler_tick()
    run_worker()

    # Then Eve's message failed with the reason, Nia's arrived, and both went on
    eve = Message.objects.get(contact__email="eve@example.com")
    assert eve.status == Message.Status.FAILED
    assert "took more than 0.5 seconds to render" in eve.error
    assert [m["To"] for m in smtp_server.messages] == ["nia@example.com"]
    assert set(Enrollment.objects.values_list("state", flat=True)) == {Enrollment.State.WAITING}
