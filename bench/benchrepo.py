"""A bench's throwaway repository: what its session needs committed on `main`, with a
fixed identity (the machine's git config may have none)."""

import os
import subprocess

IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def commit_all(d, message="init"):
    """`git init` in `d` and one commit of every file there."""
    env = {**os.environ, **IDENTITY}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(["git", *args], cwd=d, check=True, capture_output=True, env=env)
