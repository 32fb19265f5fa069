"""Guard: every step type implements execute() and can be edited in the admin."""

from journeys.admin import StepInline
from journeys.models import Step


def all_step_types():
    found, pending = [], list(Step.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_step_type_implements_execute():
    missing = [cls.__name__ for cls in all_step_types() if "execute" not in vars(cls)]

    assert missing == []


def test_every_step_type_has_an_admin_inline():
    in_admin = {child.model for child in StepInline.child_inlines}

    assert set(all_step_types()) - in_admin == set()


def test_every_step_type_has_a_docstring():
    assert [cls.__name__ for cls in all_step_types() if not cls.__doc__] == []
