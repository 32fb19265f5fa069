"""A journey's analytics page in the admin: entries, ends, conversions and
the holdout's lift, messages per day as a chart, the funnel and the splits.

Everything on it comes from journeys.selectors.journey_analytics, which reads
the maintained tallies: the page costs the same whatever the journey's traffic.
"""

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from journeys.models import Enrollment
from journeys.selectors import journey_analytics

# The longest period the page shows at once (its chart has one point a day).
MAX_DAYS = 366


class AnalyticsPeriodForm(forms.Form):
    """The UTC days the analytics cover: the last 30 unless chosen."""

    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        today = timezone.now().date()
        until = data.get("until") or today
        since = data.get("since") or until - timedelta(days=29)
        if since > until:
            raise forms.ValidationError(
                f"The period starts ({since:%Y-%m-%d}) after it ends ({until:%Y-%m-%d}): "
                "choose a start on or before the end."
            )
        if (until - since).days + 1 > MAX_DAYS:
            raise forms.ValidationError(
                f"Choose at most {MAX_DAYS} days; this period has {(until - since).days + 1}."
            )
        data["since"], data["until"] = since, until
        return data


class JourneyAnalyticsMixin:
    """The analytics page and the list's link to it, for JourneyAdmin."""

    def analytics_urls(self):
        return [
            path(
                "<path:object_id>/analytics/",
                self.admin_site.admin_view(self.analytics_view),
                name="journeys_journey_analytics",
            ),
        ]

    @admin.display(description="Analytics")
    def analytics_link(self, obj):
        url = reverse("admin:journeys_journey_analytics", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, "Analytics")

    def analytics_view(self, request, object_id):
        journey = self.get_object(request, object_id)
        if journey is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, journey):
            raise PermissionDenied
        form = AnalyticsPeriodForm(request.GET)
        figures = None
        if form.is_valid():
            since, until = form.cleaned_data["since"], form.cleaned_data["until"]
            figures = journey_analytics(journey=journey, since=since, until=until)
            # The form shows the period shown, the default one included.
            form = AnalyticsPeriodForm({"since": since, "until": until})
        return TemplateResponse(
            request,
            "admin/journeys/journey/analytics.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Analytics of “{journey}”",
                "opts": self.model._meta,
                "original": journey,
                "form": form,
                "figures": figures,
                "chart": daily_chart(figures.days) if figures else "",
                "series": SERIES,
                "summary": summary_rows(figures) if figures else [],
                "lift": lift_text(figures.lift) if figures else None,
                "splits": split_rows(figures) if figures else [],
            },
        )


# (metric, label, colour) of the chart's lines.
SERIES = (
    ("sent", "Sent", "#417690"),
    ("delivered", "Delivered", "#79aec8"),
    ("opened", "Opened", "#e08a00"),
    ("clicked", "Clicked", "#3d9a3d"),
)


def daily_chart(days, *, width=720, height=240):
    """Messages per day as an inline <svg>: one line per metric, drawn on the
    server (no script). The table beside it carries the same figures."""
    left, right, top, bottom = 48, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    # The top of the scale: the highest figure rounded up to a multiple of 4,
    # so the five grid lines fall on whole numbers.
    highest = max([1, *(getattr(d, metric) for d in days for metric, _, _ in SERIES)])
    peak = -(-highest // 4) * 4
    step = plot_w / max(len(days) - 1, 1)

    def x(i):
        return left + i * step

    def y(n):
        return top + plot_h - n / peak * plot_h

    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11">{}</text>',
        (
            (
                left,
                f"{y(n):.1f}",
                left + plot_w,
                f"{y(n):.1f}",
                left - 6,
                f"{y(n) + 4:.1f}",
                round(n),
            )
            for n in (peak * f for f in (0, 0.25, 0.5, 0.75, 1))
        ),
    )
    ticks = max(1, len(days) // 6)
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" font-size="11">{}</text>',
        (
            (f"{x(i):.1f}", height - 8, d.day.strftime("%b %d"))
            for i, d in enumerate(days)
            if i % ticks == 0
        ),
    )
    lines = format_html_join(
        "",
        '<polyline class="series series-{}" fill="none" stroke="{}" stroke-width="2" '
        'points="{}"><title>{}</title></polyline>',
        (
            (
                metric,
                colour,
                " ".join(f"{x(i):.1f},{y(getattr(d, metric)):.1f}" for i, d in enumerate(days)),
                label,
            )
            for metric, label, colour in SERIES
        ),
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="analytics-chart" role="img" '
        'width="{}" height="{}" viewBox="0 0 {} {}" aria-labelledby="chart-title">'
        '<title id="chart-title">{}</title>{}{}{}</svg>',
        width,
        height,
        width,
        height,
        "Messages sent, delivered, opened and clicked per day",
        grid,
        labels,
        lines,
    )


def percent(value) -> str:
    return "—" if value is None else f"{value:.1%}"


EXIT_KIND_LABELS = dict(Enrollment.ExitKind.choices)


def summary_rows(figures):
    """(label, figure) rows of the overview table."""
    rate = percent(figures.conversion_rate)
    return [
        ("Entered", figures.entered),
        ("Completed", figures.completed),
        ("Exited", figures.exited),
        *(
            (f"\N{EN DASH} {EXIT_KIND_LABELS.get(kind, kind)}", n)
            for kind, n in figures.exits.items()
        ),
        ("Failed", figures.failed),
        ("Conversions", figures.converted),
        ("Conversion rate (of those entered, outside the holdout)", rate),
    ]


def lift_text(lift) -> dict | None:
    if lift is None:
        return None
    verdict = "Not enough data for a confidence yet (at least 5 contacts converted and 5 not "
    verdict += "in each group)."
    if lift.enough_data:
        verdict = f"{percent(lift.confidence)} confidence that the rates differ (z = {lift.z:.2f})."
    return {
        "treatment": lift.treatment,
        "treatment_converted": lift.treatment_converted,
        "treatment_rate": percent(lift.treatment_rate),
        "control": lift.control,
        "control_converted": lift.control_converted,
        "control_rate": percent(lift.control_rate),
        "lift": "—" if lift.lift is None else f"{lift.lift:+.1%}",
        "verdict": verdict,
    }


def split_rows(figures):
    return [
        {
            "step": result.step,
            "kind": result.kind,
            "branches": [
                (branch.label, branch.entered, branch.converted, percent(branch.rate))
                for branch in result.branches
            ],
        }
        for result in figures.splits
    ]
