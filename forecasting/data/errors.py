"""`DataError`: the one exception of the data layer (input data that cannot be used as given)."""


class DataError(ValueError):
    """Input data that cannot be used as given; the message says what to fix."""
