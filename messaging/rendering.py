"""Render message templates with the restricted engine.

The engine has no loaders and only messaging.template_library, and the
context holds plain JSON-like data (never model instances), so a template
can read the contact's fields, the triggering event and the links it is
given, and nothing else: not settings, not the environment, not files.

Each render is bounded (WAYMARK_RENDER_MAX_CHARS, WAYMARK_RENDER_TIMEOUT):
text, variables and tags count their output against the budget as they
render and every loop checks the clock at each turn, so a template that
would run for minutes or fill memory fails alone, with a RenderError, and
the worker or the web page rendering it goes on.

The data a template sees is a copy, in containers a template cannot change
(`{{ tags.pop }}` renders nothing), so nothing a render does reaches the
contact, the event or the next render. Strings written in template tags
(`{{ name|default:"<b>you</b>" }}`) are escaped like any other value: the
HTML sanitizer never saw them, so they must not become markup.
"""

import datetime
import re
from decimal import Decimal
from functools import cache, lru_cache
from html import unescape
from html.parser import HTMLParser

from django.conf import settings
from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import (
    FilterExpression,
    Node,
    NodeList,
    TextNode,
    Variable,
    VariableNode,
    tag_re,
)
from django.template.defaulttags import (
    CycleNode,
    FilterNode,
    FirstOfNode,
    ForNode,
    NowNode,
    RegroupNode,
    TemplateTagNode,
    VerbatimNode,
    WidthRatioNode,
    WithNode,
)
from django.template.smartif import TokenBase
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeData

from messaging.sanitizing import plain_text, sanitize_html, sanitize_html_report
from messaging.template_library import Budget, RenderLimitExceeded, current_budget

__all__ = [
    "RenderError",
    "TemplateSyntaxProblem",
    "check_syntax",
    "contact_context",
    "html_to_text",
    "missing_variables",
    "plain_text",
    "render_string",
    "render_text_into_html",
    "sanitize_html",
    "sanitize_html_report",
    "template_data",
    "template_variables",
]


class RestrictedEngine(Engine):
    default_builtins = ["messaging.template_library"]


ENGINE = RestrictedEngine(loaders=[], libraries={}, string_if_invalid="", autoescape=True)


class TemplateSyntaxProblem(ValueError):
    """A template that does not compile. `detail` is what is wrong, without the
    "Template error:" the message starts with."""

    def __init__(self, message, detail=""):
        super().__init__(message)
        self.detail = detail or message


class RenderError(ValueError):
    pass


def check_syntax(source: str) -> None:
    """Raise TemplateSyntaxProblem when `source` would not render as written."""
    try:
        _compile(source or "")
    except TemplateSyntaxError as exc:
        raise TemplateSyntaxProblem(f"Template error: {exc}", detail=str(exc)) from exc


def render_string(source: str, context: dict, *, html: bool) -> str:
    """Render `source` with (a read-only copy of) `context`; autoescaped when `html`.

    Raises RenderError for a template that does not compile, fails while
    rendering, or goes over the size or time limit.
    """
    if not source:
        return ""
    limits = settings.WAYMARK_RENDERING
    budget = Budget(max_chars=limits["MAX_CHARS"], timeout=limits["TIMEOUT"])
    token = current_budget.set(budget)
    try:
        template = _compile(source)
        data = Context(template_data(context), autoescape=html)
        data.push()  # what tags set ({% firstof ... as x %}) goes here, not into the data
        rendered = template.render(data)
        budget.check_size(len(rendered), "The template's output")
    except RenderLimitExceeded as exc:
        raise RenderError(str(exc)) from exc
    except Exception as exc:  # any failure to render is the template's, not the sender's
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        current_budget.reset(token)
    if html:
        rendered = _neutralise_script_urls(rendered)
    # A plain str, not the engine's SafeString: whoever shows a rendered
    # message in a page must escape it, and a SafeString would slip through.
    return str.__str__(rendered)


