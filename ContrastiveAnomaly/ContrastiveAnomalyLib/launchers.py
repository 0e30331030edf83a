"""How the logic starts the engine's child process inside Slicer, and how it installs dependencies.

Both launchers have ``start(args, env, cwd, onLine, onFinished) -> handle`` with ``handle.cancel()``; ``onLine`` and
``onFinished(returncode)`` are called on the Qt main thread. Tests inject their own launcher into the logic.
"""

import inspect

import qt
import slicer

from . import install, process

POLL_INTERVAL_MS = 100


class ConsoleProcessLauncher:
    """Slicer 5.12+: ``slicer.util.launchConsoleProcess(blocking=False)``; cancel needs psutil to find the tree."""

    def start(self, args, env, cwd, onLine, onFinished):
        proc = slicer.util.launchConsoleProcess(args, updateEnvironment=env, cwd=cwd, blocking=False,
                                                logCallback=onLine, completedCallback=onFinished)
        return _ConsoleHandle(proc)


class _ConsoleHandle:
    def __init__(self, proc):
        self.proc = proc

    def cancel(self):
        process.kill_process_tree(self.proc.pid, own_process_group=False)


class PolledProcessLauncher:
    """Slicer 5.10 (and 5.12 without psutil): our own runner, polled by a ``qt.QTimer``."""

    def start(self, args, env, cwd, onLine, onFinished):
        runner = process.ChildProcessRunner(on_line=onLine, on_finished=onFinished)
        full_env = slicer.util.startupEnvironment()
        full_env.update(env)
        runner.start(args, env=full_env, cwd=cwd)
        timer = qt.QTimer()
        timer.setInterval(POLL_INTERVAL_MS)
        timer.connect("timeout()", lambda: runner.poll() or timer.stop())
        timer.start()
        return _PolledHandle(runner, timer)


class _PolledHandle:
    def __init__(self, runner, timer):
        self.runner, self.timer = runner, timer

    def cancel(self):
        self.runner.cancel()


def defaultLauncher():
    """launchConsoleProcess(blocking=False) where it exists and the process tree can be found; else our poller."""
    try:
        import psutil  # noqa: F401
        hasPsutil = True
    except ImportError:
        hasPsutil = False
    if hasPsutil and "blocking" in inspect.signature(slicer.util.launchConsoleProcess).parameters:
        return ConsoleProcessLauncher()
    return PolledProcessLauncher()


def defaultInstallApi(confirm, busy=None) -> install.SlicerInstallApi:
    try:
        import slicer.packaging as packaging
        pipEnsure, loadRequirements = packaging.pip_ensure, packaging.load_requirements
    except (ImportError, AttributeError):
        pipEnsure = loadRequirements = None
    try:
        import PyTorchUtils
        torchFactory = PyTorchUtils.PyTorchUtilsLogic
    except ImportError:
        torchFactory = None
    return install.SlicerInstallApi(confirm=confirm, pip_install=slicer.util.pip_install, pip_ensure=pipEnsure,
                                    load_requirements=loadRequirements, torch_logic_factory=torchFactory,
                                    testing=slicer.app.testingEnabled(), busy=busy)
