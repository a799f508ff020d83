"""The browser tests rely on xdist_group to share one server and one worker: check it holds."""

from __future__ import annotations

import os

import pytest

from tests.browser.conftest import BROWSER_GROUP

pytestmark = BROWSER_GROUP


def test_the_browser_group_reaches_the_scheduler(request: pytest.FixtureRequest) -> None:
    for item in request.session.items:
        if "tests/browser/" in item.nodeid:
            marker = item.get_closest_marker("xdist_group")
            assert marker is not None, f"{item.nodeid} lacks `pytestmark = BROWSER_GROUP`"
            assert marker.args == ("browser",)
    if "PYTEST_XDIST_WORKER" in os.environ:  # distributed: the group must reach the scheduler
        assert request.config.getvalue("loadgroup"), "the suite runs with --dist loadgroup"
        assert request.node.nodeid.endswith("@browser"), (
            "pytest-xdist lost the xdist_group suffix (see pytest-dev/pytest-xdist#1386): the "
            "browser tests would spread over workers, each starting a server and a browser"
        )
