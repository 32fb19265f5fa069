"""The only tags and filters message templates may use.

Message templates are written by staff and rendered with contact data that
integrators and subscribers supply, so the library leaves out everything
that reaches beyond the context (debug, load, include, url) or turns off
escaping (autoescape, safe, safeseq).
"""

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
FORBIDDEN_FILTERS = {"safe", "safeseq", "pprint"}

register = Library()
register.tags.update(
    {name: tag for name, tag in defaulttags.register.tags.items() if name in ALLOWED_TAGS}
)
register.filters.update(
    {
        name: func
        for name, func in defaultfilters.register.filters.items()
        if name not in FORBIDDEN_FILTERS
    }
)
