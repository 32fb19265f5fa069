"""Make what staff write safe to store and send, and keep what email designers use.

HTML bodies go through bleach's parser and sanitizer with an allowlist made
for email: table layouts, the box model, backgrounds, borders and rounded
corners, a `<style>` block in the head, and the document shell itself
(`<html>`, `<head>` with `<meta>`, `<title>` and `<style>`, `<body>` with its
attributes). bleach cleans fragments and drops that shell, so a document is
parsed as a document here and every part goes through the same filters.
CSS, in `style` attributes and in `<style>` blocks, is parsed with tinycss2
and kept declaration by declaration: allowed properties, values without
`expression()`, `javascript:` or bindings, and `url()` only to http(s).

Template tags (`{{ }}`, `{% %}`, `{# #}`) are not HTML, so before parsing
each one is swapped for a placeholder that suits where it stands (an HTML
comment between elements, a CSS comment in styles, a bare word inside an
attribute value), and swapped back afterwards. A tag between a tag's
attributes (`<td {% if x %}bgcolor="red"{% endif %}>`) cannot be kept safely
(a contact's data could become an `onclick`), so it is reported as a problem.

Plain-text fields (the preheader) keep only their text: `plain_text`.
"""

import re
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser

import tinycss2
from bleach import html5lib_shim
from bleach._vendor.html5lib.treebuilders import getTreeBuilder
from bleach.sanitizer import BleachSanitizerFilter
from django.template.base import tag_re

# --- what is kept --------------------------------------------------------------

ALLOWED_TAGS = frozenset({
    "a", "abbr", "address", "b", "bdi", "bdo", "big", "blockquote", "body", "br", "caption",
    "center", "cite", "code", "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em",
    "figcaption", "figure", "font", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "html",
    "i", "img", "ins", "kbd", "li", "mark", "meta", "ol", "p", "pre", "q", "s", "samp",
    "small", "span", "strike", "strong", "style", "sub", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "time", "title", "tr", "tt", "u", "ul", "var", "wbr",
})  # fmt: skip

# Removed together with everything inside them. The parser must know them (so
# that a script's text is read as script, not as the email's text).
DROPPED_WITH_CONTENT = frozenset({
    "applet", "audio", "base", "button", "canvas", "datalist", "dialog", "embed", "frame",
    "frameset", "iframe", "input", "link", "math", "noembed", "noframes", "noscript",
    "object", "optgroup", "option", "param", "plaintext", "portal", "script",
    "select", "source", "svg", "template", "textarea", "track", "video", "xmp",
})  # fmt: skip

_GLOBAL_ATTRIBUTES = frozenset({
    "align", "aria-hidden", "aria-label", "bgcolor", "border", "class", "dir", "height", "id",
    "lang", "role", "style", "title", "valign", "width",
})  # fmt: skip
_TAG_ATTRIBUTES = {
    "a": {"href", "name", "target", "rel"},
    "body": {"alink", "background", "leftmargin", "link", "marginheight", "marginwidth",
             "text", "topmargin", "vlink"},
    "col": {"span"},
    "colgroup": {"span"},
    "font": {"color", "face", "size"},
    "hr": {"noshade", "size"},
    "html": {"xmlns", "xmlns:o", "xmlns:v"},
    "img": {"alt", "hspace", "src", "vspace"},
    "li": {"type", "value"},
    "meta": {"charset", "content", "name"},
    "ol": {"start", "type"},
    "style": {"media", "type"},
    "table": {"background", "cellpadding", "cellspacing", "summary"},
    "td": {"background", "colspan", "headers", "nowrap", "rowspan", "scope"},
    "th": {"background", "colspan", "headers", "nowrap", "rowspan", "scope"},
    "ul": {"type"},
}  # fmt: skip
# <meta http-equiv="refresh"> could send a reader elsewhere; these two are what
# email layouts carry.
_META_HTTP_EQUIV = frozenset({"content-type", "x-ua-compatible"})
URL_PROTOCOLS = frozenset({"http", "https", "mailto", "tel"})
# A raster image in a data: URL cannot run script (an <img> never does), so an
# inline logo may stay in an <img src>. SVG may carry script if opened on its
# own, so it does not; nor does any other place that takes a URL.
_RASTER_DATA_URL = re.compile(r"data:image/(?:png|gif|jpe?g|webp);base64,[a-z0-9+/=]*\Z")

