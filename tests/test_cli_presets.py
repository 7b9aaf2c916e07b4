"""``pinnsolve burgers --preset NAME``: presets are data, explicit options override them."""

from __future__ import annotations

import argparse

import pytest

from pinnsolve.cli import (
    BURGERS_DEFAULTS,
    BURGERS_PRESETS,
    BURGERS_REGIMES,
    UsageError,
    apply_preset,
    build_parser,
    burgers_regime,
    explicit_options,
    main,
)
from pinnsolve.io import load_run


def parse(*argv: str) -> argparse.Namespace:
    args = build_parser().parse_args(list(argv))
    return apply_preset(args, BURGERS_PRESETS, explicit_options(argv))


def tiny_run(tmp_path, *extra: str) -> dict:
    """``pinnsolve burgers`` on 64 points, a 1 x 8 network, 3 iterations; returns the
    run's stored configuration (one thread: tests/conftest.py)."""
    out = tmp_path / "run.h5"
    assert main(["burgers", "--nu", "0.1", "--points", "64", "--layers", "8", "--quiet",
                 "--max-iter", "3", *extra, "--out", str(out)]) == 0
    return load_run(out)["config"]


def test_explicit_options_are_exactly_those_given():
    argv = ["burgers", "--nu", "0.1", "--max-time", "5", "--no-hard", "--preset", "fast"]
    assert explicit_options(argv) == {"command", "nu", "max_time", "hard", "preset"}
    assert explicit_options(["burgers"]) == {"command"}


def test_every_preset_names_real_options():
    dests = set(vars(build_parser().parse_args(["burgers"])))
    assert {"default", "accurate", "fast"} <= set(BURGERS_PRESETS)
    for name, preset in BURGERS_PRESETS.items():
        assert set(preset) <= dests, (name, set(preset) - dests)


def test_no_preset_is_the_default_recipe():
    plain = vars(build_parser().parse_args(["burgers"]))
    assert vars(parse("burgers")) == {**plain, **BURGERS_PRESETS["default"]}
    for key, value in BURGERS_DEFAULTS.items():
        if key not in BURGERS_PRESETS["default"]:
            assert plain[key] == value


@pytest.mark.parametrize("name", ["accurate", "fast"])
def test_preset_sets_its_options(name):
    args = parse("burgers", "--preset", name)
    for key, value in BURGERS_PRESETS[name].items():
        assert getattr(args, key) == value, key


def test_explicit_options_override_the_preset():
    preset = BURGERS_PRESETS["accurate"]
    assert preset["max_time"] != 7.0 and preset["optimizer"] != "lbfgs"
    args = parse("burgers", "--preset", "accurate", "--max-time", "7", "--optimizer", "lbfgs")
    assert args.max_time == 7.0 and args.optimizer == "lbfgs"
    for key in set(preset) - {"max_time", "optimizer"}:
        assert getattr(args, key) == preset[key]
    # an explicit value equal to the built-in default still wins over the preset
    default_time = BURGERS_REGIMES['smooth']['max_time']
    assert parse("burgers", "--preset", "accurate", "--max-time",
                 str(default_time)).max_time == default_time
    # boolean options can be switched either way against a preset
    hard = {"hard": True}
    for flag, want in (("--hard", True), ("--no-hard", False)):
        args = build_parser().parse_args(["burgers", flag])
        args.preset = "x"
        assert apply_preset(args, {"x": {"hard": not want}}, {"hard"}).hard is want
    args = build_parser().parse_args(["burgers"])
    args.preset = "x"
    assert apply_preset(args, {"x": hard}, set()).hard is True


