"""The README stays true: the two commands, and a row for every setting."""

from pathlib import Path

from config.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    missing = [
        name for name in Settings.model_fields if f"| `TENANTGATE_{name.upper()}` |" not in README
    ]
    assert missing == []


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `TENANTGATE_")]
    names = {row.split("`")[1].removeprefix("TENANTGATE_").lower() for row in rows}
    assert names == set(Settings.model_fields)


def test_the_two_commands_are_there() -> None:
    assert "make run" in README
    assert "make test" in README
