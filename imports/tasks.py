"""rq jobs of CSV imports: take an import's id, call one service."""

from imports.services import import_check, import_run


def imports_check_task(import_id):
    import_check(import_id=import_id)


def imports_run_task(import_id):
    import_run(import_id=import_id)
