"""The `deepfake-detector` dispatcher: every command's --help and argument errors answer without TensorFlow."""
import subprocess
import sys

from conftest import PROJECT_ROOT

from deepfake_detector.cli import COMMANDS, main

# Runs each command's --help and an argument error in one interpreter, then reports which heavy modules loaded.
PROBE = """
import contextlib, io, sys
from deepfake_detector.cli import main
for argv in ([c, '--help'] for c in sys.argv[1:]), ([c, '--no-such-flag'] for c in sys.argv[1:]):
    for args in argv:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                status = main(args)
            except SystemExit as stop:
                status = stop.code
        print(' '.join(args), status, 'usage:' in out.getvalue())
print('loaded', 'tensorflow' in sys.modules, 'keras' in sys.modules)
"""


def test_help_and_argument_errors_of_every_command_do_not_import_tensorflow():
    result = subprocess.run([sys.executable, "-c", PROBE, *COMMANDS], capture_output=True, text=True, timeout=300,
                            cwd=PROJECT_ROOT, env={"PYTHONPATH": str(PROJECT_ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for command in COMMANDS:
        assert f"{command} --help 0 True" in lines
        assert f"{command} --no-such-flag 2 True" in lines
    assert lines[-1] == "loaded False False"


def test_dispatcher_usage_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert all(f"  {command} " in usage for command in COMMANDS)
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
