"""The restricted template engine: what a template sees, escapes and may not do."""

import re
from html.parser import HTMLParser

import pytest

from contacts.models import Contact
from messaging.backends import get_backend
from messaging.context import message_context
from messaging.rendering import (
    RenderError,
    TemplateSyntaxProblem,
    check_syntax,
    contact_context,
    missing_variables,
    render_string,
    render_text_into_html,
    template_variables,
)
from tests.factories import TemplateFactory


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


def link_urls(html):
    """The href and src values of `html`, as an HTML parser reads them."""

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.urls = []

        def handle_starttag(self, tag, attrs):
            self.urls += [value or "" for name, value in attrs if name in ("href", "src")]

    parser = Links()
    parser.feed(html)
    return parser.urls


def test_verbatim_shows_template_tags_as_text():
    html = render_string(
        '{% verbatim %}<b>{{ "<script>alert(1)</script>" }}</b>{% endverbatim %}', {}, html=True
    )

    assert html == "<b>{{ &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot; }}</b>"


@pytest.mark.parametrize(
    "source",
    [
        '<a href="{{ event.url }}">go</a>',
        "<a href='{{ event.url }}'>go</a>",
        "<a href={{ event.url }}>go</a>",
        '<a href="{{ event.url|default:"x" }}">go</a>',
        "<a href=\"{{ x|default:'javascript:alert(1)' }}\">go</a>",
        '<a href="{{ event.a }}{{ event.b }}">go</a>',
        '<a href="{% firstof nothing "JaVaScRiPt:alert(1)" %}">go</a>',
        '<img src="{{ event.svg }}">',
    ],
)
@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", " java\tscript:alert(1)", "VBSCRIPT:x", "java\nscript:x"]
)
def test_a_script_url_a_template_writes_is_neutralised(source, url):
    event = {"url": url, "a": url[:4], "b": url[4:], "svg": "data:image/svg+xml;base64,PHN2Zz4="}

    html = render_string(source, {"event": event}, html=True)

    # What a browser reads: the URL with blanks and control characters dropped.
    urls = [re.sub(r"[\x00-\x20]", "", value).lower() for value in link_urls(html)]
    assert urls
    assert not [url for url in urls if url.startswith(("javascript:", "vbscript:", "data:"))]


def test_ordinary_urls_a_template_writes_are_kept():
    html = render_string(
        '<a href="{{ event.url }}">go</a><img src="{{ event.logo }}">'
        '<a href="mailto:{{ to }}">m</a>',
        {
            "event": {"url": "https://acme.test/?a=1&b=2", "logo": "data:image/png;base64,iVBO"},
            "to": "ada@example.com",
        },
        html=True,
    )

    assert html == (
        '<a href="https://acme.test/?a=1&amp;b=2">go</a><img src="data:image/png;base64,iVBO">'
        '<a href="mailto:ada@example.com">m</a>'
    )


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


def test_a_plain_text_field_is_escaped_as_a_whole_for_html():
    assert (
        render_text_into_html("Hi {{ firstName }} & co <3", {"firstName": "<b>Eve</b>"})
        == "Hi &lt;b&gt;Eve&lt;/b&gt; &amp; co &lt;3"
    )


@pytest.mark.django_db
def test_the_preheader_of_an_email_carries_no_markup_from_staff_or_contacts():
    template = TemplateFactory(
        preheader='Hi <img src=x onerror="alert(1)">{{ firstName }}',
        html_body='<p>Hello</p><a href="{{ links.unsubscribe }}">Unsubscribe</a>',
    )
    template.full_clean()
    contact = Contact(email="eve@example.com", attributes={"firstName": "<script>x</script>"})

    rendered = get_backend("email").render(template, message_context(contact=contact))

    assert "onerror" not in rendered.html
    assert "<script>" not in rendered.html
    assert "Hi &lt;script&gt;x&lt;/script&gt;" in rendered.html
