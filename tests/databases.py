"""Why a test runs on PostgreSQL only.

The suite runs on PostgreSQL, production's database, and again on SQLite,
the embedded default (`make test-sqlite`). A test marked
`@pytest.mark.postgresql(reason=...)` is skipped on SQLite (tests/conftest.py),
for one of these reasons or a reason of its own.
"""

ESTIMATED_COUNT = (
    "the changelist counts a big table from PostgreSQL's estimate, a query SQLite does without"
)
PARALLEL_WRITERS = (
    "writers in parallel: SQLite's in-memory test database locks a table for a whole write"
)
ROW_BY_ROW = (
    "SQLite writes these row by row: the embedded default is for trying Waymark, not for volume"
)
