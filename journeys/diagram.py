"""A journey drawn as SVG on the server: steps in layers from the first, the
labelled connections between them, and each step's figures.

No script and no external resource: the admin page embeds the markup as it
is. Layers follow the longest path from the first step (connections that
loop back are drawn curving up the right-hand side); within a layer, steps
sit near the steps that lead to them.
"""

from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import mark_safe

from journeys.selectors import StepMetrics

BOX_W, BOX_H = 240, 92
GAP_X, GAP_Y = 36, 64
MARGIN = 24


@dataclass
class Node:
    step: object
    index: int  # order on the page (the step's inline row)
    layer: int = 0
    column: float = 0
    x: float = 0
    y: float = 0


@dataclass
class Edge:
    source: int
    target: int
    label: str
    back: bool = False


@dataclass
class Layout:
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    width: float = 0
    height: float = 0


def journey_layout(steps) -> Layout:
    """Positions for `steps` (journeys.services.graph.JourneySteps)."""
    layout = Layout()
    ordered = steps.ordered
    if not ordered:
        return layout
    for index, step in enumerate(ordered):
        layout.nodes[step.pk] = Node(step=step, index=index)
    for step in ordered:
        for label in step.connection_labels():
            target = steps.following(step, label)
            if target is not None:
                layout.edges.append(Edge(step.pk, target.pk, label))
    _mark_back_edges(layout, ordered)
    _assign_layers(layout, ordered)
    _place(layout)
    return layout


def _mark_back_edges(layout, ordered):
    """Edges that close a loop (to a step still on the walk's path)."""
    outgoing = {}
    for edge in layout.edges:
        outgoing.setdefault(edge.source, []).append(edge)
    state = {}
    for root in (step.pk for step in ordered):
        if root in state:
            continue
        stack = [(root, iter(outgoing.get(root, [])))]
        state[root] = "open"
        while stack:
            node, edges = stack[-1]
            edge = next(edges, None)
            if edge is None:
                state[node] = "done"
                stack.pop()
            elif state.get(edge.target) == "open":
                edge.back = True
            elif edge.target not in state:
                state[edge.target] = "open"
                stack.append((edge.target, iter(outgoing.get(edge.target, []))))


def _assign_layers(layout, ordered):
    forward = [edge for edge in layout.edges if not edge.back]
    incoming = dict.fromkeys(layout.nodes, 0)
    for edge in forward:
        incoming[edge.target] += 1
    ready = [step.pk for step in ordered if incoming[step.pk] == 0]
    while ready:  # longest path, in topological order
        pk = ready.pop(0)
        for edge in forward:
            if edge.source == pk:
                target = layout.nodes[edge.target]
                target.layer = max(target.layer, layout.nodes[pk].layer + 1)
                incoming[edge.target] -= 1
                if incoming[edge.target] == 0:
                    ready.append(edge.target)


def _place(layout):
    layers = {}
    for node in layout.nodes.values():
        layers.setdefault(node.layer, []).append(node)
    parents = {}
    for edge in layout.edges:
        if not edge.back:
            parents.setdefault(edge.target, []).append(edge.source)
    widest = max(len(nodes) for nodes in layers.values())
    for layer in sorted(layers):
        nodes = layers[layer]

        def near_parents(node):
            columns = [layout.nodes[p].column for p in parents.get(node.step.pk, [])]
            return (sum(columns) / len(columns) if columns else node.index, node.index)

        nodes.sort(key=near_parents)
        offset = (widest - len(nodes)) / 2
        for column, node in enumerate(nodes):
            node.column = offset + column
            node.x = MARGIN + node.column * (BOX_W + GAP_X)
            node.y = MARGIN + layer * (BOX_H + GAP_Y)
    layout.width = 2 * MARGIN + widest * (BOX_W + GAP_X) + 40
    layout.height = 2 * MARGIN + (max(layers) + 1) * (BOX_H + GAP_Y)


