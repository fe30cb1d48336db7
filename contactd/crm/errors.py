"""CRM errors: each carries a stable code for the API, the CLI and the tests."""

from __future__ import annotations

from contactd.errors import ConflictError, ContactdError, ValidationError


class DuplicateContactError(ConflictError):
    """Creating this contact would duplicate one that has the same number or e-mail."""

    code = "contact_duplicate"


class CustomFieldError(ValidationError):
    code = "custom_field_invalid"


class ImportFileError(ContactdError):
    """The import file could not be read at all (missing, not CSV/XLSX, no header)."""

    code = "import_unreadable"


class MergeError(ValidationError):
    code = "merge_invalid"


class TemplateError(ValidationError):
    code = "template_invalid"


class StaleEditError(ConflictError):
    """The record changed since the editor read it (its `version`, which is also the API's
    ETag): the edit is refused, never overwritten. The one stale-edit error of pages and API."""

    code = "stale_edit"
