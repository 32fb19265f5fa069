/*
 * Journey admin: a yes/no condition step shows only the fields of its kind.
 *
 * "Condition" uses the condition tree; "Contact attribute" uses attribute,
 * operator and value; "Has done an event since entering" uses the event name. The other line is hidden with the
 * admin's `hidden` class, never disabled, so its inputs are still submitted.
 * A line showing a validation error is never hidden.
 *
 * Rows added through the "Add another step" menu are clones of a hidden
 * template, so the change listener is delegated to the document and every new
 * row gets a pass when the formset announces it (`formset:added`).
 */
(function () {
    "use strict";

    var KIND_SELECT = 'select[name^="steps-"][name$="-kind"]';
    var LINES = {
        condition: ".form-row.field-condition",
        attribute: ".form-row.field-attribute",
        event_since_entry: ".form-row.field-event_name",
    };

    function showKind(select) {
        var row = select.closest(".inline-related");
        if (!row) {
            return;
        }
        Object.keys(LINES).forEach(function (kind) {
            var line = row.querySelector(LINES[kind]);
            if (!line) {
                return;
            }
            var hasErrors = line.querySelector(".errorlist") !== null;
            line.classList.toggle("hidden", kind !== select.value && !hasErrors);
        });
    }

    function showKinds(root) {
        root.querySelectorAll(KIND_SELECT).forEach(showKind);
    }

    document.addEventListener("change", function (event) {
        if (event.target.matches && event.target.matches(KIND_SELECT)) {
            showKind(event.target);
        }
    });

    document.addEventListener("formset:added", function (event) {
        showKinds(event.target instanceof Element ? event.target : document);
    });

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", function () {
            showKinds(document);
        });
    } else {
        showKinds(document);
    }
})();
