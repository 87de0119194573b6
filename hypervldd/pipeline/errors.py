"""The pipeline's user-facing error."""

from __future__ import annotations


class PipelineError(ValueError):
    """A user-facing failure of the pipeline (bad argument, missing file)."""
