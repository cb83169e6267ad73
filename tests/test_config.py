from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from phobos.config import ConfigError, from_mapping, load, replace, to_mapping


@dataclass(frozen=True)
class Inner:
    rate: float = 1.0
    """A rate."""


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    """A name."""
    count: int = 2
    """A count."""
    tags: tuple[str, ...] = ("a",)
    """Tags."""
    inner: Inner = field(default_factory=Inner)
    """Nested section."""


def test_from_mapping_builds_nested_frozen_config():
    config = from_mapping(Outer, {"count": 3, "tags": ["p", "q"], "inner": {"rate": 2}})
    assert config == Outer(count=3, tags=("p", "q"), inner=Inner(rate=2.0))
    assert to_mapping(config)["inner"] == {"rate": 2.0}


def test_unknown_key_names_it_and_the_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'inner.rat'.*valid keys: rate"):
        from_mapping(Outer, {"inner": {"rat": 1}})


def test_wrong_types_are_refused():
    with pytest.raises(ConfigError, match="count: expected an integer"):
        from_mapping(Outer, {"count": "3"})
    with pytest.raises(ConfigError, match="count: expected an integer"):
        from_mapping(Outer, {"count": True})
    with pytest.raises(ConfigError, match="tags: expected a list"):
        from_mapping(Outer, {"tags": "a"})


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("count: 5\ninner:\n  rate: 0.5\n")
    config = load(Outer, path, ["inner.rate=0.25", "name=demo"])
    assert config == Outer(name="demo", count=5, inner=Inner(rate=0.25))
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load(Outer, None, ["count"])
    with pytest.raises(ConfigError, match="unknown key 'cont'"):
        load(Outer, None, ["cont=1"])


def test_replace_checks_keys_and_types():
    assert replace(Outer(), count=4).count == 4
    with pytest.raises(ConfigError, match="unknown key 'cnt'"):
        replace(Outer(), cnt=4)


def test_unquoted_dates_stay_iso_text_and_impossible_ones_name_their_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: 2013-02-01T00:00:00\n")
    assert load(Outer, path).name == "2013-02-01T00:00:00"
    assert load(Outer, None, ["name=2013-02-01"]).name == "2013-02-01"
    with pytest.raises(ConfigError, match="^name: '2013-02-30' is not a valid date-time: day"):
        load(Outer, None, ["name=2013-02-30"])


def test_malformed_yaml_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("count: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML: .*\(line 2"):
        load(Outer, path)
    with pytest.raises(ConfigError, match="override 'tags=\\[a': not valid YAML"):
        load(Outer, None, ["tags=[a"])