CSS_PROPERTIES = frozenset({
    # box model and layout
    "box-sizing", "clear", "display", "float", "height", "max-height", "max-width",
    "min-height", "min-width", "overflow", "overflow-x", "overflow-y", "vertical-align",
    "visibility", "width", "object-fit", "object-position",
    "margin", "margin-bottom", "margin-left", "margin-right", "margin-top",
    "padding", "padding-bottom", "padding-left", "padding-right", "padding-top",
    # tables and lists
    "border-collapse", "border-spacing", "caption-side", "empty-cells", "table-layout",
    "list-style", "list-style-image", "list-style-position", "list-style-type",
    # backgrounds, borders, shadows
    "background", "background-color", "background-image", "background-position",
    "background-repeat", "background-size", "background-clip", "background-origin",
    "border", "border-bottom", "border-left", "border-right", "border-top",
    "border-color", "border-style", "border-width",
    "border-bottom-color", "border-bottom-style", "border-bottom-width",
    "border-left-color", "border-left-style", "border-left-width",
    "border-right-color", "border-right-style", "border-right-width",
    "border-top-color", "border-top-style", "border-top-width",
    "border-radius", "border-bottom-left-radius", "border-bottom-right-radius",
    "border-top-left-radius", "border-top-right-radius",
    "box-shadow", "opacity", "outline", "outline-color", "outline-offset", "outline-style",
    "outline-width",
    # text
    "color", "direction", "font", "font-family", "font-feature-settings", "font-size",
    "font-stretch", "font-style", "font-variant", "font-weight", "hyphens", "letter-spacing",
    "line-height", "overflow-wrap", "tab-size", "text-align", "text-decoration",
    "text-decoration-color", "text-decoration-line", "text-decoration-style",
    "text-indent", "text-overflow", "text-shadow", "text-transform", "text-underline-offset",
    "unicode-bidi", "white-space", "word-break", "word-spacing", "word-wrap",
    # client quirks
    "color-scheme", "supported-color-schemes", "text-size-adjust", "-ms-text-size-adjust",
    "-webkit-text-size-adjust", "-webkit-font-smoothing", "-moz-osx-font-smoothing",
    "-ms-interpolation-mode",
})  # fmt: skip
# Outlook's own properties (mso-line-height-rule, mso-table-lspace, ...) mean
# nothing to other clients; their values get the same checks as any other.
_CSS_VENDOR_PREFIX = "mso-"
_FONT_FACE_PROPERTIES = frozenset(
    {"font-display", "font-family", "font-stretch", "font-style", "font-weight", "src",
     "unicode-range"}
)  # fmt: skip
_CSS_FUNCTIONS = frozenset({
    "calc", "clamp", "format", "hsl", "hsla", "linear-gradient", "local", "max", "min",
    "radial-gradient", "repeating-linear-gradient", "repeating-radial-gradient", "rgb",
    "rgba", "var",
})  # fmt: skip
_CSS_NESTING_AT_RULES = frozenset({"media", "supports"})
# Checked on the declaration as written out, after tinycss2 decoded any escapes.
_CSS_FORBIDDEN_TEXT = ("expression", "javascript:", "vbscript:", "-moz-binding", "behavior", "<")


@dataclass(frozen=True)
class Sanitized:
    """The result of `sanitize_html_report`: the safe HTML, what was taken out
    (for the person who wrote it), and template tags that could not be kept."""

    html: str
    removed: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def sanitize_html(html: str) -> str:
    """Keep the markup email clients render; drop scripts, handlers and unsafe URLs."""
    return sanitize_html_report(html).html


