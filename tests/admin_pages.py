"""Reading and posting admin pages the way a browser would."""

import re


def result_rows(response):
    """The rows of the changelist table, as the page shows them."""
    assert response.status_code == 200
    body = response.content.decode()
    table = re.search(r'<table id="result_list">.*?<tbody>(.*?)</tbody>', body, re.S)
    return re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S) if table else []


def form_data(response):
    """The data a browser would post back for an admin change form, unchanged."""
    data = {}
    form = response.context["adminform"].form
    for name in form.fields:
        value = form[name].value()
        if value is not None:
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        for sub in formset.forms:
            for name in sub.fields:
                value = sub[name].value()
                if value is not None and value is not False:
                    data[sub.add_prefix(name)] = value
    return data


def contact_timeline(client, contact):
    """The timeline part of a contact's page, as staff logged in to `client` see it."""
    from django.urls import reverse

    response = client.get(reverse("admin:contacts_contact_page", args=[contact.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    return body[body.index('id="contact-timeline"') :]
