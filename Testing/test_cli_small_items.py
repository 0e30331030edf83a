"""Small command-line promises: every --help ends with the closing line, the training preset suits the device, the
exit codes are documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from contrastive_anomaly.cli.commands import default_preset
from contrastive_anomaly.cli.main import EPILOG, build_parser
from contrastive_anomaly.errors import BatchFailures, CheckpointError, InputError, OutputError, UsageError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", ["benchmark", "detect", "detect-batch", "demo", "train", "train-encoder"])
def test_help_ends_with_the_closing_line(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    assert capsys.readouterr().out.rstrip().endswith(EPILOG)


@pytest.mark.parametrize(("device", "cuda", "expected"), [
    ("auto", False, "compact"), ("cpu", True, "compact"), ("auto", True, "paper"), ("cuda:1", True, "paper"),
    ("gpu", True, "paper")])
def test_training_preset_suits_the_device(device, cuda, expected):
    assert default_preset(device, cuda) == expected


def test_train_without_preset_leaves_it_unset_for_the_device_rule():
    args = build_parser().parse_args(["train", "--phantoms", "2", "--out", "x"])
    assert args.preset is None


def test_exit_codes_are_distinct_and_documented():
    codes = {cls.__name__: cls.exit_code for cls in (UsageError, InputError, CheckpointError, OutputError,
                                                     BatchFailures)}
    assert len(set(codes.values())) == len(codes) and codes["UsageError"] == 2 and codes["InputError"] == 8
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for code in (2, 3, 4, 5, 8, 9):
        assert f"| {code} |" in readme, f"exit code {code} missing from the README table"
