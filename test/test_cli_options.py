"""Argument checks shared by the command-line tools: a bad count, rate or box is an argparse
error naming the option, never a traceback or a silently different run."""

from __future__ import annotations

import argparse

import pytest

from fartrack_ros import demo, soak
from fartrack_ros.cli import bench, evaluate, make_data, track, train
from fartrack_ros.cli.options import comma_choices, int_at_least, non_negative_float, positive_float, positive_int


@pytest.mark.parametrize("parse,good,bad", [
    (positive_int, {"1": 1, "250": 250}, ["0", "-3", "1.5", "x"]),
    (int_at_least(5), {"5": 5}, ["4"]),
    (positive_float, {"0.5": 0.5, "30": 30.0}, ["0", "-5", "nan", "inf", "fast"]),
    (non_negative_float, {"0": 0.0, "2.5": 2.5}, ["-0.1", "nan"]),
])
def test_number_types_accept_their_range_only(parse, good, bad):
    assert {text: parse(text) for text in good} == good
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            parse(text)


def test_comma_choices_accept_listed_items_only():
    parse = comma_choices(("a", "bb"))
    assert parse("bb, a,") == ["bb", "a"]
    for text in ("", ",", "a,c", "A"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a comma list of a, bb"):
            parse(text)


@pytest.mark.parametrize("parser,args", [
    (demo.build_parser(), ["--frames", "1"]),
    (demo.build_parser(), ["--rate", "0"]),
    (demo.build_parser(), ["--grace", "-1"]),
    (soak.build_parser(), ["--frames", "0"]),
    (soak.build_parser(), ["--sample-every", "0"]),
    (soak.build_parser(), ["--template-cap", "4"]),
    (evaluate.build_parser(), ["--max-frames", "0"]),
    (evaluate.build_parser(), ["--max-frames", "1"]),  # the first frame only initialises: nothing to score
    (evaluate.build_parser(), ["--seed-base", "-5"]),
    (make_data.build_parser(), ["out", "--count", "2", "--jpeg-quality", "101"]),
    (make_data.build_parser(), ["out", "--count", "-1"]),
    (make_data.build_parser(), ["out", "--count", "1", "--seed-base", "-1"]),
    (train.build_parser(), ["--out", "run", "--lr", "nan"]),
    (train.build_parser(), ["--out", "run", "--seed", "-1"]),
    (demo.build_parser(), ["--difficulty", "2"]),
    (demo.build_parser(), ["--difficulty", "nan"]),
    (demo.build_parser(), ["--seed", "-3"]),
    (demo.build_parser(), ["--device", "foo"]),
])
def test_tools_refuse_bad_values_naming_the_option(parser, args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(args)
    assert exit_info.value.code == 2
    assert f"argument {args[-2]}" in capsys.readouterr().err  # the last option given is the bad one


def test_an_empty_variant_means_the_whole_checkpoint_in_every_tool():
    assert evaluate.build_parser().parse_args(["--variant", ""]).variant == ""
    assert soak.build_parser().parse_args(["--variant", ""]).variant == ""
    assert track.build_parser().parse_args(["in", "--init", "1,2,3,4", "--variant", ""]).variant == ""


def test_bench_refuses_zero_rounds(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])
    assert "argument --rounds: expected an integer >= 1" in capsys.readouterr().err


def test_soak_refuses_a_warm_up_as_long_as_the_run(capsys):
    with pytest.raises(SystemExit):
        soak.main(["--frames", "50", "--warmup-frames", "80"])
    assert "warm-up (80 frames) must be shorter than --frames 50" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the default warm-up covers twice the cap: 32 frames here
        soak.main(["--frames", "30", "--template-cap", "16"])
    assert "warm-up (32 frames, by default)" in capsys.readouterr().err


def test_soak_default_warm_up_lets_every_memory_fill_first():
    assert soak.SoakConfig(frames=100, template_cap=16).warmup == 32
    assert soak.SoakConfig(frames=10_000, template_cap=16).warmup == 1000


def test_ctrl_c_and_sigterm_end_a_tool_with_one_line_and_their_exit_codes(capsys):
    import os
    import signal
    import time

    from fartrack_ros.cli.messages import command

    @command("fartrack-x")
    def interrupted(argv=None) -> int:
        raise KeyboardInterrupt

    @command("fartrack-x")
    def terminated(argv=None) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises in this thread first
        return 0

    before = signal.getsignal(signal.SIGTERM)
    assert interrupted() == 130
    assert capsys.readouterr().err == "fartrack-x: stopped by Ctrl-C\n"
    assert terminated() == 143
    assert capsys.readouterr().err == "fartrack-x: stopped by SIGTERM\n"
    assert signal.getsignal(signal.SIGTERM) is before  # given back after the tool


@pytest.mark.parametrize("args, message", [
    (["--node-variant", "bogus"], "argument --node-variant: variant='bogus' is not valid"),
    (["--node-rates", "abc"], "argument --node-rates: expected a comma list of numbers >= 0"),
    (["--node-rates", "-5"], "argument --node-rates: expected a comma list of numbers >= 0"),
    (["--scaling-precisions", "float8"], "argument --scaling-precisions: expected a comma list of float32"),
    (["--scaling-variant", "tiny", "--variants", "bundled"], "--scaling-variant tiny is not among --variants"),
    (["--skip", "model,tracker,scaling,opencv,node"], "--skip leaves no section to run"),
])
def test_bench_refuses_node_and_scaling_settings_before_any_section_runs(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    parsed = bench.parse_args(["--node-rates", "0,30,30", "--node-variant", "bundled", "--scaling-variant", "tiny",
                               "--variants", "tiny", "--skip", "node"])
    assert parsed.node_rates == [0.0, 30.0] and parsed.node_variant == "bundled"
    assert bench.parse_args(["--variants", "tiny,pico"]).scaling_variant == "tiny"  # bundled not listed: the first
    assert bench.parse_args([]).scaling_variant == "bundled"
