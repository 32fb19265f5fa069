"""A marketer previewing a message template in the admin, in a real browser."""

from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from messaging.models import Template
from messaging.rendering import render_string
from tests.factories import ContactFactory, MessageTypeFactory, TemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = "/tmp/template-preview.png"


def test_preview_from_the_change_page_shows_the_rendered_email(admin_page, live_server):
    template = TemplateFactory(
        name="Welcome",
        subject="Welcome to Waymark, {{ contact.first_name }}!",
        html_body=(
            '<div style="font-family:sans-serif;max-width:560px;margin:auto">'
            '<h1 style="color:#264b5d">Hi {{ firstName }},</h1>'
            "<p>Your {{ event.plan|default:'free' }} plan is ready.</p>"
            '<p><a href="https://waymark.test/start">Get started</a></p></div>'
        ),
    )
    ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})
    admin_page.goto(
        f"{live_server.url}{reverse('admin:messaging_template_change', args=[template.pk])}"
    )

    admin_page.locator(".object-tools").get_by_role("link", name="Preview").click()

    expect(admin_page.locator("#preview-subject")).to_have_text("Welcome to Waymark, Sam!")
    email = admin_page.frame_locator("iframe[sandbox]")
    expect(email.get_by_role("heading")).to_have_text("Hi Sam,")

    admin_page.get_by_label("Contact email").fill("ada@example.com")
    admin_page.get_by_label("Event data (JSON)").fill('{"plan": "pro"}')
    admin_page.get_by_role("button", name="Preview").click()

    expect(admin_page.locator("#preview-subject")).to_have_text("Welcome to Waymark, Ada!")
    expect(email.get_by_role("heading")).to_have_text("Hi Ada,")
    expect(email.get_by_text("Your pro plan is ready.")).to_be_visible()
    admin_page.screenshot(path=SCREENSHOT, full_page=True)


DESIGNED = (Path(__file__).parent.parent / "messaging" / "emails" / "designed.html").read_text()
# What a reader sees of each part of the designed email.
LOOKS = {
    "body": ("background-color", "margin-top", "font-family"),
    ".container": ("width", "background-color", "border-top-left-radius", "border-top-width",
                   "table-layout"),
    ".button-cell": ("background-color", "border-top-left-radius"),
    "#cta": ("display", "background-color", "color", "padding-top", "padding-left",
             "border-top-left-radius", "border-top-color", "font-weight", "text-decoration-line"),
    "#cta span": ("letter-spacing",),
    "h1": ("color", "font-size", "line-height", "margin-bottom"),
    "img": ("display", "width", "height"),
}  # fmt: skip
CONTEXT = {
    "contact": {"first_name": "Ada"},
    "event": {"plan": "pro"},
    "links": {"unsubscribe": "https://waymark.test/u", "preferences": "https://waymark.test/p"},
}


def looks(frame):
    """The computed styles LOOKS names, element by element."""
    return frame.evaluate(
        """(looks) => Object.fromEntries(Object.entries(looks).map(([selector, names]) => {
            const style = getComputedStyle(document.querySelector(selector));
            return [selector, Object.fromEntries(names.map(n => [n, style.getPropertyValue(n)]))];
        }))""",
        LOOKS,
    )


def test_a_designed_email_saved_in_the_admin_looks_as_designed(admin_page, live_server):
    onboarding = MessageTypeFactory(name="Onboarding")
    # The design as its author sees it in a browser, before Waymark stores it
    admin_page.set_content(render_string(DESIGNED, CONTEXT, html=True))
    designed = looks(admin_page)
    assert designed["#cta"]["background-color"] == "rgb(11, 110, 79)"
    assert designed["#cta span"]["letter-spacing"] == "0.5px"  # from the <style> in the head

    # When a marketer pastes it into a new template and saves it
    admin_page.goto(f"{live_server.url}{reverse('admin:messaging_template_add')}")
    admin_page.get_by_label("Name:", exact=True).fill("Designed welcome")
    admin_page.get_by_label("Message type:").select_option(str(onboarding.pk))
    admin_page.get_by_label("Subject:").fill("Welcome, {{ contact.first_name }}")
    admin_page.get_by_label("HTML body:").fill(DESIGNED)
    admin_page.get_by_role("button", name="Save and continue editing").last.click()
    expect(admin_page.locator(".messagelist .success")).to_be_visible()
    expect(admin_page.locator(".messagelist .warning")).to_have_count(0)

    # Then the stored template looks the same, rendered and shown in the preview
    saved = Template.objects.get(name="Designed welcome")
    admin_page.set_content(render_string(saved.html_body, CONTEXT, html=True))
    assert looks(admin_page) == designed
    admin_page.goto(
        f"{live_server.url}{reverse('admin:messaging_template_preview', args=[saved.pk])}"
    )
    frame = admin_page.frame_locator("iframe[sandbox]")
    expect(frame.locator("#cta")).to_have_css("background-color", "rgb(11, 110, 79)")
    expect(frame.locator("#cta")).to_have_css("color", "rgb(255, 255, 255)")
    expect(frame.locator("#cta")).to_have_css("border-top-left-radius", "6px")
    expect(frame.locator("#cta span")).to_have_css("letter-spacing", "0.5px")
    admin_page.locator("iframe[sandbox]").screenshot(path="/tmp/template-preview-designed.png")


def test_a_test_sent_from_the_preview_arrives(admin_page, live_server, smtp_server):
    template = TemplateFactory(
        name="Welcome",
        subject="Welcome, {{ contact.first_name }}!",
        html_body='<p>Hi {{ firstName }}</p><a href="{{ links.unsubscribe }}">Unsubscribe</a>',
    )
    ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})
    admin_page.goto(
        f"{live_server.url}{reverse('admin:messaging_template_preview', args=[template.pk])}"
        "?email=ada@example.com"
    )

    admin_page.get_by_label("Test address").fill("marketer@acme.test")
    admin_page.get_by_role("button", name="Send a test to this address").click()

    expect(admin_page.locator(".messagelist .success")).to_have_text(
        "A test of “Welcome” was sent to marketer@acme.test."
    )
    expect(admin_page.locator("#preview-subject")).to_have_text("Welcome, Ada!")
    (email,) = smtp_server.messages
    assert email["To"] == "marketer@acme.test"
    assert email["Subject"] == "[Test] Welcome, Ada!"
    assert "Hi Ada" in email.get_body(("html",)).get_content()
