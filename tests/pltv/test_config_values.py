"""pltv.toml values are checked on load: days are whole numbers in range, text is text (1e400 reads as inf)."""

from __future__ import annotations

import pytest

from pltv.config import load_config
from pltv.errors import ConfigError


@pytest.mark.parametrize(
    "line",
    [
        "send_days = [1e400]",
        "send_days = [1.5]",
        "send_days = [true]",
        "send_days = [-1]",
        'send_days = "3"',
        "send_days = [99999999999999999]",
        "horizon_days = 1e400",
        "horizon_days = 0",
        "horizon_days = nan",
    ],
)
def test_bad_train_numbers_are_a_config_error_naming_the_key(tmp_path, line):
    """Non-integer, infinite or out-of-range days are refused with the section and key named."""
    (tmp_path / "pltv.toml").write_text(f"[train]\n{line}\n")
    key = line.split(" ")[0]
    with pytest.raises(ConfigError, match=rf"\[train\] {key}: expected"):
        load_config(cwd=tmp_path)


def test_a_number_where_text_is_expected_is_a_config_error(tmp_path):
    """pixel_id = 123 (unquoted) is refused with the fix, not carried on as an int."""
    (tmp_path / "pltv.toml").write_text("[capi]\npixel_id = 123\n")
    with pytest.raises(ConfigError, match=r'\[capi\] pixel_id: expected a quoted string.*pixel_id = "..."'):
        load_config(cwd=tmp_path)


def test_good_values_load(tmp_path):
    """The documented example loads."""
    (tmp_path / "pltv.toml").write_text(
        '[train]\nsend_days = [0, 1, 3, 7]\nhorizon_days = 365\n[capi]\npixel_id = "1234567890"\n'
    )
    cfg = load_config(cwd=tmp_path)
    assert cfg.train.send_days == (0, 1, 3, 7) and cfg.capi.pixel_id == "1234567890"
