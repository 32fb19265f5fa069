"""A journey's first screen: its diagram with each step's figures.

The page draws the steps from one read of them and their connections, and
builds no form. A step's box opens the editor on that step's form alone
(`?step=<id>`); the "Edit journey" link opens it with every step's form.
"""

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from journeys.admin.forms import DiagramPeriodForm
from journeys.admin.steps import FOCUS_PARAMETER
from journeys.diagram import journey_svg
from journeys.selectors import journey_step_metrics
from journeys.services.graph import JourneySteps


class JourneyDiagramPageMixin:
    """For JourneyAdmin: the diagram page, `admin:journeys_journey_diagram`."""

    def get_urls(self):
        return [
            path(
                "<path:object_id>/diagram/",
                self.admin_site.admin_view(self.diagram_view),
                name="journeys_journey_diagram",
            ),
            *super().get_urls(),
        ]

    def diagram_view(self, request, object_id):
        journey = self.get_object(request, unquote(object_id))
        if journey is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, journey):
            raise PermissionDenied
        period = DiagramPeriodForm(request.GET or None)
        since, until = period.bounds()
        editor = reverse("admin:journeys_journey_change", args=[journey.pk])
        steps = JourneySteps.load(journey.pk)
        diagram = journey_svg(
            steps=steps,
            metrics=journey_step_metrics(journey=journey, since=since, until=until),
            # The editor on the step's form alone: its inline row is steps-0.
            link=lambda node: f"{editor}?{urlencode({FOCUS_PARAMETER: node.step.pk})}#steps-0",
        )
        return TemplateResponse(
            request,
            "admin/journeys/journey/diagram.html",
            {
                **self.admin_site.each_context(request),
                "title": str(journey),
                "subtitle": None,
                "opts": self.opts,
                "original": journey,
                "journey": journey,
                "triggers": [trigger.summary for trigger in journey.triggers.all()],
                "diagram": diagram if steps.ordered else None,
                "diagram_period": period,
                "editor_url": editor,
                "has_change_permission": self.has_change_permission(request, journey),
            },
        )
