import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from contacts.models import Contact, ContactList, Event, ListMembership, Segment
from journeys.models import (
    ConditionStep,
    DelayStep,
    Enrollment,
    ExitStep,
    Journey,
    JourneyTrigger,
    SendMessageStep,
    StepRun,
)
from journeys.services.graph import step_connect
from messaging.models import Engagement, Message, Suppression, Template
from subscriptions.models import (
    Channel,
    ConsentRecord,
    ConsentSource,
    MessageType,
    Subscription,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    is_staff = True
    password = factory.django.Password("correct horse battery")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    email = factory.Sequence(lambda n: f"contact{n}@example.com")
    attributes = factory.LazyFunction(lambda: {"firstName": "Ada"})


class ContactListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContactList

    name = factory.Sequence(lambda n: f"List {n}")


class ListMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ListMembership

    contact_list = factory.SubFactory(ContactListFactory)
    contact = factory.SubFactory(ContactFactory)


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    conditions = factory.LazyFunction(lambda: {"attribute": "plan", "op": "eq", "value": "pro"})


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    contact = factory.SubFactory(ContactFactory)
    name = "signed_up"
    occurred_at = factory.LazyFunction(timezone.now)
    client_event_id = factory.Sequence(lambda n: f"evt-{n}")


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ("name",)

    name = "Marketing email"
    medium = Channel.Medium.EMAIL
    kind = Channel.Kind.MARKETING


class MessageTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageType

    channel = factory.SubFactory(ChannelFactory)
    name = factory.Sequence(lambda n: f"Message type {n}")
    policy = MessageType.Policy.OPT_OUT


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Template

    name = factory.Sequence(lambda n: f"Template {n}")
    message_type = factory.SubFactory(MessageTypeFactory)
    subject = "Welcome, {{ contact.first_name }}!"
    html_body = "<p>Hi {{ contact.first_name }}, welcome aboard.</p>"


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    contact = factory.SubFactory(ContactFactory)
    template = factory.SubFactory(TemplateFactory)
    message_type = factory.SelfAttribute("template.message_type")
    channel = factory.SelfAttribute("template.message_type.channel")
    medium = Channel.Medium.EMAIL
    origin = Message.Origin.API
    idempotency_key = factory.Sequence(lambda n: f"test:{n}")
    to_address = factory.SelfAttribute("contact.email")


class EngagementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Engagement

    message = factory.SubFactory(MessageFactory)
    contact = factory.SelfAttribute("message.contact")
    kind = Engagement.Kind.OPENED
    source = Engagement.Source.TRACKING
    occurred_at = factory.LazyFunction(timezone.now)


class JourneyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Journey

    name = factory.Sequence(lambda n: f"Journey {n}")
    state = Journey.State.LIVE
    # Shorthands for the journey's one trigger (JourneyTriggerFactory adds
    # more): an event trigger on trigger_event_name ("" for none), or
    # trigger_type "list_join" (with trigger_list), "api" or "journey".
    trigger_type = JourneyTrigger.Kind.EVENT
    trigger_event_name = "signed_up"
    trigger_list = None

    @classmethod
    def _create(cls, model_class, *args, trigger_type, trigger_event_name, trigger_list, **kwargs):
        journey = super()._create(model_class, *args, **kwargs)
        if trigger_type == JourneyTrigger.Kind.EVENT and not trigger_event_name:
            return journey
        JourneyTrigger.objects.create(
            journey=journey,
            kind=trigger_type,
            event_name=trigger_event_name if trigger_type == JourneyTrigger.Kind.EVENT else "",
            contact_list=trigger_list,
        )
        return journey


class JourneyTriggerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JourneyTrigger

    journey = factory.SubFactory(JourneyFactory, trigger_event_name="")
    kind = JourneyTrigger.Kind.EVENT


class StepFactory(factory.django.DjangoModelFactory):
    """A step of any type; `connections={"yes": step, ...}` connects it once saved."""

    class Meta:
        abstract = True
        skip_postgeneration_save = True

    journey = factory.SubFactory(JourneyFactory)
    position = factory.Sequence(lambda n: n)

    @factory.post_generation
    def connections(obj, create, extracted, **kwargs):
        if create and extracted:
            step_connect(step=obj, targets=extracted)


class SendMessageStepFactory(StepFactory):
    class Meta:
        model = SendMessageStep

    key = factory.Sequence(lambda n: f"email-{n}")
    template = factory.SubFactory(TemplateFactory)


class DelayStepFactory(StepFactory):
    class Meta:
        model = DelayStep

    key = factory.Sequence(lambda n: f"delay-{n}")
    amount = 2
    unit = DelayStep.Unit.DAYS


class ConditionStepFactory(StepFactory):
    class Meta:
        model = ConditionStep

    key = factory.Sequence(lambda n: f"condition-{n}")
    kind = ConditionStep.Kind.EVENT_SINCE_ENTRY
    event_name = "project_created"


class ExitStepFactory(StepFactory):
    class Meta:
        model = ExitStep

    key = factory.Sequence(lambda n: f"exit-{n}")


class EnrollmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Enrollment

    journey = factory.SubFactory(JourneyFactory)
    contact = factory.SubFactory(ContactFactory)
    entered_at = factory.LazyFunction(timezone.now)
    next_run_at = factory.LazyFunction(timezone.now)


class StepRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StepRun

    enrollment = factory.SubFactory(EnrollmentFactory)
    step = factory.SubFactory(
        DelayStepFactory, journey=factory.SelfAttribute("..enrollment.journey")
    )
    sequence = factory.Sequence(lambda n: n)
    outcome = StepRun.Outcome.CONTINUED
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.SelfAttribute("started_at")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    contact = factory.SubFactory(ContactFactory)
    message_type = factory.SubFactory(MessageTypeFactory)
    status = Subscription.Status.SUBSCRIBED
    source = ConsentSource.API
    updated_at = factory.LazyFunction(timezone.now)


class ConsentRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentRecord

    contact = factory.SubFactory(ContactFactory)
    message_type = factory.SubFactory(MessageTypeFactory)
    action = ConsentRecord.Action.SUBSCRIBED
    source = ConsentSource.API


class SuppressionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Suppression

    address = factory.Sequence(lambda n: f"bounced{n}@example.com")
    reason = Suppression.Reason.HARD_BOUNCE


class DeviceTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "contacts.DeviceToken"

    contact = factory.SubFactory(ContactFactory)
    platform = "android"
    token = factory.Sequence(lambda n: f"fcm-token-{n}")


def medium_template(medium, **fields):
    """A saved template of a channel of `medium` (one channel per medium)."""
    channel = ChannelFactory(name=f"{medium} channel", medium=medium)
    return TemplateFactory(
        message_type=MessageTypeFactory(channel=channel),
        subject="",
        html_body="",
        **fields,
    )


def medium_message(template, contact=None, **fields):
    """A saved Message of `template`, as the pipeline hands it to a backend."""
    return MessageFactory(
        template=template,
        contact=contact or ContactFactory(),
        medium=template.message_type.channel.medium,
        **fields,
    )


def kept_as_sent(message):
    """Keep `message`'s content as the sending pipeline does when it is sent:
    rendered for its contact by its medium's backend, packed into SentContent."""
    from messaging.backends import get_backend
    from messaging.models import SentContent
    from messaging.services import message_render_again

    rendered = message_render_again(message=message)
    parts = get_backend(message.medium).content_to_keep(rendered)
    SentContent.objects.create(
        message=message, stored_at=message.sent_at, data=SentContent.pack(parts)
    )
    return message
