"""The demo workspace `make run` starts with: a welcome series ready to fire.

Loading is idempotent and never destructive: every object is looked up by
its natural name and created only when missing, so what someone changed in
the admin since the last load stays as they left it.
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction

from contacts.models import ApiKey, Contact, ContactList, ListMembership
from contacts.services import api_key_create
from journeys.models import (
    ConditionStep,
    DelayStep,
    ExitStep,
    Journey,
    JourneyTrigger,
    SendMessageStep,
)
from journeys.services.graph import step_connect
from messaging.models import Template
from subscriptions.models import Channel, MessageType

DEMO_ADMIN_USERNAME = "admin"
# Only for the local demo: the user is created once with this password and
# never touched again, so a changed password stays changed.
DEMO_ADMIN_PASSWORD = "waymark-demo"
DEMO_API_KEY_NAME = "Demo key"
DEMO_JOURNEY_NAME = "Welcome series"

CHANNELS = [
    ("Email", Channel.Medium.EMAIL, Channel.Kind.MARKETING),
    ("Transactional email", Channel.Medium.EMAIL, Channel.Kind.TRANSACTIONAL),
    ("SMS", Channel.Medium.SMS, Channel.Kind.MARKETING),
]

MESSAGE_TYPES = [
    (
        "Email",
        "Onboarding",
        MessageType.Policy.OPT_OUT,
        "Tips for your first weeks with Acme.",
    ),
    (
        "Email",
        "Product news",
        MessageType.Policy.OPT_IN,
        "New features and improvements, when they ship.",
    ),
    (
        "Email",
        "Weekly digest",
        MessageType.Policy.DOUBLE_OPT_IN,
        "A summary of your projects, every Monday.",
    ),
    (
        "Transactional email",
        "Receipts",
        MessageType.Policy.OPT_OUT,
        "Receipts and invoices for your payments.",
    ),
]

# The greeting falls back from the contact's firstName attribute to the
# firstName of the event that started the journey: a contact created by
# /api/events/track has no attributes yet, only the event's dataFields.
_FIRST_NAME = "{% firstof contact.first_name event.firstName 'there' %}"

# A styled <div> rather than a whole document: short to read in the admin,
# and stored by the sanitizer exactly as written here.
_WRAPPER = (
    '<div style="font-family: Helvetica, Arial, sans-serif; color: #1f2933; line-height: 1.5;">'
)
_ACCENT = 'style="color: #0b6e4f;"'
# Every marketing email says why it came and how to stop it.
_FOOTER = """\
<p style="color: #6b7280; font-size: 12px;">You get this email because you signed up for Acme.
<a href="{{ links.preferences }}" style="color: #6b7280;">Choose what you receive</a> ·
<a href="{{ links.unsubscribe }}" style="color: #6b7280;">Unsubscribe</a></p>
"""

WELCOME_HTML = f"""\
{_WRAPPER}
<h1 {_ACCENT}>Welcome aboard, {_FIRST_NAME}!</h1>
<p>Hi {_FIRST_NAME}, thanks for signing up for Acme. We're glad you're here.</p>
<p>The quickest way to see what Acme can do is to create your first project:
it takes about two minutes.</p>
<p><a href="https://acme.example/projects/new" {_ACCENT}>Create a project</a></p>
<p>If you get stuck, just reply to this email: a real person will answer.</p>
<p>Cheers,<br>The Acme team</p>
{_FOOTER}</div>
"""

NUDGE_HTML = f"""\
{_WRAPPER}
<p>Hi {_FIRST_NAME},</p>
<p>We noticed you haven't created a project yet. Most people start from a
template: pick one, rename it, and you're done.</p>
<p><a href="https://acme.example/projects/new?from=template" {_ACCENT}>Start from
a template</a></p>
<p>Need a hand? Reply to this email and tell us what you're working on.</p>
<p>The Acme team</p>
{_FOOTER}</div>
"""

TEMPLATES = [
    {
        "name": "Welcome email",
        "message_type": ("Email", "Onboarding"),
        "from_name": "Acme",
        "subject": f"Welcome to Acme, {_FIRST_NAME}!",
        "preheader": "Your first project is two minutes away.",
        "html_body": WELCOME_HTML,
    },
    {
        "name": "Getting started nudge",
        "message_type": ("Email", "Onboarding"),
        "from_name": "Acme",
        "subject": "Need a hand creating your first project?",
        "preheader": "Start from a template: it takes two minutes.",
        "html_body": NUDGE_HTML,
    },
]

CONTACTS = [
    ("ada@example.com", {"firstName": "Ada", "lastName": "Lovelace", "plan": "pro"}),
    ("grace@example.com", {"firstName": "Grace", "lastName": "Hopper", "plan": "free"}),
    ("alan@example.com", {"firstName": "Alan", "lastName": "Turing", "plan": "free"}),
]
BETA_TESTERS = ("Beta testers", ["ada@example.com", "grace@example.com"])


@dataclass
class DemoResult:
    """What one load did. `api_key_raw` is set only when the key was just made:
    raw keys are never stored, so it cannot be shown again."""

    created: list[str] = field(default_factory=list)
    admin_created: bool = False
    api_key_raw: str | None = None


def demo_workspace_load() -> DemoResult:
    """Create whatever of the demo workspace is missing; change nothing that exists.

    One transaction: a load that fails half-way leaves nothing behind.
    """
    result = DemoResult()
    with transaction.atomic():
        admin_user = _admin_user(result)
        channels = {
            name: _get_or_create(
                result, Channel, f"channel {name}", name=name, defaults={"medium": m, "kind": k}
            )
            for name, m, k in CHANNELS
        }
        message_types = {
            (channel_name, name): _get_or_create(
                result,
                MessageType,
                f"message type {name}",
                channel=channels[channel_name],
                name=name,
                defaults={"policy": policy, "description": description},
            )
            for channel_name, name, policy, description in MESSAGE_TYPES
        }
        templates = {spec["name"]: _template(result, spec, message_types) for spec in TEMPLATES}
        contacts = {
            email: _get_or_create(
                result, Contact, f"contact {email}", email=email, defaults={"attributes": attrs}
            )
            for email, attrs in CONTACTS
        }
        _beta_testers(result, contacts)
        _welcome_series(result, admin_user, templates)
        _api_key(result, admin_user)
    return result


def _get_or_create(result, model, label, *, defaults=None, **lookup):
    obj, created = model.objects.get_or_create(defaults=defaults or {}, **lookup)
    if created:
        result.created.append(label)
    return obj


def _admin_user(result):
    user_model = get_user_model()
    user = user_model.objects.filter(username=DEMO_ADMIN_USERNAME).first()
    if user is None:
        user = user_model.objects.create_superuser(
            DEMO_ADMIN_USERNAME, "admin@example.com", DEMO_ADMIN_PASSWORD
        )
        result.admin_created = True
        result.created.append(f"superuser {DEMO_ADMIN_USERNAME}")
    return user


def _template(result, spec, message_types):
    template = Template.objects.filter(name=spec["name"]).first()
    if template is not None:
        return template
    template = Template(
        **{key: value for key, value in spec.items() if key != "message_type"},
        message_type=message_types[spec["message_type"]],
    )
    template.full_clean()  # sanitizes the HTML and checks the template syntax
    template.save()
    result.created.append(f"template {template.name}")
    return template


def _beta_testers(result, contacts):
    name, emails = BETA_TESTERS
    contact_list, created = ContactList.objects.get_or_create(
        name=name, defaults={"description": "Early adopters who try features first."}
    )
    if not created:
        return  # its members are whoever staff left in it
    result.created.append(f"list {name}")
    ListMembership.objects.bulk_create(
        [
            ListMembership(
                contact_list=contact_list,
                contact=contacts[email],
                source=ListMembership.Source.IMPORT,
            )
            for email in emails
        ]
    )


def _welcome_series(result, admin_user, templates):
    journey, created = Journey.objects.get_or_create(
        name=DEMO_JOURNEY_NAME,
        defaults={
            "folder": "Onboarding",
            "description": (
                "Welcomes new sign-ups, and nudges those who have not created a project "
                "two minutes later."
            ),
            "state": Journey.State.LIVE,
            "reentry": Journey.Reentry.NEVER,
            "goal_event_name": "project_created",
            "created_by": admin_user,
            "modified_by": admin_user,
        },
    )
    if not created:
        return  # its steps are whatever staff made of them since
    result.created.append(f"journey {journey.name}")
    # A sign-up starts it, and so may the API (workflows/triggerWorkflow).
    JourneyTrigger.objects.bulk_create(
        [
            JourneyTrigger(journey=journey, kind=JourneyTrigger.Kind.EVENT, event_name="signed_up"),
            JourneyTrigger(journey=journey, kind=JourneyTrigger.Kind.API),
        ]
    )
    SendMessageStep.objects.create(
        journey=journey,
        position=1,
        key="welcome",
        name="Send the welcome email",
        template=templates["Welcome email"],
    )
    # Minutes, not days, so that someone trying the demo sees the branch.
    DelayStep.objects.create(
        journey=journey,
        position=2,
        key="wait",
        name="Wait two minutes",
        amount=2,
        unit=DelayStep.Unit.MINUTES,
    )
    done = ExitStep.objects.create(journey=journey, position=5, key="done", name="Done")
    nudge = SendMessageStep.objects.create(
        journey=journey,
        position=4,
        key="nudge",
        name="Send the getting-started nudge",
        template=templates["Getting started nudge"],
    )
    condition = ConditionStep(
        journey=journey,
        position=3,
        key="created-project",
        name="Created a project?",
        kind=ConditionStep.Kind.EVENT_SINCE_ENTRY,
        event_name="project_created",
    )
    condition.full_clean()
    condition.save()
    step_connect(step=condition, targets={"yes": done, "no": nudge})


def _api_key(result, admin_user):
    if ApiKey.objects.filter(name=DEMO_API_KEY_NAME).exists():
        return
    _, raw_key = api_key_create(name=DEMO_API_KEY_NAME, created_by=admin_user)
    result.api_key_raw = raw_key
    result.created.append(f"API key {DEMO_API_KEY_NAME}")
