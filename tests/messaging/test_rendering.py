"""The restricted template engine: what a template sees, escapes and may not do."""

import pytest

from contacts.models import Contact
from messaging.rendering import (
    RenderError,
    TemplateSyntaxProblem,
    check_syntax,
    contact_context,
    missing_variables,
    render_string,
    template_variables,
)


def test_a_template_cannot_change_the_contacts_attributes():
    contact = Contact(email="ada@example.com", attributes={"tags": ["vip", "beta"], "plan": "pro"})
    context = contact_context(contact)

    first = render_string(
        "[{{ tags.pop }}][{{ contact.tags.pop }}][{{ tags.reverse }}][{{ contact.clear }}]",
        context,
        html=False,
    )
    second = render_string("{{ tags|join:',' }} {{ contact.plan }}", context, html=False)

    assert first == "[][][][]"
    assert second == "vip,beta pro"
    assert contact.attributes == {"tags": ["vip", "beta"], "plan": "pro"}


def test_a_template_cannot_change_the_event_or_the_next_render():
    event = {"items": [{"name": "Lamp"}], "data": {"k": "v"}}
    context = {"event": event}

    render_string(
        "{{ event.items.pop }}{{ event.data.clear }}{{ event.data.popitem }}"
        "{{ event.items.0.clear }}{{ event.items.sort }}",
        context,
        html=True,
    )
    after = render_string("{{ event.items.0.name }} {{ event.data.k }}", context, html=True)

    assert event == {"items": [{"name": "Lamp"}], "data": {"k": "v"}}
    assert after == "Lamp v"


def test_tags_that_name_a_value_work_at_the_top_of_a_template():
    rendered = render_string(
        "{% firstof nickname name as who %}{% now 'Y' as year %}{% cycle 'a' 'b' as ab %}"
        "{% regroup items by kind as kinds %}{{ who }} {{ year|length }} {{ ab }} "
        "{% for group in kinds %}{{ group.grouper }}{% endfor %}",
        {"name": "Ada", "items": [{"kind": "x"}, {"kind": "y"}]},
        html=True,
    )

    assert rendered == "aAda 4 a xy"


def test_template_data_can_be_copied_and_pickled():
    import copy
    import pickle

    data = contact_context(Contact(email="ada@example.com", attributes={"tags": ["a", {"b": 1}]}))

    for copied in (copy.copy(data), copy.deepcopy(data), pickle.loads(pickle.dumps(data))):
        assert copied == data
        assert render_string("{{ contact.tags.1.b }}{{ tags.pop }}", copied, html=False) == "1"


def test_a_template_sees_plain_data_not_objects():
    class Secretive:
        password = "hunter2"

        def __str__(self):
            return "a secretive object"

    rendered = render_string("{{ thing }}|{{ thing.password }}", {"thing": Secretive()}, html=False)

    assert rendered == "a secretive object|"


@pytest.mark.parametrize(
    "source",
    [
        "{{ name|default:'<script>alert(1)</script>' }}",
        '{% firstof name "<script>alert(1)</script>" %}',
        '{% with greeting="<script>alert(1)</script>" %}{{ greeting }}{% endwith %}',
        "{{ '<script>alert(1)</script>' }}",
        "{% filter add:'<script>alert(1)</script>' %}{% endfilter %}",
        "{{ name|add:'<script>alert(1)</script>' }}",
        '{% now "<\\s\\c\\r\\i\\p\\t>" %}alert(1)',
    ],
)
def test_strings_written_in_tags_are_escaped_like_contact_data(source):
    # The sanitizer never sees inside template tags, so what they write must
    # not become markup.
    html = render_string(source, {"name": ""}, html=True)

    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_strings_written_in_tags_stay_as_written_in_text_parts():
    assert render_string("{{ name|default:'<you>' }}", {}, html=False) == "<you>"


def test_markup_around_tags_still_renders_as_markup():
    html = render_string(
        "{% filter lower %}<b>{{ name }}</b>{% endfilter %}<i>{{ name|upper }}</i>",
        {"name": "Ada & co"},
        html=True,
    )

    assert html == "<b>ada &amp; co</b><i>ADA &amp; CO</i>"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Hi {{ first_name", '"{{" is not closed in "{{ first_name"'),
        ("Hi {{ first_name }\n}", '"{{" is not closed in "{{ first_name }"'),
        ("{% if vip %}Hi{% endif %} {% if", '"{%" is not closed in "{% if"'),
    ],
)
def test_an_unclosed_tag_is_a_syntax_error(source, message):
    with pytest.raises(TemplateSyntaxProblem) as caught:
        check_syntax(source)

    assert message in str(caught.value)
    assert "{% templatetag" in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "Use {% templatetag openvariable %} name {% templatetag closevariable %}",
        "{% verbatim %}{{ not a tag{% endverbatim %}",
        "{% comment %}{{ draft{% endcomment %}",
        "A } and a { alone, and }} too",
        "<style>@media (max-width: 600px){#header{display:none}}</style>",
    ],
)
def test_braces_that_are_not_an_unclosed_tag_are_fine(source):
    check_syntax(source)


def test_the_variables_a_template_uses():
    names = template_variables(
        "Welcome, {{ contact.first_name|default:firstName }}!",
        "{% if event.plan == 'pro' %}{{ links.upgrade }}{% endif %}"
        "{% for item in event.items %}{{ item.name }} {{ forloop.counter }}"
        "{% empty %}{{ event.empty_text }}{% endfor %}"
        "{% with total=event.total %}{{ total }}{% endwith %}"
        "{% firstof nickname contact.first_name 'there' %}"
        "{% cycle 'odd' 'even' as parity silent %}{{ parity }}"
        "{% regroup event.items by kind as kinds %}{% for k in kinds %}{{ k.grouper }}{% endfor %}"
        "{% filter upper %}{{ unsubscribeUrl }}{% endfilter %}{{ True }}",
    )

    assert names == [
        "contact.first_name",
        "firstName",
        "event.plan",
        "links.upgrade",
        "event.items",
        "event.empty_text",
        "event.total",
        "nickname",
        "unsubscribeUrl",
    ]


def test_a_template_that_does_not_compile_lists_no_variables():
    assert template_variables("{% if %}", "{{ fine }}") == ["fine"]


def test_the_variables_a_context_lacks():
    context = {
        **contact_context(Contact(email="ada@example.com", attributes={"firstName": "Ada"})),
        "event": {"plan": "", "items": [1]},
    }

    missing = missing_variables(
        ["contact.first_name", "contact.last_name", "event.plan", "event.items", "event.nope",
         "links.unsubscribe", "firstName", "contact.first_name.pop"],
        context,
    )  # fmt: skip

    assert missing == [
        "contact.last_name",
        "event.plan",
        "event.nope",
        "links.unsubscribe",
        "contact.first_name.pop",
    ]


def test_a_template_that_fails_raises_render_error():
    with pytest.raises(RenderError, match="underscore"):
        render_string("{{ contact.__class__ }}", {}, html=True)
