"""The one exception hierarchy of tinymorph.

Owns: every exception type raised on purpose by tinymorph code. Imports nothing of ours.
Errors are translated only at the edges: the CLI maps them to an exit code and a message, the
UI to a notification. Each class names the exit code the CLI uses for it.
"""


class TinymorphError(Exception):
    """Base class of every error tinymorph raises on purpose.

    The message is written for the user: it says what happened and what to do.
    """

    exit_code = 1


class ConfigError(TinymorphError):
    """A config file, environment variable or CLI flag has a bad value or an unknown key."""

    exit_code = 2


class DocumentError(TinymorphError):
    """The file the writer asked for cannot be opened or saved as it is (a directory,
    no permission, not UTF-8 text, disk full). The text in the editor is never lost."""

    exit_code = 3


class StoreError(TinymorphError):
    """The SQLite store cannot be opened or migrated."""

    exit_code = 4


class ModelError(TinymorphError):
    """The language model cannot be found, assembled, converted or loaded."""

    exit_code = 5


class NetworkDisabledError(ModelError):
    """Something needed the network, but the user did not pass the explicit hub option."""


class SteeringError(TinymorphError):
    """A steering spec does not fit the model (wrong width, a non-finite value)."""

    exit_code = 6


class SAEError(TinymorphError):
    """An SAE or its feature data cannot be found, loaded, trained or does not fit the model
    (another model, another width `d_in`, a hook point that is not the residual stream)."""

    exit_code = 7


class PresetError(TinymorphError):
    """A steering preset is malformed or made for another model or SAE; nothing was applied."""

    exit_code = 8
