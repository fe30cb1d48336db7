from __future__ import annotations

import pytest

from contactd.crm.custom_fields import FieldDef, validate
from contactd.crm.errors import CustomFieldError
from contactd.enums import CustomFieldType

DEFS = [
    FieldDef("budget", "Budget", CustomFieldType.NUMBER),
    FieldDef("renewal", "Renewal", CustomFieldType.DATE),
    FieldDef("tier", "Tier", CustomFieldType.CHOICE, ("Gold", "Silver"), required=True),
    FieldDef("nickname", "Nickname", CustomFieldType.TEXT),
]


def test_values_are_coerced() -> None:
    out = validate(DEFS, {"budget": "12,5", "renewal": "31.12.2026", "tier": "gold",
                          "nickname": "Bob"})
    assert out == {"budget": 12.5, "renewal": "2026-12-31", "tier": "Gold", "nickname": "Bob"}
    assert validate(DEFS, {"budget": "1 000", "tier": "Silver"})["budget"] == 1000


@pytest.mark.parametrize(
    ("values", "field", "reason"),
    [
        ({"tier": "Bronze"}, "tier", "not one of"),
        ({"tier": "Gold", "budget": "lots"}, "budget", "not a number"),
        ({"tier": "Gold", "budget": "NaN"}, "budget", "not a number"),
        ({"tier": "Gold", "renewal": "soon"}, "renewal", "not a date"),
        ({"tier": "Gold", "colour": "red"}, "colour", "no such custom field"),
        ({}, "tier", "required"),
        ({"tier": "  "}, "tier", "required"),
    ],
)
def test_invalid_values_are_refused(values: dict[str, str], field: str, reason: str) -> None:
    with pytest.raises(CustomFieldError) as caught:
        validate(DEFS, values)
    assert caught.value.details["field"] == field
    assert reason in caught.value.details["problems"][field]
    assert caught.value.code == "custom_field_invalid"


def test_partial_update_skips_required() -> None:
    assert validate(DEFS, {"budget": 3}, partial=True) == {"budget": 3}