def sanitize_html_report(html: str) -> Sanitized:
    if not html:
        return Sanitized("")
    protected = _protect_template_tags(html)
    removed = _Removed()
    removed.add_all(
        f"<{name}> tags (their content is kept)"
        for name in protected.tag_names - ALLOWED_TAGS - DROPPED_WITH_CONTENT
    )
    css = _CssSanitizer(protected.placeholder_re, removed)
    parser = html5lib_shim.BleachHTMLParser(
        tags=ALLOWED_TAGS | DROPPED_WITH_CONTENT,
        strip=True,
        consume_entities=False,
        namespaceHTMLElements=False,
        # The whole tree, so a document keeps its doctype.
        tree=getTreeBuilder("etree", fullTree=True),
    )
    if _DOCUMENT_RE.search(protected.text):
        tree = parser.parse(protected.text)
    else:
        tree = parser.parseFragment(protected.text)
    stream = html5lib_shim.getTreeWalker("etree")(tree)
    stream = _DropElements(stream, protected.placeholder_re, removed)
    stream = _StyleElements(stream, css)
    stream = _Sanitizer(
        source=stream,
        allowed_tags=ALLOWED_TAGS,
        attributes=_attribute_allowed,
        allowed_protocols=URL_PROTOCOLS,
        strip_disallowed_tags=True,
        strip_html_comments=False,  # _DropElements keeps only the placeholders
        css_sanitizer=css,
        placeholder_re=protected.placeholder_re,
        removed=removed,
    )
    serialized = _SERIALIZER.render(stream)
    return Sanitized(
        html=protected.restore(serialized),
        removed=tuple(removed),
        problems=tuple(protected.problems),
    )


def plain_text(value: str) -> str:
    """The text of `value` on one line: tags, comments, scripts and styles removed,
    character references decoded (`&amp;` is `&`). For fields that are text, not
    HTML (the preheader); whoever puts the text into HTML escapes it."""
    text = value or ""
    for _ in range(3):  # decoded references may spell a tag again: "&lt;b&gt;"
        extractor = _TextExtractor()
        extractor.feed(text)
        extractor.close()
        stripped = "".join(extractor.parts)
        if stripped == text:
            break
        text = stripped
    # What still looks like the start of a tag ("<b" left unclosed) is not text anyone meant.
    text = re.sub(r"<(?=[A-Za-z/!?])", "", text)
    return " ".join(text.split())


# --- template tags ----------------------------------------------------------------

_DOCUMENT_RE = re.compile(r"<(?:!doctype|html|head|body)[\s/>]", re.IGNORECASE)
_RAW_TEXT_ELEMENTS = frozenset(
    {"iframe", "noembed", "noframes", "noscript", "plaintext", "script", "style", "textarea",
     "title", "xmp"}
)  # fmt: skip


class _ProtectedSource:
    """HTML with its template tags swapped for placeholders, and the way back."""

    def __init__(self):
        nonce = secrets.token_hex(4)
        self.word = f"wmt{nonce}n"
        self.placeholder_re = re.compile(rf"{self.word}(\d+)x")
        self.originals: list[str] = []
        self.problems: list[str] = []
        self.tag_names: set[str] = set()
        self.text = ""

    def placeholder(self, tag: str) -> str:
        self.originals.append(tag)
        return f"{self.word}{len(self.originals) - 1}x"

    def restore(self, html: str) -> str:
        pattern = re.compile(
            rf"<!--{self.placeholder_re.pattern}-->"
            rf"|/\*{self.placeholder_re.pattern}\*/"
            rf"|{self.placeholder_re.pattern}"
        )

        def original(match):
            index = next(group for group in match.groups() if group is not None)
            return self.originals[int(index)]

        return pattern.sub(original, html)


