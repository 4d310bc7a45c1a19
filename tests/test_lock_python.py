"""requirements.lock installs on every Python 3.11 patch release, not only the one it was made on.

pip-compile pins for the interpreter it runs under: a lock made on 3.11.7 once pinned a release
that requires 3.11.5 or newer, and `pip install -r requirements.lock` failed on Debian 12's
3.11.2 (the image's air-gapped base). constraints.txt caps such releases; this checks every pin's
`Requires-Python` from the installed distributions' metadata, offline.
"""

from __future__ import annotations

import re
from importlib import metadata

from e2e import REPO
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

OLDEST = ("3.11.0", "3.11.2")  # the first 3.11 release and Debian 12's


def pins() -> dict[str, str]:
    """requirements.lock's `name==version` lines."""
    lines = (REPO / "requirements.lock").read_text().splitlines()
    return dict(m.groups() for line in lines if (m := re.match(r"([\w.-]+)==(\S+)", line)))


def test_every_pin_admits_the_oldest_python_311() -> None:
    refused = {}
    for name, version in pins().items():
        dist = metadata.distribution(name)
        assert dist.version == version, f"{name}: {dist.version} installed, the lock pins {version}"
        requires = SpecifierSet(dist.metadata.get("Requires-Python") or "")
        if missing := [v for v in OLDEST if v not in requires]:
            refused[canonicalize_name(name)] = f"Requires-Python {requires} refuses {missing}"
    assert not refused, f"cap these in constraints.txt, then `make lock`: {refused}"
