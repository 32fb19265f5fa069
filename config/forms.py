"""How forms and their widgets are rendered (settings.FORM_RENDERER)."""

from django.forms.renderers import BaseRenderer, DjangoTemplates, Jinja2
from django.template import TemplateDoesNotExist


class FormRenderer(BaseRenderer):
    """Django's own form, label and widget templates in their Jinja2 versions
    (which Django ships and tests beside the others); every other form
    template (the admin's widgets, Waymark's condition editor) as a Django
    template.

    A page of many forms spends most of its time rendering widgets and
    labels, one template each: the journey editor of 40 steps renders some
    1,300 of them. Jinja2 compiles a template to Python, and renders each
    several times faster than the Django template language, with the same
    markup.
    """

    def __init__(self):
        self.jinja2 = Jinja2()
        self.django = DjangoTemplates()
        # Template name -> the renderer that has it, found once: Jinja2
        # does not remember a template it could not find, and would search
        # the disk again on each render of an admin widget.
        self._renderers = {}

    def get_template(self, template_name):
        renderer = self._renderers.get(template_name)
        if renderer is not None:
            return renderer.get_template(template_name)
        try:
            template = self.jinja2.get_template(template_name)
            renderer = self.jinja2
        except TemplateDoesNotExist:
            template = self.django.get_template(template_name)
            renderer = self.django
        self._renderers[template_name] = renderer
        return template
