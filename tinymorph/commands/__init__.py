"""Subcommands of the `tinymorph` CLI other than the editor: one module per command group.
They draw with rich and never import Textual."""
