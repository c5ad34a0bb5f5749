"""CLI subcommands: each module has register(subparsers) which sets func=run on its parser."""
