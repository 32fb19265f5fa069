"""A marketer previewing a message template in the admin, in a real browser."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.factories import ContactFactory, TemplateFactory

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
