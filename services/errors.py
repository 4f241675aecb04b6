"""The one exception type of the service manager: its message is what the user reads."""


class ServiceError(RuntimeError):
    """A server could not be installed, started, or checked; the message says what to do."""
