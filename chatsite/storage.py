"""Static files storage for production: hashed, compressed, and ES module imports rewritten."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ChatStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hash every file's name, imports between the client's ES modules included.

    Without this flag Django leaves `import ... from "./net/api.js";` as written, so a
    browser would load the unhashed module, cached forever beside a newer main.js.
    """

    support_js_module_import_aggregation = True
