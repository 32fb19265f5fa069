"""The only tags and filters message templates may use, and the limits they run under.

Message templates are written by staff and rendered with contact data that
integrators and subscribers supply, so the library leaves out everything
that reaches beyond the context (debug, load, include, url) or turns off
escaping (autoescape, safe, safeseq), and every filter is bounded: one
whose argument sets the size of its output (ljust, rjust, center,
stringformat, floatformat, join) refuses an argument that would blow it up,
and any filter whose output outgrows the render's budget stops the render.

The budget of the render under way (messaging.rendering.render_string sets
it) is in `current_budget`; rendering outside render_string has none and
only the fixed argument caps apply.
"""

import contextvars
import functools
import re
import time
from dataclasses import dataclass

from django.template import Library, defaultfilters, defaulttags

ALLOWED_TAGS = {
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
}
# json_script writes a <script> element into the message.
FORBIDDEN_FILTERS = {"safe", "safeseq", "pprint", "json_script"}

# Padding widths, format widths and decimal places above this are refused:
# text emails align columns a few dozen characters wide.
MAX_WIDTH = 1000


class RenderLimitExceeded(Exception):
    """A render went over one of its limits; the message says which."""


@dataclass
class Budget:
    """What one render may still spend: characters of output, and time."""

    max_chars: int
    timeout: float
    deadline: float = 0.0
    used: int = 0

    def __post_init__(self):
        self.deadline = time.monotonic() + self.timeout

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                f"The template took more than {self.timeout:g} seconds to render "
                "(WAYMARK_RENDER_TIMEOUT). Look for loops over long lists, or loops in loops."
            )

    def spend(self, chars: int) -> None:
        self.used += chars
        if self.used > self.max_chars:
            raise self.too_large()

    def check_size(self, size: int, what: str) -> None:
        if size > self.max_chars:
            raise self.too_large(what)

    def too_large(self, what: str = "The template's output") -> RenderLimitExceeded:
        return RenderLimitExceeded(
            f"{what} is longer than {self.max_chars:,} characters, the most one message "
            "field may hold (WAYMARK_RENDER_MAX_CHARS)."
        )


current_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "waymark_render_budget", default=None
)


def _width_check(name):
    def check(arg):
        try:
            width = int(arg)
        except (TypeError, ValueError):
            return  # the filter itself deals with nonsense
        if abs(width) > MAX_WIDTH:
            raise RenderLimitExceeded(
                f'{name}:"{arg}" asks for {abs(width):,} characters; the most is {MAX_WIDTH:,}.'
            )

    return check


def _format_check(name):
    def check(arg):
        for number in re.findall(r"\d+", str(arg)):
            if int(number) > MAX_WIDTH:
                raise RenderLimitExceeded(
                    f'{name}:"{arg}" asks for {int(number):,} characters; the most is '
                    f"{MAX_WIDTH:,}."
                )

    return check


# Filters whose argument sets how large their output is.
ARGUMENT_CHECKS = {
    "center": _width_check("center"),
    "ljust": _width_check("ljust"),
    "rjust": _width_check("rjust"),
    "floatformat": _format_check("floatformat"),
    "stringformat": _format_check("stringformat"),
}


def _bounded(name, func):
    """`func`, refusing arguments that blow up its output and outputs over budget."""
    check_argument = ARGUMENT_CHECKS.get(name)

    @functools.wraps(func)  # keeps is_safe, needs_autoescape and the signature Django checks
    def bounded(value, *args, **kwargs):
        budget = current_budget.get()
        if check_argument and args:
            check_argument(args[0])
        if name == "join" and budget and args and hasattr(value, "__len__"):
            budget.check_size(len(str(args[0])) * len(value), f'join:"{args[0]}"')
        result = func(value, *args, **kwargs)
        if budget and isinstance(result, (str, list, tuple)):
            budget.check_size(len(result), f"The output of |{name}")
        return result

    bounded.check_argument = check_argument
    return bounded


register = Library()
register.tags.update(
    {name: tag for name, tag in defaulttags.register.tags.items() if name in ALLOWED_TAGS}
)
register.filters.update(
    {
        name: _bounded(name, func)
        for name, func in defaultfilters.register.filters.items()
        if name not in FORBIDDEN_FILTERS
    }
)
