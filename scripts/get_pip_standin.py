"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test --venv runs it as `python get_pip.py [pip options] [packages]` inside a fresh
virtualenv. We get pip from the interpreter's bundled ensurepip, then install the requested
packages (pip, setuptools, wheel at the versions ansible-test asks for) from PyPI.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
