"""rvclora.cli: the front door — the `rvclora` command and its aliases `rvclora-train`, `rvclora-export`.

`main` parses the command line, loads only the chosen subcommand's module (`commands.COMMANDS`),
adds the shared option groups (`options`), and runs it inside the one error boundary
(`boundary`). Without a subcommand it opens the panel (`panel`). Nothing imports this package.
"""
