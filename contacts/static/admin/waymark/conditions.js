/*
 * The condition editor (contacts.forms.conditions.ConditionEditor).
 *
 * The textarea is the form field: it holds the condition tree as JSON and is
 * what the form posts. This script draws the tree as rules (groups matching
 * all / any / none / not all of their rules; rules on an attribute, an event,
 * a list, a segment or a message) and writes the tree back into the
 * textarea whenever a rule changes. Editing the textarea redraws the rules.
 * A tree the rules cannot show (or JSON that does not parse) leaves the
 * rules alone and the JSON open, so nothing typed there is lost.
 *
 * With a preview URL, the count of matching contacts and a sample are asked
 * for (POST, with the form's CSRF token) a moment after each change; only
 * the answer to the latest question is shown. Everything shown comes from
 * textContent, never innerHTML.
 */
(function () {
    "use strict";

    var DEBOUNCE_MS = 350;
    var GROUP_MODES = [
        ["all", "all of these rules"],
        ["any", "any of these rules"],
        ["none", "none of these rules"],
        ["notall", "not all of these rules"],
    ];
    var TYPES = {
        text: {
            label: "text",
            ops: ["eq", "ne", "contains", "not_contains", "starts_with", "in", "not_in",
                "gt", "gte", "lt", "lte", "exists", "not_exists"],
        },
        number: {
            label: "number",
            ops: ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains",
                "not_contains", "exists", "not_exists"],
        },
        boolean: {label: "true/false", ops: ["eq", "ne", "contains", "not_contains", "exists", "not_exists"]},
        date: {
            label: "date",
            ops: ["before", "after", "within_last_days", "more_than_days_ago", "within_next_days",
                "exists", "not_exists"],
        },
    };
    var VALUELESS = ["exists", "not_exists"];
    var DATE_OPS = ["before", "after"];
    var DAYS_OPS = ["within_last_days", "more_than_days_ago", "within_next_days"];
    var LIST_OPS = ["in", "not_in"];
    var MESSAGE_FILTERS = [
        ["template", "Template"],
        ["message_type", "Message type"],
        ["journey", "Journey"],
    ];
    var ENGAGEMENTS = [["received", "received"], ["opened", "opened"], ["clicked", "clicked"]];
    var RULE_KINDS = [
        ["attribute", "+ Attribute rule"],
        ["event", "+ Event rule"],
        ["list", "+ List rule"],
        ["segment", "+ Segment rule"],
        ["message", "+ Message rule"],
        ["group", "+ Group"],
    ];

    function Unshowable(reason) {
        this.reason = reason;
    }

    function el(tag, props, children) {
        var node = document.createElement(tag);
        Object.keys(props || {}).forEach(function (key) {
            if (key === "text") {
                node.textContent = props[key];
            } else if (key === "dataset") {
                Object.keys(props.dataset).forEach(function (d) {
                    node.dataset[d] = props.dataset[d];
                });
            } else {
                node.setAttribute(key, props[key]);
            }
        });
        (children || []).forEach(function (child) {
            if (child) {
                node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
            }
        });
        return node;
    }

    function select(label, field, options, value) {
        var node = el("select", {"aria-label": label, dataset: {field: field}});
        options.forEach(function (option) {
            node.appendChild(el("option", {value: String(option[0]), text: option[1]}));
        });
        if (value !== undefined && value !== null) {
            node.value = String(value);
        }
        return node;
    }

    function input(label, field, value, attrs) {
        var props = Object.assign({type: "text", "aria-label": label, dataset: {field: field}}, attrs || {});
        var node = el("input", props);
        node.value = value === undefined || value === null ? "" : String(value);
        return node;
    }

    function removeButton(label) {
        return el("button", {type: "button", class: "condition-editor-remove", "aria-label": label,
            title: label, dataset: {action: "remove"}, text: "×"});
    }

    function field(row, name) {
        return row.querySelector(':scope > .condition-editor-line [data-field="' + name + '"], :scope > [data-field="' + name + '"]');
    }

    function onlyKeys(tree, keys, what) {
        Object.keys(tree).forEach(function (key) {
            if (keys.indexOf(key) === -1) {
                throw new Unshowable(what + " with “" + key + "”");
            }
        });
    }

    function jsonType(value) {
        if (value === null) {
            return "null";
        }
        if (Array.isArray(value)) {
            return "array";
        }
        return typeof value;
    }

    function isWhole(value) {
        return typeof value === "number" && Math.floor(value) === value;
    }

    // --- Reading what was typed ------------------------------------------------

    function wholeNumber(text) {
        text = text.trim();
        return /^[0-9]+$/.test(text) ? parseInt(text, 10) : text;
    }

    function typedValue(type, text) {
        if (type === "number") {
            var trimmed = text.trim();
            var number = Number(trimmed);
            // Not a number: no value, so that the check says what is missing
            // rather than the rule quietly comparing texts.
            return trimmed !== "" && isFinite(number) ? number : undefined;
        }
        if (type === "boolean") {
            return text === "true";
        }
        return text;
    }

    function typedList(type, text) {
        if (text.trim().charAt(0) === "[") {
            try {
                return JSON.parse(text);
            } catch (error) {
                return text;
            }
        }
        return text.split(",").map(function (item) {
            return typedValue(type, item.trim());
        }).filter(function (item) {
            return item !== "" && item !== undefined;
        });
    }

    function listText(values) {
        var plain = values.every(function (item) {
            return String(item).indexOf(",") === -1 && String(item).trim() === String(item);
        });
        return plain ? values.map(String).join(", ") : JSON.stringify(values);
    }

    // --- Attribute tests (a rule on an attribute, or a filter on event data) -------------

    function attributeType(test) {
        if (DATE_OPS.indexOf(test.op) !== -1 || DAYS_OPS.indexOf(test.op) !== -1) {
            return "date";
        }
        var value = test.value;
        if (Array.isArray(value)) {
            var kinds = value.map(jsonType).filter(function (kind, i, all) {
                return all.indexOf(kind) === i;
            });
            if (kinds.length > 1) {
                throw new Unshowable("a list of values of different kinds");
            }
            value = value[0];
        }
        return {number: "number", boolean: "boolean"}[jsonType(value)] || "text";
    }

    function valueControl(state, type, op, value) {
        var wrap = el("span", {class: "condition-editor-value"});
        if (VALUELESS.indexOf(op) !== -1) {
            return wrap;
        }
        var shown = value === undefined ? "" : value;
        if (LIST_OPS.indexOf(op) !== -1) {
            wrap.appendChild(input("Values", "value", Array.isArray(value) ? listText(value) : shown,
                {placeholder: "comma, separated", size: 30}));
        } else if (type === "boolean") {
            wrap.appendChild(select("Value", "value", [["true", "true"], ["false", "false"]],
                value === false ? "false" : "true"));
        } else if (type === "date" && DATE_OPS.indexOf(op) !== -1) {
            wrap.appendChild(input("Value", "value", shown, {type: "date"}));
        } else if (DAYS_OPS.indexOf(op) !== -1) {
            wrap.appendChild(input("Days", "value", shown, {inputmode: "numeric", size: 5}));
            wrap.appendChild(document.createTextNode(" days"));
        } else {
            wrap.appendChild(input("Value", "value", shown,
                type === "number" ? {inputmode: "decimal", size: 10} : {size: 20}));
        }
        return wrap;
    }

    function operatorSelect(state, type, op) {
        var ops = TYPES[type].ops.map(function (name) {
            return [name, state.operators[name] || name];
        });
        return select("Operator", "op", ops, ops.some(function (o) {
            return o[0] === op;
        }) ? op : ops[0][0]);
    }

    // A line of path, type, operator and value; redrawn when the type or
    // operator changes, keeping what it can.
    function testLine(state, pathLabel, pathField, test) {
        var type = attributeType(test);
        var line = el("span", {class: "condition-editor-line", dataset: {test: "1", pathField: pathField}});
        line.appendChild(input(pathLabel, pathField, test[pathField] || "", {size: 18}));
        line.appendChild(select("Type", "type", Object.keys(TYPES).map(function (key) {
            return [key, TYPES[key].label];
        }), type));
        var op = operatorSelect(state, type, test.op);
        line.appendChild(op);
        line.appendChild(valueControl(state, type, op.value, test.value));
        return line;
    }

    // After a change of type (new operators) or of operator (another kind of
    // value); the select just changed stays, so keyboard focus stays on it.
    function redrawTest(state, line, typeChanged) {
        var type = line.querySelector('[data-field="type"]').value;
        var opNode = line.querySelector('[data-field="op"]');
        if (typeChanged) {
            var newOp = operatorSelect(state, type, opNode.value);
            line.replaceChild(newOp, opNode);
            opNode = newOp;
        }
        var valueNode = line.querySelector(".condition-editor-value");
        // The value as typed, read as the new type and operator read it.
        var old = readTest(line, line.dataset.pathField);
        line.replaceChild(valueControl(state, type, opNode.value, keepValue(old.value, type, opNode.value)), valueNode);
    }

    function keepValue(value, type, op) {
        if (value === undefined || VALUELESS.indexOf(op) !== -1) {
            return undefined;
        }
        if (LIST_OPS.indexOf(op) !== -1) {
            return Array.isArray(value) ? value : [value];
        }
        if (Array.isArray(value)) {
            value = value[0];
        }
        if (DAYS_OPS.indexOf(op) !== -1) {
            return isWhole(value) ? value : undefined;
        }
        if (type === "number") {
            return typeof value === "number" || (value !== "" && isFinite(Number(value))) ? Number(value) : undefined;
        }
        if (type === "boolean") {
            return value !== false && value !== "false";
        }
        return value === undefined ? undefined : String(value);
    }

    function readTest(line, pathField) {
        var type = line.querySelector('[data-field="type"]').value;
        var op = line.querySelector('[data-field="op"]').value;
        var test = {};
        test[pathField] = line.querySelector('[data-field="' + pathField + '"]').value.trim();
        test.op = op;
        var valueNode = line.querySelector('.condition-editor-value [data-field="value"]');
        if (!valueNode || VALUELESS.indexOf(op) !== -1) {
            return test;
        }
        var value;
        if (LIST_OPS.indexOf(op) !== -1) {
            value = typedList(type, valueNode.value);
        } else if (DAYS_OPS.indexOf(op) !== -1) {
            value = wholeNumber(valueNode.value);
        } else {
            value = typedValue(type, valueNode.value);
        }
        if (value !== undefined) {
            test.value = value;
        }
        return test;
    }

    // --- Rules -------------------------------------------------------------------

    function rule(kind, label, children) {
        return el("div", {class: "condition-editor-rule", dataset: {kind: kind}},
            [el("span", {class: "condition-editor-kind", text: label})].concat(children, [removeButton("Remove this rule")]));
    }

    function choicesOf(state, key, current, emptyLabel) {
        var options = (state.choices[key] || []).slice();
        if (current !== undefined && current !== null && !options.some(function (o) {
            return String(o[0]) === String(current);
        })) {
            options.push([current, "#" + current + " (not found)"]);
        }
        return [["", emptyLabel]].concat(options);
    }

    function attributeRule(state, tree) {
        onlyKeys(tree, ["attribute", "op", "value"], "an attribute rule");
        return rule("attribute", "Attribute", [testLine(state, "Attribute", "attribute", tree)]);
    }

    function eventRule(state, tree) {
        onlyKeys(tree, ["event", "op", "within_days", "at_least", "where"], "an event rule");
        var filters = el("div", {class: "condition-editor-filters", dataset: {filters: "1"}});
        (tree.where || []).forEach(function (test) {
            if (jsonType(test) !== "object") {
                throw new Unshowable("a data filter that is not an object");
            }
            onlyKeys(test, ["field", "op", "value"], "a data filter");
            filters.appendChild(dataFilter(state, test));
        });
        var line = el("span", {class: "condition-editor-line"}, [
            select("Did or did not", "op", [["done", "did"], ["not_done", "did not"]], tree.op || "done"),
            " do event ",
            input("Event name", "event", tree.event || "", {size: 18}),
            " at least ",
            input("At least", "at_least", tree.at_least === undefined ? 1 : tree.at_least,
                {inputmode: "numeric", size: 3}),
            " times, in the last ",
            input("Within days", "within_days", tree.within_days === undefined ? "" : tree.within_days,
                {inputmode: "numeric", size: 5, placeholder: "any"}),
            " days",
        ]);
        var add = el("button", {type: "button", class: "condition-editor-add", dataset: {action: "add-filter"},
            text: "+ Data filter"});
        return rule("event", "Event", [line, filters, add]);
    }

    function dataFilter(state, test) {
        return el("div", {class: "condition-editor-filter", dataset: {filter: "1"}}, [
            "where data ",
            testLine(state, "Data field", "field", test),
            removeButton("Remove this data filter"),
        ]);
    }

    function memberRule(state, kind, tree) {
        onlyKeys(tree, [kind, "op"], "a " + kind + " rule");
        var name = kind === "list" ? "List" : "Segment";
        return rule(kind, name, [el("span", {class: "condition-editor-line"}, [
            select(name + " membership", "op", [["member", "is in"], ["not_member", "is not in"]], tree.op || "member"),
            " ",
            select(name, kind, choicesOf(state, kind, tree[kind], "— choose a " + kind + " —"), tree[kind]),
        ])]);
    }

    function messageRule(state, tree) {
        var filterKeys = MESSAGE_FILTERS.filter(function (f) {
            return state.choices[f[0]] !== undefined;
        });
        onlyKeys(tree, ["message", "op", "within_days"].concat(filterKeys.map(function (f) {
            return f[0];
        })), "a message rule");
        var line = el("span", {class: "condition-editor-line"}, [
            "contact ",
            select("Did or did not", "op", [["done", "has"], ["not_done", "has not"]], tree.op || "done"),
            " ",
            select("Engagement", "message", ENGAGEMENTS, tree.message || "opened"),
            " a message",
        ]);
        filterKeys.forEach(function (f) {
            line.appendChild(document.createTextNode(" · " + f[1].toLowerCase() + " "));
            line.appendChild(select(f[1], f[0], choicesOf(state, f[0], tree[f[0]], "any"), tree[f[0]]));
        });
        line.appendChild(document.createTextNode(", in the last "));
        line.appendChild(input("Within days", "within_days", tree.within_days === undefined ? "" : tree.within_days,
            {inputmode: "numeric", size: 5, placeholder: "any"}));
        line.appendChild(document.createTextNode(" days"));
        return rule("message", "Message", [line]);
    }

    function emptyRule(state, kind) {
        if (kind === "group") {
            return group(state, "all", [], false);
        }
        return {
            attribute: function () {
                return attributeRule(state, {attribute: "", op: "eq"});
            },
            event: function () {
                return eventRule(state, {event: "", op: "done"});
            },
            list: function () {
                return memberRule(state, "list", {list: null, op: "member"});
            },
            segment: function () {
                return memberRule(state, "segment", {segment: null, op: "member"});
            },
            message: function () {
                return messageRule(state, {message: "opened", op: "done"});
            },
        }[kind]();
    }

    function group(state, mode, children, isRoot) {
        var node = el("div", {class: "condition-editor-group", dataset: {kind: "group"}});
        var head = el("div", {class: "condition-editor-group-head"}, [
            isRoot ? "Contacts matching " : "Matching ",
            select("Match", "mode", GROUP_MODES, mode),
        ]);
        if (!isRoot) {
            head.appendChild(removeButton("Remove this group"));
        }
        var body = el("div", {class: "condition-editor-children", dataset: {children: "1"}});
        children.forEach(function (child) {
            body.appendChild(child);
        });
        var adds = el("div", {class: "condition-editor-adds"}, RULE_KINDS.map(function (k) {
            return el("button", {type: "button", class: "condition-editor-add", dataset: {action: "add", add: k[0]},
                text: k[1]});
        }));
        node.appendChild(head);
        node.appendChild(body);
        node.appendChild(adds);
        return node;
    }

    // --- Tree -> rules -------------------------------------------------------------

    function groupParts(tree) {
        var keys = Object.keys(tree);
        if (keys.length === 0) {
            return ["all", []];
        }
        if (keys.length > 1 && ["all", "any", "not"].some(function (k) {
            return k in tree;
        })) {
            throw new Unshowable("a group with other keys beside it");
        }
        if (Array.isArray(tree.all)) {
            return ["all", tree.all];
        }
        if (Array.isArray(tree.any)) {
            return ["any", tree.any];
        }
        if ("not" in tree) {
            var inner = tree.not;
            if (jsonType(inner) === "object" && Object.keys(inner).length === 1 && Array.isArray(inner.any)) {
                return ["none", inner.any];
            }
            if (jsonType(inner) === "object" && Object.keys(inner).length === 1 && Array.isArray(inner.all)) {
                return ["notall", inner.all];
            }
            return ["none", [inner]];
        }
        return null;
    }

    function draw(state, tree, isRoot) {
        if (jsonType(tree) !== "object") {
            throw new Unshowable("a condition that is not an object");
        }
        var parts = groupParts(tree);
        if (parts) {
            return group(state, parts[0], parts[1].map(function (child) {
                return draw(state, child, false);
            }), isRoot);
        }
        var leaf;
        if ("attribute" in tree) {
            leaf = attributeRule(state, tree);
        } else if ("event" in tree) {
            leaf = eventRule(state, tree);
        } else if ("list" in tree) {
            leaf = memberRule(state, "list", tree);
        } else if ("segment" in tree) {
            leaf = memberRule(state, "segment", tree);
        } else if ("message" in tree) {
            leaf = messageRule(state, tree);
        } else {
            throw new Unshowable("a rule of an unknown kind");
        }
        return isRoot ? group(state, "all", [leaf], true) : leaf;
    }

    // --- Rules -> tree (each rule learns its path, to be found by error messages) ----

    function childPath(prefix, part) {
        return prefix ? prefix + "." + part : part;
    }

    function readGroup(node, prefix, isRoot) {
        var mode = node.querySelector(':scope > .condition-editor-group-head [data-field="mode"]').value;
        var rows = Array.prototype.slice.call(node.querySelector(":scope > [data-children]").children);
        var kept = rows.filter(function (row) {
            return row.dataset.kind !== "group" || hasRules(row);
        });
        if (kept.length === 0) {
            node.dataset.path = prefix;
            return null;
        }
        var paths;
        if (isRoot && mode === "all" && kept.length === 1) {
            paths = [prefix];
        } else if (mode === "none" && kept.length === 1) {
            paths = [childPath(prefix, "not")];
        } else {
            var inner = {all: "all", any: "any", none: "not.any", notall: "not.all"}[mode];
            paths = kept.map(function (row, i) {
                return childPath(prefix, inner + "[" + i + "]");
            });
        }
        node.dataset.path = prefix;
        var children = kept.map(function (row, i) {
            return readRow(row, paths[i]);
        });
        if (isRoot && mode === "all" && children.length === 1) {
            return children[0];
        }
        if (mode === "none") {
            return {not: children.length === 1 ? children[0] : {any: children}};
        }
        if (mode === "notall") {
            return {not: {all: children}};
        }
        var tree = {};
        tree[mode] = children;
        return tree;
    }

    function hasRules(groupNode) {
        return groupNode.querySelector('[data-kind]:not([data-kind="group"])') !== null;
    }

    function idOrNull(text) {
        return /^[0-9]+$/.test(text) ? parseInt(text, 10) : null;
    }

    function readRow(row, path) {
        row.dataset.path = path;
        var kind = row.dataset.kind;
        if (kind === "group") {
            return readGroup(row, path, false);
        }
        if (kind === "attribute") {
            return readTest(row.querySelector("[data-test]"), "attribute");
        }
        var value = function (name) {
            return field(row, name).value;
        };
        if (kind === "list" || kind === "segment") {
            var tree = {};
            tree[kind] = idOrNull(value(kind));
            tree.op = value("op");
            return tree;
        }
        if (kind === "event") {
            var event = {event: value("event").trim(), op: value("op")};
            var atLeast = value("at_least").trim();
            if (atLeast !== "" && atLeast !== "1") {
                event.at_least = wholeNumber(atLeast);
            }
            if (value("within_days").trim() !== "") {
                event.within_days = wholeNumber(value("within_days"));
            }
            var where = Array.prototype.map.call(row.querySelectorAll(":scope > [data-filters] > [data-filter]"),
                function (filterRow) {
                    return readTest(filterRow.querySelector("[data-test]"), "field");
                });
            if (where.length) {
                event.where = where;
            }
            return event;
        }
        var message = {message: value("message"), op: value("op")};
        MESSAGE_FILTERS.forEach(function (f) {
            var node = field(row, f[0]);
            if (node && node.value !== "") {
                message[f[0]] = idOrNull(node.value);
            }
        });
        if (value("within_days").trim() !== "") {
            message.within_days = wholeNumber(value("within_days"));
        }
        return message;
    }

    // --- The editor ------------------------------------------------------------------

    function Editor(root) {
        // Found inside the editor, not by id: an inline row added from the
        // formset's template keeps its "__prefix__" in data attributes.
        var options = JSON.parse(root.querySelector(':scope > script[type="application/json"]').textContent);
        this.root = root;
        this.state = {choices: options.choices, operators: options.operators};
        this.textarea = root.querySelector("textarea");
        this.rules = root.querySelector("[data-rules]");
        this.json = root.querySelector("[data-json]");
        this.previewUrl = root.dataset.previewUrl;
        this.preview = root.querySelector("[data-preview]");
        this.asked = 0;
        this.timer = null;
        this.note = el("p", {class: "condition-editor-note help", hidden: ""});
        this.rules.parentNode.insertBefore(this.note, this.rules);
        this.bind();
        this.load(true);
        this.markErrors(this.serverErrors());
        this.ask();
    }

    Editor.prototype.bind = function () {
        var self = this;
        this.rules.addEventListener("click", function (event) {
            var button = event.target.closest("button[data-action]");
            if (!button) {
                return;
            }
            var action = button.dataset.action;
            if (action === "add") {
                var row = emptyRule(self.state, button.dataset.add);
                button.closest(".condition-editor-group").querySelector(":scope > [data-children]").appendChild(row);
                var first = row.querySelector("input, select");
                if (first) {
                    first.focus();
                }
            } else if (action === "add-filter") {
                button.parentNode.querySelector(":scope > [data-filters]")
                    .appendChild(dataFilter(self.state, {field: "", op: "eq"}));
            } else if (action === "remove") {
                button.parentNode.closest("[data-filter], [data-kind]").remove();
            }
            self.changed();
        });
        this.rules.addEventListener("change", function (event) {
            var name = event.target.dataset.field;
            if (name === "type" || (name === "op" && event.target.closest("[data-test]"))) {
                redrawTest(self.state, event.target.closest("[data-test]"), name === "type");
            }
            self.changed();
        });
        this.rules.addEventListener("input", function () {
            self.changed();
        });
        this.textarea.addEventListener("input", function () {
            self.load(false);
            self.ask();
        });
    };

    // Draws the rules from the textarea; leaves them as they are, with a
    // note, when the JSON cannot be shown as rules.
    Editor.prototype.load = function (first) {
        var text = this.textarea.value.trim();
        var tree;
        try {
            tree = text ? JSON.parse(text) : {};
        } catch (error) {
            this.unshowable("The JSON is not valid (" + error.message + "): fix it below.", first);
            return;
        }
        var drawn;
        try {
            drawn = draw(this.state, tree, true);
        } catch (error) {
            if (!(error instanceof Unshowable)) {
                throw error;
            }
            this.unshowable("These rules use " + error.reason + ", which only the JSON below can show.", first);
            return;
        }
        this.rules.replaceChildren(drawn);
        this.rules.hidden = false;
        this.note.hidden = true;
        if (first) {
            this.json.open = false;
        }
        readGroup(drawn, "", true);
    };

    Editor.prototype.unshowable = function (message, first) {
        this.note.textContent = message;
        this.note.hidden = false;
        this.rules.hidden = true;
        if (first) {
            this.json.open = true;
        }
    };

    Editor.prototype.changed = function () {
        var tree = readGroup(this.rules.firstElementChild, "", true) || {};
        this.textarea.value = JSON.stringify(tree, null, 2);
        this.ask();
    };

    Editor.prototype.serverErrors = function () {
        var row = this.root.closest(".form-row") || this.root.parentNode;
        var list = row.querySelector(".errorlist");
        return list ? Array.prototype.map.call(list.querySelectorAll("li"), function (li) {
            return li.textContent;
        }) : [];
    };

    // Marks the rule an error message names ("all[1].not: ..."): the rule
    // whose path is the longest start of the message's path.
    Editor.prototype.markErrors = function (messages) {
        this.rules.querySelectorAll(".condition-editor-invalid").forEach(function (node) {
            node.classList.remove("condition-editor-invalid");
        });
        var self = this;
        messages.forEach(function (message) {
            var found = /^((?:(?:all|any)\[[0-9]+\]|not)(?:\.(?:(?:all|any)\[[0-9]+\]|not))*): /.exec(message);
            var best = null;
            self.rules.querySelectorAll("[data-path]").forEach(function (node) {
                var p = node.dataset.path;
                if (!found) {
                    // No path: the condition is one rule, or the message
                    // names no rule (a list that does not exist).
                    if (p === "" && node.dataset.kind !== "group") {
                        best = node;
                    }
                } else if (p !== "" && (found[1] === p || found[1].indexOf(p + ".") === 0) &&
                        (best === null || p.length > best.dataset.path.length)) {
                    best = node;
                }
            });
            if (best) {
                best.classList.add("condition-editor-invalid");
            }
        });
    };

    Editor.prototype.ask = function () {
        if (!this.previewUrl) {
            return;
        }
        var self = this;
        clearTimeout(this.timer);
        this.timer = setTimeout(function () {
            self.fetchPreview();
        }, DEBOUNCE_MS);
    };

    Editor.prototype.fetchPreview = function () {
        var self = this;
        var asked = ++this.asked;
        var form = this.root.closest("form");
        var token = form ? form.querySelector('[name="csrfmiddlewaretoken"]') : null;
        var body = new URLSearchParams();
        body.set("conditions", this.textarea.value);
        body.set("segment", this.root.dataset.segment || "");
        this.preview.hidden = false;
        this.preview.classList.add("condition-editor-busy");
        fetch(this.previewUrl, {
            method: "POST",
            body: body,
            credentials: "same-origin",
            headers: {"X-CSRFToken": token ? token.value : ""},
        }).then(function (response) {
            return response.json().catch(function () {
                return {error: "The count could not be had (" + response.status + ")."};
            });
        }).then(function (answer) {
            if (asked === self.asked) {
                self.show(answer);
            }
        }, function () {
            if (asked === self.asked) {
                self.show({error: "The count could not be had: is the server reachable?"});
            }
        });
    };

    Editor.prototype.show = function (answer) {
        var preview = this.preview;
        preview.classList.remove("condition-editor-busy");
        var error = preview.querySelector("[data-error]");
        var count = preview.querySelector("[data-count]");
        var warnings = preview.querySelector("[data-warnings]");
        var sample = preview.querySelector("[data-sample]");
        warnings.replaceChildren();
        sample.replaceChildren();
        error.hidden = !answer.error;
        error.textContent = answer.error || "";
        this.markErrors(answer.error ? [answer.error] : []);
        count.textContent = answer.error ? "" : answer.summary;
        (answer.warnings || []).forEach(function (warning) {
            warnings.appendChild(el("li", {class: "warning", text: warning}));
        });
        (answer.sample || []).forEach(function (contact) {
            var label = contact.email || contact.user_id || "(no email)";
            var item = el("li", {}, [el("a", {href: contact.url, text: label})]);
            if (contact.email && contact.user_id) {
                item.appendChild(document.createTextNode(" · " + contact.user_id));
            }
            sample.appendChild(item);
        });
    };

    function start() {
        document.querySelectorAll("[data-condition-editor]").forEach(function (root) {
            // An inline formset's hidden template row is drawn once copied.
            if (!root.dataset.started && !root.closest(".empty-form")) {
                root.dataset.started = "1";
                new Editor(root);
            }
        });
    }

    document.addEventListener("formset:added", start);
    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
})();