# A link whose URL a template wrote ({{ event.url }}, {{ a }}{{ b }}) was never
# seen by the sanitizer, and escaping does not stop "javascript:". Browsers
# drop blanks and control characters inside a scheme, so they are skipped here.
_URL_ATTRIBUTE_RE = re.compile(
    r"""(?P<name>\s(?:href|src|background|action|formaction|poster|cite|longdesc|lowsrc|dynsrc)
        \s*=\s*)(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>[^\s>"']+))""",
    re.IGNORECASE | re.VERBOSE,
)
_SCRIPT_URL_RE = re.compile(r"(?:javascript|vbscript|data):", re.IGNORECASE)
_RASTER_DATA_URL_RE = re.compile(r"data:image/(?:png|gif|jpe?g|webp);", re.IGNORECASE)


def _neutralise_script_urls(html: str) -> str:
    """`html` with every javascript:, vbscript: or data: URL (bar raster images)
    in a link or source attribute replaced by "#"."""
    if ":" not in html:
        return html

    def check(match):
        value = match.group("double") or match.group("single") or match.group("bare") or ""
        url = re.sub(r"[\x00-\x20\x7f]+", "", unescape(value))
        if _SCRIPT_URL_RE.match(url) and not _RASTER_DATA_URL_RE.match(url):
            return f'{match.group("name")}"#"'
        return match.group(0)

    return _URL_ATTRIBUTE_RE.sub(check, html)


def render_text_into_html(source: str, context: dict) -> str:
    """Render a plain-text field (the preheader) for a place in an HTML email:
    rendered as text, then escaped as a whole."""
    return str.__str__(escape(render_string(source, context, html=False)))


def contact_context(contact) -> dict:
    """What a template may know about a contact: its attributes at top level
    (Iterable style, `{{ firstName }}`) and the standard fields under `contact`."""
    attributes = template_data(contact.attributes or {})
    return {
        **attributes,
        "contact": _ReadOnlyDict(
            {
                **attributes,
                "email": contact.email or "",
                "user_id": contact.user_id or "",
                "phone": contact.phone,
                "first_name": contact.first_name,
                "last_name": contact.last_name,
                "locale": contact.locale,
                "timezone": contact.timezone,
            }
        ),
    }


# --- the data a template sees -------------------------------------------------------


def _refuse(self, *args, **kwargs):
    raise TypeError("Template data cannot be changed.")


# The template engine renders a method marked alters_data as nothing instead of calling it.
_refuse.alters_data = True


class _ReadOnlyDict(dict):
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):  # copy, deepcopy and pickle make it whole, not key by key
        return (type(self), (dict(self),))


class _ReadOnlyList(list):
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = clear = extend = insert = pop = remove = reverse = sort = _refuse

    def __reduce__(self):
        return (type(self), (list(self),))


_SCALARS = (bool, int, float, Decimal, datetime.date, datetime.time, datetime.timedelta)


