"""Which column is which: common headers in several languages, or an explicit mapping."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from contactd.crm.errors import ImportFileError
from contactd.crm.searchtext import fold

# Target fields a column can feed. "phone", "email" and "tags" may come from several columns.
FIELDS: Final = (
    "first_name",
    "last_name",
    "full_name",
    "organisation",
    "job_title",
    "phone",
    "mobile",
    "email",
    "notes",
    "tags",
    "owner",
    "language",
    "street",
    "city",
    "postal_code",
    "country",
)

_SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "first_name": ("first name", "firstname", "given name", "forename", "vorname", "prenom",
                   "nombre", "nome", "voornaam", "imie"),
    "last_name": ("last name", "lastname", "surname", "family name", "nachname", "familienname",
                  "nom", "nom de famille", "apellido", "apellidos", "cognome", "achternaam",
                  "nazwisko"),
    "full_name": ("name", "full name", "contact", "contact name", "nom complet",
                  "nombre completo", "nome completo", "vollstandiger name", "kontakt"),
    "organisation": ("company", "organisation", "organization", "org", "account", "firma",
                     "unternehmen", "societe", "entreprise", "empresa", "azienda", "bedrijf",
                     "company name", "firmenname"),
    "job_title": ("title", "job title", "position", "role", "funktion", "poste", "cargo",
                  "ruolo"),
    "phone": ("phone", "phone number", "telephone", "tel", "tel.", "telefon", "telefonnummer",
              "telephone fixe", "telefono", "numero", "number", "work phone", "business phone",
              "landline", "festnetz", "phone 1", "phone 2", "phone1", "phone2", "telefon 2"),
    "mobile": ("mobile", "mobile phone", "cell", "cell phone", "cellphone", "handy", "mobil",
               "mobiltelefon", "portable", "movil", "celular", "cellulare", "gsm", "mobile 2"),
    "email": ("email", "e-mail", "e mail", "mail", "email address", "e-mail-adresse",
              "courriel", "adresse e-mail", "correo", "correo electronico", "email 2", "e-mail 2"),
    "notes": ("notes", "note", "comment", "comments", "remarks", "notizen", "notiz",
              "bemerkung", "bemerkungen", "kommentar", "remarques", "commentaire", "notas",
              "comentarios", "note interne"),
    "tags": ("tags", "tag", "labels", "label", "schlagworte", "etiquettes", "etiquetas",
             "categories", "category", "kategorie"),
    "owner": ("owner", "account owner", "agent", "assigned to", "besitzer", "betreuer",
              "responsable", "propietario"),
    "language": ("language", "lang", "sprache", "langue", "idioma", "lingua"),
    "street": ("street", "address", "street address", "strasse", "adresse", "rue", "calle",
               "direccion", "indirizzo", "via"),
    "city": ("city", "town", "stadt", "ort", "ville", "ciudad", "citta", "localite"),
    "postal_code": ("postal code", "postcode", "zip", "zip code", "plz", "postleitzahl",
                    "code postal", "codigo postal", "cap", "cp"),
    "country": ("country", "land", "pays", "pais", "paese", "country code"),
}


def normalise_header(header: str) -> str:
    text = fold(header).strip()
    text = re.sub(r"[_\-./]+", " ", text)
    text = re.sub(r"\s+", " ", text)
    return text.strip(" *:")


_LOOKUP: Final[dict[str, str]] = {
    normalise_header(syn): target for target, syns in _SYNONYMS.items() for syn in syns
}


@dataclass(frozen=True)
class ColumnMap:
    """For each column index, the field it feeds (or custom:<key>), None when ignored."""

    headers: tuple[str, ...]
    targets: tuple[str | None, ...]

    def columns_for(self, target: str) -> list[int]:
        return [i for i, t in enumerate(self.targets) if t == target]

    @property
    def mapped(self) -> dict[str, str]:
        return {h: t for h, t in zip(self.headers, self.targets, strict=True) if t}


def detect(
    headers: Sequence[str],
    *,
    explicit: Mapping[str, str] | None = None,
    custom_keys: Iterable[str] = (),
) -> ColumnMap:
    """Map headers: explicit entries first (header -> field), then synonyms, then custom fields
    by key or label. ImportFileError when nothing identifies a contact."""
    explicit_norm = {normalise_header(k): v for k, v in (explicit or {}).items()}
    custom = {normalise_header(k): k for k in custom_keys}
    targets: list[str | None] = []
    for header in headers:
        key = normalise_header(header)
        target = explicit_norm.get(key)
        if target is not None:
            if target not in FIELDS and not target.startswith("custom:"):
                if target in custom.values():
                    target = f"custom:{target}"
                else:
                    raise ImportFileError(f"mapping {header!r} -> {target!r}: unknown field")
        elif key in _LOOKUP:
            target = _LOOKUP[key]
        elif key in custom:
            target = f"custom:{custom[key]}"
        else:
            stripped = re.sub(r"\s*\d+$", "", key)  # "phone 3", "email2"
            target = _LOOKUP.get(stripped)
        targets.append(target)
    found = set(targets)
    if not found & {"first_name", "last_name", "full_name", "organisation", "phone", "mobile",
                    "email"}:
        raise ImportFileError(
            "no column looks like a name, company, phone or e-mail "
            f"(headers: {', '.join(h for h in headers if h) or 'none'})"
        )
    return ColumnMap(tuple(headers), tuple(targets))
