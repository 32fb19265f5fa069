"""Enrolling contacts in a journey from the admin: chosen contacts, a list or a segment.

Contacts must not import journeys (imports flow downwards), so the actions
are added here to the contacts app's admin classes, as its ContactAdmin
docstring describes for inlines and history links.
"""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from contacts.admin import ContactAdmin, ContactListAdmin, SegmentAdmin
from journeys.models import Journey
from journeys.services.enrolling import (
    ENROLL_NOW_LIMIT,
    SELECTED_LIMIT,
    EnrollError,
    audience_size,
    journey_enroll_audience,
    journey_enroll_selected,
)


class EnrollForm(forms.Form):
    journey = forms.ModelChoiceField(
        queryset=Journey.objects.none(),
        empty_label="Choose a live journey",
        help_text="Only live journeys take contacts.",
        error_messages={
            "invalid_choice": "That journey is not live (any more): choose a live journey.",
            "required": "Choose the journey they enter.",
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["journey"].queryset = Journey.objects.filter(state=Journey.State.LIVE).order_by(
            "name"
        )


def has_enroll_permission(self, request):
    """Putting contacts into a live journey: the "Journey managers" role."""
    return request.user.has_perm("journeys.add_enrollment")


def _enroll_page(modeladmin, request, queryset, *, action, who, count, enroll):
    """Choose a live journey, see how many contacts and its re-entry policy,
    confirm; then `enroll(journey)` (an Enrolled). GET never reaches here:
    actions are POSTs, and nothing enters before the confirming one."""
    chosen = "journey" in request.POST
    form = EnrollForm(request.POST if chosen else None)
    if chosen and form.is_valid() and request.POST.get("confirmed") == "yes":
        journey = form.cleaned_data["journey"]
        try:
            done = enroll(journey)
        except EnrollError as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
            return None
        if done.queued:
            modeladmin.message_user(
                request,
                f"{who.capitalize()} are entering “{journey}” in the background: its "
                "enrollments list shows them as they enter.",
                messages.SUCCESS,
            )
        else:
            kept_out = max(count - done.entered, 0)
            modeladmin.message_user(
                request,
                f"{done.entered} contact(s) entered “{journey}”"
                + (
                    f"; {kept_out} kept out by its audience or re-entry policy."
                    if kept_out
                    else "."
                ),
                messages.SUCCESS,
            )
        return None
    return TemplateResponse(
        request,
        "admin/journeys/enroll.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Enroll in a journey",
            "opts": modeladmin.model._meta,
            "form": form,
            "confirming": chosen and form.is_valid(),
            "journey": form.cleaned_data["journey"] if chosen and form.is_valid() else None,
            "who": who,
            "count": count,
            "limit": ENROLL_NOW_LIMIT,
            "action": action,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        },
    )


@admin.action(description="Enroll in a journey…", permissions=["enroll"])
def enroll_contacts(modeladmin, request, queryset):
    contact_ids = list(queryset.order_by().values_list("pk", flat=True)[: SELECTED_LIMIT + 1])
    if len(contact_ids) > SELECTED_LIMIT:
        modeladmin.message_user(
            request,
            f"Choose at most {SELECTED_LIMIT:,} contacts at a time: to enroll more, put them "
            "in a list or a segment and enroll that from its page.",
            messages.ERROR,
        )
        return None
    return _enroll_page(
        modeladmin,
        request,
        queryset,
        action="enroll_contacts",
        who=f"{len(contact_ids)} chosen contact(s)",
        count=len(contact_ids),
        enroll=lambda journey: journey_enroll_selected(journey=journey, contact_ids=contact_ids),
    )


def _one(modeladmin, request, queryset, what):
    chosen = list(queryset[:2])
    if len(chosen) != 1:
        modeladmin.message_user(request, f"Choose one {what} to enroll.", messages.ERROR)
        return None
    return chosen[0]


@admin.action(description="Enroll its members in a journey…", permissions=["enroll"])
def enroll_list(modeladmin, request, queryset):
    contact_list = _one(modeladmin, request, queryset, "list")
    if contact_list is None:
        return None
    return _enroll_page(
        modeladmin,
        request,
        queryset,
        action="enroll_list",
        who=f"the members of the list “{contact_list}”",
        count=audience_size(contact_list=contact_list),
        enroll=lambda journey: journey_enroll_audience(journey=journey, contact_list=contact_list),
    )


@admin.action(description="Enroll its contacts in a journey…", permissions=["enroll"])
def enroll_segment(modeladmin, request, queryset):
    segment = _one(modeladmin, request, queryset, "segment")
    if segment is None:
        return None
    return _enroll_page(
        modeladmin,
        request,
        queryset,
        action="enroll_segment",
        who=f"the contacts of the segment “{segment}”",
        count=audience_size(segment=segment),
        enroll=lambda journey: journey_enroll_audience(journey=journey, segment=segment),
    )


for admin_class, action in (
    (ContactAdmin, enroll_contacts),
    (ContactListAdmin, enroll_list),
    (SegmentAdmin, enroll_segment),
):
    admin_class.actions = (*(admin_class.actions or ()), action)
    admin_class.has_enroll_permission = has_enroll_permission
