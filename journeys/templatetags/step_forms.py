"""The fields of a step's form on the journey editor, rendered through Jinja2.

The editor of a 40-step journey renders some 40 step forms of six to twelve
fields each. Through the admin's own fieldset template (the Django template
language) that was two thirds of the page's time; the same markup from a
Jinja2 copy of that template (journeys/jinja2/journeys/admin/step_fieldsets.html)
takes a fraction of it. tests/journeys/test_step_fieldsets.py renders each
step type's form both ways and requires the same markup, so a Django upgrade
that changes the admin's template shows here first.
"""

import functools

from django import template
from django.forms.renderers import Jinja2
from django.utils.safestring import mark_safe

register = template.Library()

TEMPLATE = "journeys/admin/step_fieldsets.html"


@functools.cache
def _template():
    return Jinja2().get_template(TEMPLATE)


@register.simple_tag
def step_fieldsets(inline_admin_form, prefix="", id_prefix=0, heading_level=4):
    """Every fieldset of `inline_admin_form`, as admin/includes/fieldset.html
    renders each."""
    # Jinja2 escaped what it rendered (autoescape, as Django's Jinja2 backend sets it).
    return mark_safe(
        _template().render(
            {
                "inline_admin_form": inline_admin_form,
                "prefix": prefix,
                "id_prefix": id_prefix,
                "heading_level": heading_level,
            }
        )
    )
