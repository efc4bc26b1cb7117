"""Subcommands of the ``zeroshot`` command, one module each (``cmd_<name>.py``)."""
