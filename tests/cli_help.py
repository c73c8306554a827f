"""What a command line leaves unexplained: options and subcommands without a help text."""

from __future__ import annotations

import argparse


def undocumented(parser: argparse.ArgumentParser, prog: str = "") -> list[str]:
    """Every option, positional or subcommand of `parser` (recursively) with no help text;
    `argparse.SUPPRESS` (a deliberately hidden option) counts as explained."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}  # added with help=, by first name
            primary = {id(action.choices[name]) for name in helps}
            for name, sub in action.choices.items():
                if name in helps or id(sub) not in primary:  # an alias repeats its command
                    if not helps.get(name):
                        missing.append(f"{prog} {name}")
                    missing += undocumented(sub, f"{prog} {name}")
        elif not action.help:
            missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


def commands(parser: argparse.ArgumentParser) -> set[str]:
    """The subcommand names `parser` accepts (first level)."""
    return {name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices}
