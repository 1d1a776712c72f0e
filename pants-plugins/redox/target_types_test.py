"""`./pants help <target>` works for every target of the vocabulary.

Pants 2.17's help reads each field's raw-value type from the annotations of its `compute_value`;
an unannotated override (as `redox_module`'s `config` had) made `./pants help redox_module`,
`redox_system` and `help targets` stop with `[ERROR] 'raw_value'`. This builds the help of every
field the way the help goal does.
"""
from __future__ import annotations

import pytest
from pants.engine.unions import UnionMembership
from pants.help.help_info_extracter import TargetFieldHelpInfo, TargetTypeHelpInfo

from redox import register


@pytest.mark.parametrize("target_type", register.target_types(), ids=lambda t: t.alias)
def test_help_of_every_target_type(target_type) -> None:
    info = TargetTypeHelpInfo.create(
        target_type, provider="redox", union_membership=UnionMembership({}), get_field_type_provider=None
    )
    assert info.fields, target_type.alias
    for field in target_type.class_field_types(UnionMembership({})):
        assert TargetFieldHelpInfo.create(field, provider="redox").type_hint