_TAG_NAME = re.compile(r"[^\s/>]*")
_BEFORE_ATTRIBUTE = re.compile(r"[\s/]*")
_ATTRIBUTE_NAME = re.compile(r"[^\s/>=]*")
_BLANKS = re.compile(r"\s*")
_UNQUOTED_VALUE = re.compile(r"[^\s>]*")


class _Scanner:
    """Follows the HTML tokenizer's states closely enough to know, at each
    template tag, whether it stands in text, in a style, inside an attribute's
    value, or between attributes."""

    def __init__(self):
        self.state = "data"
        self.tag_name = ""
        self.is_end_tag = False
        self.attribute = ""
        self.raw_text_element = ""
        self.tag_names: set[str] = set()

    def feed(self, text: str) -> None:  # one branch per tokenizer state
        i, n = 0, len(text)
        while i < n:
            state = self.state
            if state == "data":
                j = text.find("<", i)
                if j < 0:
                    return
                i = self._tag_open(text, j)
            elif state == "comment":
                j = text.find("-->", i)
                if j < 0:
                    return
                self.state, i = "data", j + 3
            elif state in ("bogus", "end_tag"):
                j = text.find(">", i)
                if j < 0:
                    return
                self.state, i = "data", j + 1
            elif state == "raw_text":
                match = re.compile(
                    rf"</{re.escape(self.raw_text_element)}(?=[\s/>])", re.IGNORECASE
                ).search(text, i)
                if not match:
                    return
                self.state, i = "end_tag", match.end()
            elif state == "tag_name":
                match = _TAG_NAME.match(text, i)
                self.tag_name += match.group().lower()
                i = match.end()
                if i < n:
                    self.state = "end_tag" if self.is_end_tag else "attributes"
                    if not self.is_end_tag:
                        self.tag_names.add(self.tag_name)
            elif state == "attributes":
                match = _BEFORE_ATTRIBUTE.match(text, i)
                i = match.end()
                if i < n:
                    if text[i] == ">":
                        i = self._end_of_start_tag(i)
                    else:
                        self.state, self.attribute = "attribute_name", ""
            elif state == "attribute_name":
                match = _ATTRIBUTE_NAME.match(text, i)
                self.attribute += match.group().lower()
                i = match.end()
                if i < n:
                    self.state = "after_attribute_name"
            elif state == "after_attribute_name":
                match = _BLANKS.match(text, i)
                i = match.end()
                if i < n:
                    if text[i] == "=":
                        self.state, i = "before_value", i + 1
                    elif text[i] == ">":
                        i = self._end_of_start_tag(i)
                    elif text[i] == "/":
                        self.state, i = "attributes", i + 1
                    else:
                        self.state, self.attribute = "attribute_name", ""
            elif state == "before_value":
                match = _BLANKS.match(text, i)
                i = match.end()
                if i < n:
                    if text[i] == '"':
                        self.state, i = "value_double", i + 1
                    elif text[i] == "'":
                        self.state, i = "value_single", i + 1
                    elif text[i] == ">":
                        i = self._end_of_start_tag(i)
                    else:
                        self.state = "value_unquoted"
            elif state in ("value_double", "value_single"):
                j = text.find('"' if state == "value_double" else "'", i)
                if j < 0:
                    return
                self.state, i = "attributes", j + 1
            elif state == "value_unquoted":
                match = _UNQUOTED_VALUE.match(text, i)
                i = match.end()
                if i < n:
                    if text[i] == ">":
                        i = self._end_of_start_tag(i)
                    else:
                        self.state = "attributes"

    def _tag_open(self, text, j):
        following = text[j + 1 : j + 4]
        if following.startswith("!--"):
            self.state = "comment"
            return j + 4
        if following[:1] in ("!", "?"):
            self.state = "bogus"
            return j + 2
        if following[:1] == "/" and following[1:2].isascii() and following[1:2].isalpha():
            self.state, self.tag_name, self.is_end_tag = "tag_name", "", True
            return j + 2
        if following[:1].isascii() and following[:1].isalpha():
            self.state, self.tag_name, self.is_end_tag = "tag_name", "", False
            return j + 1
        return j + 1

    def _end_of_start_tag(self, i):
        if self.tag_name in _RAW_TEXT_ELEMENTS:
            self.state, self.raw_text_element = "raw_text", self.tag_name
        else:
            self.state = "data"
        return i + 1

    def where(self) -> str:
        """What a template tag at this point stands in: text, css, value, or between."""
        state = self.state
        if state == "data":
            return "markup"
        if state == "raw_text":
            return "css" if self.raw_text_element == "style" else "value"
        if state in ("value_double", "value_single", "value_unquoted", "before_value"):
            if state == "before_value":
                self.state = "value_unquoted"
            return "css" if self.attribute == "style" else "value"
        if state in ("comment", "bogus", "end_tag"):
            return "value"  # removed with what holds it
        return "between"