def template_data(value):
    """A copy of `value` as a template may see it: dicts, lists, strings, numbers,
    dates and None, in containers a template cannot change. Anything else
    becomes its text, so no object's methods are within a template's reach."""
    if type(value) in (_ReadOnlyDict, _ReadOnlyList):
        return value  # already a copy nothing can change
    if isinstance(value, dict):
        return _ReadOnlyDict((str(key), template_data(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return _ReadOnlyList(template_data(item) for item in value)
    if isinstance(value, str):
        return str.__str__(value)  # never a SafeString: contact data is escaped
    if value is None or isinstance(value, _SCALARS):
        return value
    return str(value)


# --- compiling: the restricted engine's templates, bounded -------------------------------


class _Literal(str):
    """A string written in a template tag. It escapes like contact data, where
    Django would mark it safe."""

    def __html__(self):
        return escape(str.__str__(self))


class _LoopSource(FilterExpression):
    """What a {% for %} iterates over, with the clock checked at every turn."""

    __slots__ = ()

    def resolve(self, context, ignore_failures=False):
        values = super().resolve(context, ignore_failures)
        budget = current_budget.get()
        if values is None or budget is None:
            return values
        if not hasattr(values, "__len__"):
            values = list(values)
        return _CheckedSequence(values, budget)


class _CheckedSequence:
    def __init__(self, values, budget):
        self.values = values
        self.budget = budget

    def __len__(self):
        return len(self.values)

    def __iter__(self):
        for item in self.values:
            self.budget.check_time()
            yield item

    def __reversed__(self):
        for item in reversed(self.values):
            self.budget.check_time()
            yield item


class _CountedOutput:
    """Mixed into the nodes that write output themselves (text, variables, and
    tags without a body): each checks the clock and spends its output."""

    def render(self, context):
        budget = current_budget.get()
        if budget is None:
            return super().render(context)
        budget.check_time()
        output = super().render(context)
        budget.spend(len(output))
        return output


class _EscapedOutput:
    """For {% now %} and {% filter %}, which return what they make without
    escaping it: `{% filter add:"<b>" %}` must not write a tag."""

    def render(self, context):
        output = super().render(context)
        if context.autoescape and not isinstance(output, SafeData):
            output = conditional_escape(output)
        return output


class _EscapedVerbatim:
    """{% verbatim %} writes its text as typed. The sanitizer saw that text
    except what looks like template tags inside it, so those are escaped."""

    def render(self, context):
        output = super().render(context)
        if context.autoescape:
            output = tag_re.sub(lambda match: conditional_escape(match.group()), output)
        return output


_LEAVES = (
    TextNode,
    VariableNode,
    CycleNode,
    FirstOfNode,
    NowNode,
    TemplateTagNode,
    VerbatimNode,
    WidthRatioNode,
)


@cache
def _bounded_class(cls):
    mixins = []
    if issubclass(cls, (NowNode, FilterNode)):
        mixins.append(_EscapedOutput)
    if issubclass(cls, VerbatimNode):
        mixins.append(_EscapedVerbatim)
    if issubclass(cls, _LEAVES):
        mixins.append(_CountedOutput)
    if not mixins:
        return cls
    return type(f"Bounded{cls.__name__}", (*mixins, cls), {})


@lru_cache(maxsize=256)
def _compile(source: str):
    """The compiled template for `source`, made safe and bounded.

    A batch renders the same few templates thousands of times and compiling
    is most of the cost; compiled templates hold no render state, so one
    serves every render of it.
    """
    template = ENGINE.from_string(source)
    for node in _nodes(template.nodelist):
        if isinstance(node, TextNode):
            _check_closed(node.s)
        node.__class__ = _bounded_class(type(node))
        if isinstance(node, ForNode):
            node.sequence.__class__ = _LoopSource
        for expression in _expressions(node):
            _escape_literals(expression)
    return template


def _check_closed(text: str) -> None:
    for opener, closer, name in (("{{", "}}", "openvariable"), ("{%", "%}", "openblock")):
        at = text.find(opener)
        if at >= 0:
            line = text[at:].splitlines()[0]
            near = line if len(line) <= 40 else line[:40] + "…"
            raise TemplateSyntaxError(
                f'"{opener}" is not closed in "{near}": a tag must end with "{closer}" on the '
                f"line where it starts. To show {opener} as text, write "
                f"{{% templatetag {name} %}}."
            )


def _escape_literals(expression: FilterExpression) -> None:
    if not expression.is_var and isinstance(expression.var, str):
        expression.var = _Literal(expression.var)
    filters = []
    for func, args in expression.filters:
        checked = []
        for is_variable, arg in args:
            if not is_variable:
                check = getattr(func, "check_argument", None)
                if check:
                    try:
                        check(arg)
                    except RenderLimitExceeded as exc:
                        raise TemplateSyntaxError(str(exc)) from exc
                if isinstance(arg, str):
                    arg = _Literal(arg)
            checked.append((is_variable, arg))
        filters.append((func, checked))
    expression.filters = filters


def _nodes(nodelist):
    """Every node of a compiled template, depth first."""
    for node in nodelist:
        yield node
        for child in _child_nodelists(node):
            yield from _nodes(child)


def _parts(value):
    """The FilterExpressions and NodeLists held in a node's attribute value."""
    if isinstance(value, (FilterExpression, NodeList)):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _parts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _parts(item)
    elif isinstance(value, TokenBase):  # an {% if %} condition
        for item in vars(value).values():
            yield from _parts(item)


def _child_nodelists(node: Node):
    for value in vars(node).values():
        for part in _parts(value):
            if isinstance(part, NodeList):
                yield part


def _expressions(node: Node):
    for value in vars(node).values():
        for part in _parts(value):
            if isinstance(part, FilterExpression):
                yield part


# --- the variables a template uses -------------------------------------------------------

_BUILTIN_NAMES = frozenset({"True", "False", "None"})
_DEFAULT_FILTERS = frozenset({"default", "default_if_none"})


def template_variables(*sources: str) -> list[str]:
    """The context variables `sources` read (`contact.first_name`, `event.plan`),
    in the order they first appear. Names a template binds itself (loop
    variables, {% with %}, `as` names) are not context variables and are left
    out. Sources that do not compile contribute nothing."""
    found: dict[str, None] = {}
    for source in sources:
        if not source:
            continue
        try:
            template = _compile(source)
        except TemplateSyntaxError:
            continue
        _collect(template.nodelist, frozenset(), found)
    return list(found)


def missing_variables(names, context: dict) -> list[str]:
    """The `names` that render as nothing with `context`: absent, None or empty
    (an empty list, too: a loop over it writes nothing)."""
    data = Context(template_data(context))
    missing = []
    for name in names:
        try:
            value = _resolve(name, data)
        except Exception:  # absent, or a method that cannot be called: renders blank
            missing.append(name)
            continue
        if value is None or value == "" or (hasattr(value, "__len__") and not len(value)):
            missing.append(name)
    return missing


def _resolve(name, context):
    return Variable(name).resolve(context)


def _collect(nodelist, bound, found):
    bound = set(bound)
    for node in nodelist:
        if isinstance(node, ForNode):
            _collect_expression(node.sequence, bound, found)
            _collect(node.nodelist_loop, bound | set(node.loopvars) | {"forloop"}, found)
            _collect(node.nodelist_empty, bound, found)
            continue
        if isinstance(node, WithNode):
            for expression in node.extra_context.values():
                _collect_expression(expression, bound, found)
            _collect(node.nodelist, bound | set(node.extra_context), found)
            continue
        if isinstance(node, RegroupNode):
            # Its `expression` reads each item of `target` under the new name.
            _collect_expression(node.target, bound, found)
            bound.add(node.var_name)
            continue
        for expression in _expressions(node):
            # {% filter %} filters its own output, named "var".
            _collect_expression(expression, bound, found, skip_base=isinstance(node, FilterNode))
        for child in _child_nodelists(node):
            _collect(child, bound, found)
        for attribute in ("asvar", "variable_name"):
            name = getattr(node, attribute, None)
            if isinstance(name, str) and name:
                bound.add(name)


def _collect_expression(expression, bound, found, skip_base=False):
    variables = [] if skip_base or not expression.is_var else [expression.var]
    for _func, args in expression.filters:
        variables.extend(arg for is_variable, arg in args if is_variable)
    for variable in variables:
        if variable.literal is not None or not variable.lookups:
            continue
        if variable.lookups[0] in bound or variable.lookups[0] in _BUILTIN_NAMES:
            continue
        found.setdefault(variable.var, None)


# --- text parts ---------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    BLOCKS = {"p", "div", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "li", "table", "hr"}
    SKIP = {"head", "style", "script", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str | None] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.startswith("mailto:"):
                self.parts.append(f" ({href})")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """A readable plain-text part for an HTML email."""
    if not html:
        return ""
    parser = _TextExtractor()
    parser.feed(html)
    text = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
