"""Loading a spec re-checks the designer's rules (an edited spec with a recomputed hash is refused), and a
file that is not a spec is a one-line SpecError, never a traceback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from activation.errors import SpecError
from activation.settings import EventSettings
from activation.spec import EventSpec, load_spec
from activation.valuemap import ValueMapping


def _spec() -> EventSpec:
    return EventSpec(
        settings=EventSettings(mode="custom_value", spec_id="", event_name="pLTV_D1", send_day=1, currency="USD"),
        value_mapping=ValueMapping(kind="calibrated", floor=1.0), model_name="pltv_d1", model_version="1",
        horizon_days=365,
    )  # fmt: skip


def _rehashed(**changes) -> dict:
    """The spec's JSON edited by hand, with its content hash recomputed the way the toolkit computes it."""
    data = _spec().to_dict()
    for key, value in changes.items():
        if key == "floor":
            data["value_mapping"]["floor"] = value
        else:
            data[key] = value
    content = {k: v for k, v in data.items() if k not in ("spec_id", "created_at")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    data["spec_id"] = "spec-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return data


def test_the_unedited_spec_loads(tmp_path):
    """A round trip through the file gives the same spec."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_rehashed()))
    assert load_spec(path).spec_id == _spec().spec_id


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"event_name": "Purchase"}, "designer rule"),
        ({"floor": 1e300}, "outside 0..1e"),
        ({"threshold": float("inf")}, "outside 0..1e"),
        ({"send_day": 400}, "out of range"),
    ],
)
def test_an_edited_spec_with_a_recomputed_hash_is_refused_when_it_breaks_a_designer_rule(
    tmp_path, changes, why
):
    """custom_value named Purchase, a floor of 1e300, an infinite threshold, send day 400: refused on load."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_rehashed(**changes)))
    with pytest.raises(SpecError, match=why):
        load_spec(path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"schema_version": 1, "send_day": 1e400}', "spec"),
        ("{'a': 1}".encode("utf-16"), "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_a_file_that_is_not_a_spec_is_a_one_line_spec_error(tmp_path, content, why):
    """send_day 1e400, a non-UTF-8 or deeply nested file: SpecError (exit 2), no traceback."""
    path = tmp_path / "spec.json"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=why):
        load_spec(path)


def test_send_day_1e400_in_a_rehashed_spec_is_refused(tmp_path):
    """JSON 1e400 reads as inf: int(inf) was an OverflowError traceback."""
    data = _rehashed()
    text = json.dumps(data).replace('"send_day": 1', '"send_day": 1e400')
    path = tmp_path / "spec.json"
    path.write_text(text)
    with pytest.raises(SpecError, match="send_day must be a whole number"):
        load_spec(path)


def test_a_folder_given_as_the_spec_is_a_spec_error(tmp_path):
    """--spec pointing at a directory names it."""
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path)


@pytest.mark.parametrize("name", ["custom_value", "threshold", "append_value"])
def test_spec_files_written_before_the_spec_held_its_settings_load_with_the_same_id(tmp_path, name):
    """tests/activation/specs/*.json were written by the EventSpec that copied EventSettings' six fields:
    the JSON layout is unchanged, so each loads with its spec_id and is written back byte for byte."""
    path = Path(__file__).parent / "specs" / f"{name}.json"
    spec = load_spec(path)
    assert spec.spec_id == json.loads(path.read_text())["spec_id"]
    assert spec.to_json() == path.read_text()
    assert spec.settings.mode == name and spec.event_settings().spec_id == spec.spec_id
