"""Spark's and Delta's errors, told apart by their types rather than by their messages."""

from __future__ import annotations

# Importing the captured module makes PySpark raise these types for Delta's Java
# exceptions; without it they arrive as a plain Py4JJavaError.
from delta.exceptions.captured import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException

# Another writer committed to the table first.
CONCURRENT_COMMIT: tuple[type[Exception], ...] = (
    DeltaConcurrentModificationException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    ConcurrentTransactionException,
)


def is_analysis_error(err: BaseException) -> bool:
    """The query itself is wrong for the data (a column or type Spark cannot resolve)."""
    return isinstance(err, AnalysisException)


def spark_message(err: BaseException) -> str:
    """The Java exception behind an error PySpark did not convert, or the error's own text."""
    if isinstance(err, Py4JJavaError):
        return str(err.java_exception.toString())
    return str(err)
