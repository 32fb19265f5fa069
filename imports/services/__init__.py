"""Write paths of CSV imports; import from here."""

from imports.services.imports import (
    ImportError_,
    import_check,
    import_delete,
    import_error_rows,
    import_map,
    import_run,
    import_start,
    import_upload,
)
from imports.services.writing import chunk_write

__all__ = [
    "ImportError_",
    "chunk_write",
    "import_check",
    "import_delete",
    "import_error_rows",
    "import_map",
    "import_run",
    "import_start",
    "import_upload",
]
