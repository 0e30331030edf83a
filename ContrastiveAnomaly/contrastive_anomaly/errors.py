"""Errors whose message is a single line meant for the user (the CLI prints it and exits non-zero).

Exit codes of the ``contrastive-anomaly`` command (also listed in README.md, "Command reference"):

==== ===================================================================================================
0    success
1    an engine error without a more specific kind
2    usage: an argument is missing, unknown or out of range (argparse's own code, kept for all argument errors)
3    the model folder is missing, corrupted or does not match its config
4    the output cannot be written (not a folder, not writable, disk full)
5    registration to the template failed (probably not a brain MRI)
6    a package registry could not be reached (``data fetch``)
7    a downloaded file failed its checksum (``data fetch``)
8    the input scan cannot be used (missing, unreadable, cut off, not 3D, ...)
9    ``detect-batch``: at least one scan failed (the others were scored)
130  cancelled (SIGINT/SIGTERM); nothing was written
==== ===================================================================================================
"""

from __future__ import annotations


class ContrastiveAnomalyError(Exception):
    """Base class. ``str(error)`` is one line that says what is wrong and, where possible, what to do."""

    exit_code = 1


class UsageError(ContrastiveAnomalyError):
    """An argument is out of range or contradicts another one (same exit code as argparse's own errors)."""

    exit_code = 2


class InputError(ContrastiveAnomalyError):
    """The input image cannot be used (wrong dimensionality, NaN voxels, unreadable or cut-off file, …)."""

    exit_code = 8


class CheckpointError(ContrastiveAnomalyError):
    """A model folder is missing, corrupted, tampered with, or does not match its config."""

    exit_code = 3


class OutputError(ContrastiveAnomalyError):
    """Results cannot be written (folder not writable, disk full, …)."""

    exit_code = 4


class RegistrationError(ContrastiveAnomalyError):
    """Alignment to the template failed: the image is probably not a brain MRI."""

    exit_code = 5


class BatchFailures(ContrastiveAnomalyError):
    """``detect-batch`` finished, but some scans failed (their errors are in the summary CSV)."""

    exit_code = 9


class Cancelled(ContrastiveAnomalyError):
    """The run was interrupted (SIGINT/SIGTERM); nothing was written."""

    exit_code = 130
