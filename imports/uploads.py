"""Refuse an import's upload above WAYMARK_IMPORT["MAX_BYTES"] as it starts
arriving, from its Content-Length, instead of after writing it to disk."""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

IMPORT_URL_NAME = "imports_import_add"
# Room for the multipart envelope and the form's other fields.
ENVELOPE_BYTES = 64 * 1024


class ImportSizeLimitHandler(FileUploadHandler):
    """First of FILE_UPLOAD_HANDLERS: stops an oversized import upload, and
    lets every other upload through to Django's own handlers untouched."""

    refuse = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        match = getattr(self.request, "resolver_match", None)
        limit = settings.WAYMARK_IMPORT["MAX_BYTES"] + ENVELOPE_BYTES
        if match and match.url_name == IMPORT_URL_NAME and content_length > limit:
            self.refuse = True
            self.request.import_upload_too_large = content_length

    def new_file(self, *args, **kwargs):
        if self.refuse:
            raise StopUpload(connection_reset=True)
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None