def _protect_template_tags(html: str) -> _ProtectedSource:
    protected = _ProtectedSource()
    scanner = _Scanner()
    parts = []
    for index, piece in enumerate(tag_re.split(html)):
        if index % 2 == 0:
            scanner.feed(piece)
            parts.append(piece)
            continue
        where = scanner.where()
        if where == "between":
            protected.problems.append(
                f"The template tag {piece} stands between the attributes of "
                f"<{scanner.tag_name}>, where it cannot be kept safely. Put it inside an "
                'attribute\'s quoted value (class="{% if vip %}vip{% endif %}"), or around '
                "the whole element."
            )
            continue
        word = protected.placeholder(piece)
        parts.append({"markup": f"<!--{word}-->", "css": f"/*{word}*/"}.get(where, word))
    protected.text = "".join(parts)
    protected.tag_names = scanner.tag_names
    return protected


# --- the HTML filters ---------------------------------------------------------------


class _Removed:
    """What sanitizing took out, each kind once, in the order met."""

    def __init__(self):
        self._items: dict[str, None] = {}

    def add(self, item: str) -> None:
        self._items.setdefault(item, None)

    def add_all(self, items) -> None:
        for item in sorted(items):
            self.add(item)

    def __iter__(self):
        return iter(self._items)


def _attribute_allowed(tag, name, value):
    if name in _GLOBAL_ATTRIBUTES or name in _TAG_ATTRIBUTES.get(tag, ()):
        return True
    return tag == "meta" and name == "http-equiv" and value.strip().lower() in _META_HTTP_EQUIV


def _normalized_url(value: str) -> str:
    """The URL the way bleach compares it: references decoded, blanks, control
    and non-ASCII characters removed, lower case."""
    value = html5lib_shim.convert_entities(value)
    value = re.sub(r"[`\000-\040\177-\240\s]+", "", value)
    return re.sub(r"[^\x00-\x7f]", "", value).lower()


_SCHEME_RE = re.compile(r"([^:/?#]*):")


class _DropElements(html5lib_shim.Filter):
    """Drops the elements in DROPPED_WITH_CONTENT with all they hold, and
    every comment that is not a template tag's placeholder; tidies the doctype."""

    def __init__(self, source, placeholder_re, removed):
        super().__init__(source)
        self.placeholder_re = placeholder_re
        self.removed = removed

    def __iter__(self):
        depth = 0
        for token in super().__iter__():
            kind = token["type"]
            if depth:
                if kind == "StartTag":
                    depth += 1
                elif kind == "EndTag":
                    depth -= 1
                continue
            if kind in ("StartTag", "EmptyTag") and token["name"] in DROPPED_WITH_CONTENT:
                self.removed.add(f"<{token['name']}> elements with their content")
                depth = 1 if kind == "StartTag" else 0
                continue
            if kind == "Comment" and not self.placeholder_re.fullmatch(token["data"]):
                self.removed.add("HTML comments (Outlook conditional comments too)")
                continue
            if kind == "Doctype":
                token = _tidy_doctype(token)
            yield token