def test_bad_presets_are_refused_clearly(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["burgers", "--preset", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    args = build_parser().parse_args(["burgers"])
    args.preset = "nope"
    with pytest.raises(UsageError, match="unknown preset 'nope'"):
        apply_preset(args, BURGERS_PRESETS, set())
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        apply_preset(args, {"nope": {"bogus": 1}}, set())


def test_preset_reaches_the_run(tmp_path):
    """A tiny end-to-end run: the results file records the preset's settings, except
    those given explicitly."""
    given = {"points": 64, "layers": "8", "max_iter": 3}
    config = tiny_run(tmp_path, "--preset", "accurate")
    assert config["preset"] == "accurate"
    for key, value in given.items():
        assert config[key] == value
    for key, value in BURGERS_PRESETS["accurate"].items():
        if key not in given:
            stored = config["hard_constraints"] if key == "hard" else config[key]
            assert stored == value, key


def test_default_network_and_budget_grow_for_sharp_shocks():
    """nu >= 0.01: 3 x 20, 170 s; below: 3 x 30, 420 s; explicit options and presets win."""
    assert burgers_regime(0.01) == BURGERS_REGIMES["smooth"] == {"layers": "20,20,20",
                                                                 "max_time": 170.0}
    assert burgers_regime(0.01 / 3.14159) == BURGERS_REGIMES["shock"] == {
        "layers": "30,30,30", "max_time": 420.0}
    assert burgers_regime(0.001 / 3.14159) == BURGERS_REGIMES["thin"] == {
        "layers": "30,30,30", "max_time": 420.0, "continuation": "nu:0.01/pi"}
    args = parse("burgers")
    assert args.max_time is None and args.layers is None  # resolved from --nu at run time
    assert parse("burgers", "--preset", "fast").max_time == BURGERS_PRESETS["fast"]["max_time"]
    assert parse("burgers", "--preset", "accurate").layers == BURGERS_PRESETS["accurate"][
        "layers"]
    helps = " ".join(build_parser()._subparsers._group_actions[0].choices["burgers"]
                     .format_help().split())
    assert "(default: 170 s for nu >= 0.01, 420 s below)" in helps
    assert "(default: 20,20,20 for nu >= 0.01, 30,30,30 below)" in helps


def test_burgers_refines_with_rar_by_default_and_run_redraws(tmp_path):
    assert parse("burgers").adaptive == "rar" and parse("burgers").points == 2540
    assert parse("burgers", "--adaptive", "none").adaptive == "none"
    run_help = " ".join(build_parser()._subparsers._group_actions[0].choices["burgers"]
                        .format_help().split())
    assert "none: uniform redraws (default: rar)" in run_help
    config = tiny_run(tmp_path, "--resample-every", "1")
    assert config["adaptive"] == "rar" and config["rar_add"] == 10
    from pinnsolve.cli import RUN_DEFAULTS

    assert RUN_DEFAULTS["adaptive"] == "none"  # other problems keep uniform redraws


def test_resample_every_0_keeps_the_points_fixed_unless_rar_is_asked_for(tmp_path, capsys):
    config = tiny_run(tmp_path, "--resample-every", "0")
    assert config["adaptive"] == "none" and config["resample_every"] == 0
    with pytest.raises(SystemExit) as exc:
        main(["burgers", "--nu", "0.1", "--points", "64", "--layers", "8", "--quiet",
              "--max-iter", "3", "--resample-every", "0", "--adaptive", "rar"])
    assert exc.value.code == 2
    assert "--adaptive rar needs --resample-every N > 0" in capsys.readouterr().err


def test_thin_shocks_continue_from_nu_0_01_over_pi_unless_told_otherwise(tmp_path):
    common = ["--points", "64", "--layers", "8", "--quiet", "--max-iter", "8",
              "--continuation-steps", "1"]
    out = tmp_path / "thin.h5"
    assert main(["burgers", "--nu", "0.001/pi", *common, "--out", str(out)]) == 0
    assert load_run(out)["config"]["continuation"] == "nu:0.01/pi/1"
    for extra, want in ((["--continuation", "none"], None), (["--continuation", "nu:0.1"],
                                                               "nu:0.1/1")):
        assert main(["burgers", "--nu", "0.001/pi", *common, *extra, "--out", str(out)]) == 0
        assert load_run(out)["config"].get("continuation") == want
    assert main(["burgers", "--nu", "0.01/pi", *common, "--out", str(out)]) == 0
    assert load_run(out)["config"].get("continuation") is None
    helps = " ".join(build_parser()._subparsers._group_actions[0].choices["burgers"]
                     .format_help().split())
    assert "(default: nu:0.01/pi for nu < 0.001, else none)" in helps
