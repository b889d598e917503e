"""Every setting is documented where operators look: README's table and .env.example."""

from __future__ import annotations

import re

from dotenv import dotenv_values

from config.settings import Settings
from tests.conftest import REPO_ROOT

VARIABLES = {f"VTRACK_{name.upper()}" for name in Settings.model_fields}


def test_every_setting_has_a_row_in_the_readme_settings_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    settings_section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `(VTRACK_[A-Z0-9_]+)` \|", settings_section, re.MULTILINE))
    assert VARIABLES - rows == set(), "settings missing from README's table"
    assert rows - VARIABLES == set(), "README documents settings that do not exist"


def test_env_example_lists_every_setting_with_a_valid_default() -> None:
    values = dotenv_values(REPO_ROOT / ".env.example")
    listed = {name for name in values if name.startswith("VTRACK_")}
    assert VARIABLES - listed == set(), "settings missing from .env.example"
    assert listed - VARIABLES == set(), ".env.example lists settings that do not exist"
    from_example = {
        name.removeprefix("VTRACK_").lower(): value
        for name, value in values.items()
        if name.startswith("VTRACK_")
    }
    parsed = Settings.model_validate(from_example)
    assert parsed.model_dump() == Settings.model_construct().model_dump()