def _tidy_doctype(token):
    def fine(identifier):
        return identifier if identifier and re.fullmatch(r"[\w\s/.:\-]*", identifier) else None

    return {
        "type": "Doctype",
        "name": "html",
        "publicId": fine(token.get("publicId")),
        "systemId": fine(token.get("systemId")),
    }


class _StyleElements(html5lib_shim.Filter):
    """Replaces the text of each <style> element with its sanitized CSS."""

    def __init__(self, source, css):
        super().__init__(source)
        self.css = css

    def __iter__(self):
        inside, text = False, []
        for token in super().__iter__():
            kind = token["type"]
            if inside and kind in ("Characters", "SpaceCharacters"):
                text.append(token["data"])
                continue
            if inside and kind == "EndTag" and token["name"] == "style":
                inside = False
                css = self.css.sanitize_stylesheet("".join(text))
                if css:
                    yield {"type": "Characters", "data": css}
            elif kind == "StartTag" and token["name"] == "style":
                inside, text = True, []
            yield token


class _Sanitizer(BleachSanitizerFilter):
    """bleach's filter, plus: template-decided URLs, raster data: images in
    <img src>, and a record of what it removed."""

    def __init__(self, *, placeholder_re, removed, **kwargs):
        super().__init__(**kwargs)
        self.placeholder_re = placeholder_re
        self.removed = removed
        self._tag = ""

    def allow_token(self, token):
        self._tag = token["name"]
        before = dict(token.get("data") or {})
        token = super().allow_token(token)
        after = token.get("data") or {}
        if after.get((None, "style")) == "":
            del after[(None, "style")]
        for (namespace, name), value in before.items():
            if (namespace, name) in after or (name == "style" and (None, "style") in before):
                continue
            if (namespace, name) in self.attr_val_is_uri and self.attr_filter(
                token["name"], name, value
            ):
                self.removed.add(f"unsafe URLs in {name} of <{token['name']}>")
            else:
                self.removed.add(f"{name} attributes of <{token['name']}>")
        return token

    def sanitize_uri_value(self, value, allowed_protocols):
        if self.placeholder_re.search(value):
            return self._sanitize_template_url(value, allowed_protocols)
        if self._tag == "img" and _RASTER_DATA_URL.match(_normalized_url(value)):
            return value
        return super().sanitize_uri_value(value, allowed_protocols)

    def _sanitize_template_url(self, value, allowed_protocols):
        """A URL written partly with template tags. When its literal start already
        settles the scheme, that start is checked; otherwise the template decides
        the scheme, and every literal piece that would complete one ("{{ x }}:",
        "java{{ x }}script:") must be an allowed scheme on its own."""
        pieces = self.placeholder_re.split(value)[::2]
        start = _normalized_url(pieces[0])
        if re.search(r"[:/?#]", start):
            checked = super().sanitize_uri_value(pieces[0], allowed_protocols)
            return value if checked is not None else None
        for piece in pieces[1:]:
            scheme = _SCHEME_RE.match(_normalized_url(piece))
            if scheme and scheme.group(1) not in allowed_protocols:
                return None
        return value


class _Serializer(html5lib_shim.BleachHTMLSerializer):
    # The text of a <style> is CSS: "a > b" must stay "a > b". _StyleElements
    # guarantees it holds no "<", so it cannot close the element early.
    escape_rcdata = False


_SERIALIZER = _Serializer(
    quote_attr_values="always",
    omit_optional_tags=False,
    escape_lt_in_attrs=True,
    resolve_entities=False,
    sanitize=False,
    alphabetical_attributes=False,
)


# --- CSS ------------------------------------------------------------------------


