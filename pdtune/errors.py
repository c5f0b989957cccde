"""Errors a user can cause; the CLI turns each into a one-line message and a non-zero exit."""


class PdtuneError(Exception):
    """Base for errors caused by input, configuration or environment, not by a bug."""


class ModelNotFoundError(PdtuneError):
    """A model path, preset or package that does not exist."""


class UnsupportedModelError(PdtuneError):
    """A checkpoint whose architecture or format pdtune cannot serve."""


class InvalidRequestError(PdtuneError):
    """A request whose parameters or prompt cannot be served (becomes an error record)."""


class InputFileError(PdtuneError):
    """An input file that is missing or unusable as a whole."""


class PromptTooLongError(InvalidRequestError):
    """A prompt that can never fit the model's context or the KV pool."""
