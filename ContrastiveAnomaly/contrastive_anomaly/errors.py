"""Errors whose message is a single line meant for the user (the CLI prints it and exits non-zero)."""

from __future__ import annotations


class ContrastiveAnomalyError(Exception):
    """Base class. ``str(error)`` is one line that says what is wrong and, where possible, what to do."""

    exit_code = 1


class InputError(ContrastiveAnomalyError):
    """The input image cannot be used (wrong dimensionality, NaN voxels, unreadable file, …)."""

    exit_code = 2


class CheckpointError(ContrastiveAnomalyError):
    """A model folder is missing, corrupted, tampered with, or does not match its config."""

    exit_code = 3


class OutputError(ContrastiveAnomalyError):
    """Results cannot be written (folder not writable, disk full, …)."""

    exit_code = 4


class RegistrationError(ContrastiveAnomalyError):
    """Alignment to the template failed: the image is probably not a brain MRI."""

    exit_code = 5


class Cancelled(ContrastiveAnomalyError):
    """The run was interrupted (SIGINT/SIGTERM); nothing was written."""

    exit_code = 130