class _CssSanitizer:
    """For bleach (`sanitize_css`, a style attribute) and for <style> blocks."""

    def __init__(self, placeholder_re, removed):
        self.placeholder_re = placeholder_re
        self.removed = removed

    def sanitize_css(self, style: str) -> str:
        nodes = tinycss2.parse_declaration_list(style, skip_comments=False)
        return self._declarations(nodes, CSS_PROPERTIES).strip()

    def sanitize_stylesheet(self, css: str) -> str:
        rules = tinycss2.parse_stylesheet(css, skip_comments=False)
        sanitized = self._rules(rules)
        if "<" in sanitized:  # cannot happen: every kept piece was checked for it
            self.removed.add("a <style> block that could not be read")
            return ""
        return sanitized

    def _rules(self, nodes) -> str:
        out = []
        for node in nodes:
            if node.type == "whitespace":
                out.append(node.value)
            elif node.type == "comment":
                if self.placeholder_re.fullmatch(node.value):
                    out.append(node.serialize())
            elif node.type == "qualified-rule":
                prelude = tinycss2.serialize(node.prelude)
                if not self._text_ok(prelude):
                    self.removed.add(f"the CSS rule for {prelude.strip()[:60]}")
                    continue
                body = tinycss2.parse_declaration_list(node.content, skip_comments=False)
                declarations = self._declarations(body, CSS_PROPERTIES)
                if declarations.strip() or not tinycss2.serialize(node.content).strip():
                    out.append(f"{prelude}{{{declarations}}}")
            elif node.type == "at-rule":
                out.append(self._at_rule(node))
        return "".join(out)

    def _at_rule(self, node) -> str:
        prelude = tinycss2.serialize(node.prelude)
        name = node.lower_at_keyword
        if node.content is None or not self._text_ok(prelude):
            self.removed.add(f"CSS @{name} rules")
            return ""
        if name in _CSS_NESTING_AT_RULES:
            inner = tinycss2.parse_rule_list(node.content, skip_comments=False)
            return f"@{node.at_keyword}{prelude}{{{self._rules(inner)}}}"
        if name == "font-face":
            body = tinycss2.parse_declaration_list(node.content, skip_comments=False)
            return (
                f"@{node.at_keyword}{prelude}{{{self._declarations(body, _FONT_FACE_PROPERTIES)}}}"
            )
        self.removed.add(f"CSS @{name} rules")
        return ""

    def _declarations(self, nodes, allowed) -> str:
        kept = []
        for node in nodes:
            if node.type == "declaration":
                name = node.lower_name
                if name not in allowed and not name.startswith(_CSS_VENDOR_PREFIX):
                    self.removed.add(f"the CSS property {name}")
                elif not self._value_ok(node.value) or not self._text_ok(node.serialize()):
                    self.removed.add(f"unsafe values of the CSS property {name}")
                else:
                    kept.append(node)
            elif node.type == "whitespace" or (
                node.type == "comment" and self.placeholder_re.fullmatch(node.value)
            ):
                kept.append(node)
        return tinycss2.serialize(kept)

    def _value_ok(self, tokens) -> bool:
        return all(self._token_ok(token) for token in tokens)

    def _token_ok(self, token) -> bool:
        if token.type == "url":
            return self._url_ok(token.value)
        if token.type == "function" and token.lower_name == "url":
            arguments = [a for a in token.arguments if a.type != "whitespace"]
            return (
                len(arguments) == 1
                and arguments[0].type == "string"
                and self._url_ok(arguments[0].value)
            )
        if token.type == "function":
            return token.lower_name in _CSS_FUNCTIONS and self._value_ok(token.arguments)
        if token.type in ("() block", "[] block"):
            return self._value_ok(token.content)
        return token.type not in ("{} block", "at-keyword", "error")

    def _url_ok(self, url: str) -> bool:
        normalized = _normalized_url(url)
        # A URL the template writes ("url({{ event.image }})") is the template's.
        return normalized.startswith(("https://", "http://")) or bool(
            self.placeholder_re.match(url.strip().removeprefix("/*"))
        )

    def _text_ok(self, text: str) -> bool:
        lowered = text.lower()
        return not any(forbidden in lowered for forbidden in _CSS_FORBIDDEN_TEXT)


class _TextExtractor(HTMLParser):
    SKIP = frozenset({"script", "style", "title", "head", "template", "noscript"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)
