"""Every option of every command says what it does and what happens without it; every command has examples."""

from __future__ import annotations

import argparse

import yaml

from cnnlab.cli import main
from cnnlab.cli.main import build_parser
from cnnlab.runs.config import TrainConfig


def all_parsers(parser: argparse.ArgumentParser, name: str = "cnnlab") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += all_parsers(sub, f"{name} {sub_name}")
    return found


def test_every_option_of_every_command_has_help_with_its_default():
    missing = []
    parsers = all_parsers(build_parser())
    assert len(parsers) >= 15
    for name, parser in parsers:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            text = formatter._expand_help(action) if action.help else ""
            needs_default = action.option_strings and not action.required  # a required option has none
            if not text or (needs_default and "default" not in text):
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help or default: {missing}"


def test_training_flags_show_the_real_config_default_not_none():
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "(default: None)" not in help_text
    cfg = TrainConfig()
    for flag, value in (("--epochs", cfg.epochs), ("--lr", cfg.lr), ("--optimizer", cfg.optimizer),
                        ("--weight-decay", cfg.weight_decay), ("--seed", cfg.seed)):
        section = help_text.split(f"  {flag} ", 1)[1].split("\n  --", 1)[0]
        assert f"(default: {value})" in " ".join(section.split()), flag


def test_every_command_ends_with_examples():
    for name, parser in all_parsers(build_parser())[1:]:
        assert parser.epilog and "examples:\n  cnnlab " in parser.epilog, name


def test_aug_help_lists_names_units_ranges_and_presets(capsys):
    try:
        main(["train", "--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    table = text.split("--augment presets:\n", 1)[1]
    rows = {line.split()[0]: line for line in table.splitlines()[1:] if line.strip()}
    assert set(rows) == {"rotation", "hflip", "vflip", "zoom", "translate", "brightness", "contrast", "saturation",
                         "hue", "noise"}
    assert "degrees" in rows["rotation"] and "0-180" in rows["rotation"] and rows["rotation"].split()[-3:] == ["5", "10", "20"]
    assert "probability" in rows["vflip"] and rows["vflip"].split()[-1] == "0.1"


def test_print_config_is_complete_yaml_that_config_reads_back(tmp_path, capsys):
    assert main(["train", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed) == TrainConfig().to_dict()
    assert "# learning rate" in printed  # every key is documented by its flag's help
    changed = tmp_path / "my.yaml"
    changed.write_text(printed.replace("\nepochs: 10\n", "\nepochs: 3\n"))
    assert main(["train", "--config", str(changed), "--lr", "0.5", "--print-config"]) == 0
    again = yaml.safe_load(capsys.readouterr().out)
    assert again == {**TrainConfig().to_dict(), "epochs": 3, "lr": 0.5}


def test_aug_out_of_range_is_one_line_naming_the_range(tmp_path, capsys):
    assert main(["train", "--aug", "hflip=2", "--epochs", "1", "--shapes-per-class", "2", "--output", str(tmp_path / "r")]) == 2
    assert "--aug hflip=2 is out of range: use a number from 0 to 1" in capsys.readouterr().err
