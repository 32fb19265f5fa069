"""The condition language shared by segments and journey conditions.

A condition tree is JSON (docs/conditions.md lists every leaf and operator):

    {"all": [<cond>, ...]}          every child matches
    {"any": [<cond>, ...]}          at least one child matches
    {"not": <cond>}                 the child does not match
    {"attribute": "plan", "op": "eq", "value": "pro"}
    {"list": 12, "op": "member"}    or "not_member"
    {"segment": 3, "op": "member"}  or "not_member"
    {"event": "purchase", "op": "done", "at_least": 2, "within_days": 30,
     "where": [{"field": "total", "op": "gt", "value": 50}]}
    {"message": "opened", "op": "done", "template": 7, "within_days": 30}

Two evaluators give the same answers, and one table of cases in the tests
holds them to it: `compile_conditions` (a Q over Contact: a segment of any
size is one query) with `contacts_matching` for a batch of contacts, and
`contact_matches` for one contact already in memory, which evaluates
attribute leaves in Python. `conditions_validate` refuses a tree neither
could evaluate, with the reason.
"""

from contacts.conditions.attributes import (
    ATTRIBUTE_OPERATORS,
    VALUELESS_OPERATORS,
    ConditionError,
    attribute_matches,
    attribute_value,
    parse_value,
    validate_attribute_path,
)
from contacts.conditions.tree import (
    Leaf,
    check_days,
    compile_conditions,
    conditions_validate,
    contact_matches,
    contacts_matching,
    register_leaf,
)

__all__ = [
    "ATTRIBUTE_OPERATORS",
    "VALUELESS_OPERATORS",
    "ConditionError",
    "Leaf",
    "attribute_matches",
    "attribute_value",
    "check_days",
    "compile_conditions",
    "conditions_validate",
    "contact_matches",
    "contacts_matching",
    "parse_value",
    "register_leaf",
    "validate_attribute_path",
]
