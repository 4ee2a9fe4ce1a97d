"""flickertag's exceptions. Every error flickertag raises is a :class:`FlickertagError`
(a ``ValueError``); a missing file is also a ``FileNotFoundError`` and another failed
read or write an ``OSError``, so ``except FileNotFoundError`` works as for ``open``."""


class FlickertagError(ValueError):
    """An error reported by flickertag (bad argument, unreadable model or image, ...).
    The message names the argument as you pass it (``overwrite=True``, ``resize=224``)."""


class FlickertagFileNotFoundError(FlickertagError, FileNotFoundError):
    """A file or folder flickertag needs does not exist."""


class FlickertagOSError(FlickertagError, OSError):
    """Reading or writing a file failed (permissions, a full disk, ...)."""


# Shown as `flickertag.FlickertagError` in tracebacks: the name users import.
for _cls in (FlickertagError, FlickertagFileNotFoundError, FlickertagOSError):
    _cls.__module__ = "flickertag"
