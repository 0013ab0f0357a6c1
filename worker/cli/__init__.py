"""The `roi-worker` command line: argparse and rendering only, one module per command group."""
