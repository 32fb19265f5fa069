"""Forms render Django's own widget templates through Jinja2 and every other
form template (the admin's, Waymark's) through the Django template language."""

import pytest
from django import forms
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.forms.renderers import get_default_renderer
from django.template import TemplateDoesNotExist
from django.template.backends.django import Template as DjangoTemplate
from django.template.backends.jinja2 import Template as Jinja2Template

from config.forms import FormRenderer


def test_the_project_renders_forms_with_it():
    assert isinstance(get_default_renderer(), FormRenderer)


def test_djangos_widget_templates_come_from_jinja2_and_the_others_from_django_templates():
    renderer = FormRenderer()

    assert isinstance(renderer.get_template("django/forms/widgets/select.html"), Jinja2Template)
    assert isinstance(renderer.get_template("django/forms/label.html"), Jinja2Template)
    assert isinstance(
        renderer.get_template("admin/widgets/related_widget_wrapper.html"), DjangoTemplate
    )
    assert isinstance(
        renderer.get_template("contacts/widgets/condition_editor.html"), DjangoTemplate
    )
    # asked again, from the name remembered
    assert isinstance(
        renderer.get_template("admin/widgets/related_widget_wrapper.html"), DjangoTemplate
    )


def test_a_template_neither_has_is_still_an_error():
    with pytest.raises(TemplateDoesNotExist):
        FormRenderer().get_template("django/forms/widgets/no-such-widget.html")


class Choice(forms.Form):
    colour = forms.ChoiceField(
        choices=[("red", "Red <hot>"), ("blue", "Blue")],
        help_text="Pick one",
        initial="blue",
    )
    note = forms.CharField(required=True)


def test_a_form_renders_the_same_markup_as_with_djangos_templates_escaped():
    form = Choice(data={"colour": "red", "note": ""})
    form.is_valid()

    jinja2 = form.render(renderer=FormRenderer())
    django = form.render(renderer=forms.renderers.DjangoTemplates())

    assert "".join(jinja2.split()) == "".join(django.split())
    assert "Red &lt;hot&gt;" in jinja2 and "<hot>" not in jinja2
    assert '<option value="red" selected>' in jinja2
    assert "This field is required." in jinja2


@pytest.mark.django_db
def test_an_admin_widget_wraps_a_widget_rendered_by_jinja2():
    from django.contrib import admin

    from messaging.models import Template

    field = Template._meta.get_field("message_type")
    widget = RelatedFieldWidgetWrapper(
        forms.Select(choices=[("", "---"), (1, "News <letter>")]),
        field.remote_field,
        admin.site,
        can_add_related=True,
    )

    html = widget.render("message_type", 1, renderer=FormRenderer())

    assert '<div class="related-widget-wrapper"' in html
    assert '<option value="1" selected>News &lt;letter&gt;</option>' in html
    assert 'class="related-widget-wrapper-link add-related"' in html