def journey_svg(*, steps, metrics, link=None) -> str:
    """The diagram as an <svg> element. `metrics` is {step id: StepMetrics};
    `link(node)` gives the address a step's box opens (its editor)."""
    layout = journey_layout(steps)
    if not layout.nodes:
        return mark_safe('<p class="help">No steps yet: add them below.</p>')
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="journey-diagram" role="img" '
        f'width="{layout.width:.0f}" height="{layout.height:.0f}" '
        f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" font-family="sans-serif" '
        f'font-size="12"><title>Journey diagram</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#555"/></marker></defs>',
    ]
    for edge in layout.edges:
        parts.append(_edge_svg(layout, edge))
    for node in layout.nodes.values():
        parts.append(_node_svg(node, metrics.get(node.step.pk), link))
    parts.append("</svg>")
    # Every text in it went through escape(): the markup can be shown as is.
    return mark_safe("".join(parts))


def _edge_svg(layout, edge):
    source, target = layout.nodes[edge.source], layout.nodes[edge.target]
    label = "" if edge.label == "next" else escape(edge.label)
    if edge.back:
        x1, y1 = source.x + BOX_W, source.y + BOX_H / 2
        x2, y2 = target.x + BOX_W, target.y + BOX_H / 2
        bulge = max(x1, x2) + GAP_X
        path = f"M {x1:.0f} {y1:.0f} C {bulge:.0f} {y1:.0f}, {bulge:.0f} {y2:.0f}, "
        path += f"{x2:.0f} {y2:.0f}"
        lx, ly = bulge - 4, (y1 + y2) / 2
    else:
        x1, y1 = source.x + BOX_W / 2, source.y + BOX_H
        x2, y2 = target.x + BOX_W / 2, target.y
        mid = (y1 + y2) / 2
        path = f"M {x1:.0f} {y1:.0f} C {x1:.0f} {mid:.0f}, {x2:.0f} {mid:.0f}, {x2:.0f} {y2:.0f}"
        lx, ly = (x1 + x2) / 2 + 4, mid
    text = (
        f'<text x="{lx:.0f}" y="{ly:.0f}" fill="#333" class="edge-label">{label}</text>'
        if label
        else ""
    )
    return (
        f'<g class="connection" data-label="{escape(edge.label)}"><path d="{path}" fill="none" '
        f'stroke="#555" stroke-width="1.4" marker-end="url(#arrow)"/>{text}</g>'
    )


def _node_svg(node, figures, link):
    step = node.step
    kind = escape(step._meta.verbose_name.removesuffix(" step"))
    title = escape((step.name or step.key)[:28])
    figures = figures or StepMetrics()
    lines = [f"{figures.waiting:,} here now"]
    if getattr(step, "template_id", None):
        lines.append(
            f"sent {figures.sent:,} · delivered {figures.delivered:,} "
            f"({figures.rate(figures.delivered)})"
        )
        lines.append(
            f"opened {figures.opened:,} ({figures.rate(figures.opened)}) · "
            f"clicked {figures.clicked:,} ({figures.rate(figures.clicked)})"
        )
    body = "".join(
        f'<text x="{node.x + 10:.0f}" y="{node.y + 52 + 14 * i:.0f}" fill="#333">{escape(t)}</text>'
        for i, t in enumerate(lines)
    )
    box = (
        f'<g class="step" id="diagram-step-{step.pk}" data-key="{escape(step.key)}">'
        f'<rect x="{node.x:.0f}" y="{node.y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="8" '
        f'fill="#f5f8fa" stroke="#417690" stroke-width="1.5"/>'
        f'<text x="{node.x + 10:.0f}" y="{node.y + 18:.0f}" fill="#417690" '
        f'font-size="11">{kind}</text>'
        f'<text x="{node.x + 10:.0f}" y="{node.y + 36:.0f}" font-weight="bold" '
        f'fill="#222">{title}</text>{body}</g>'
    )
    if link is None:
        return box
    return f'<a href="{escape(link(node))}">{box}</a>'
