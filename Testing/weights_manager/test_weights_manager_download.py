"""WeightsManager downloads against a local HTTP server: checksum, resume, license, offline."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import pytest

from UniversalSegLib.progress import ProgressEvent
from UniversalSegLib.weights.errors import ChecksumError, DownloadError, LicenseNotAcceptedError
from UniversalSegLib.weights.manager import WeightsManager

PAYLOAD = os.urandom(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _manager(tmp_path, catalog, retries: int = 3) -> WeightsManager:
    manager = WeightsManager(home=tmp_path / "home", catalog=catalog)
    manager.retry_delay = 0.0
    manager.retries = retries
    manager.timeout = 10.0
    return manager


def test_download_verifies_checksum_and_reports_progress(tmp_path, file_server, catalog_factory):
    file_server.files["w.pth"] = PAYLOAD
    catalog = catalog_factory(
        {"m": {"file_name": "w.pth", "url": file_server.url("w.pth"), "sha256": PAYLOAD_SHA}}
    )
    manager = _manager(tmp_path, catalog)
    events: list[ProgressEvent] = []

    path = manager.download("m", progress=events.append)

    assert path == manager.path("m") and path.read_bytes() == PAYLOAD
    assert not path.with_name("w.pth.part").exists()
    assert manager.is_available("m")
    assert events[-1].stage == "download" and events[-1].done == len(PAYLOAD) == events[-1].total
    assert file_server.requests == [("w.pth", None)]
    manager.download("m", progress=False)  # cached: no new request
    assert len(file_server.requests) == 1


def test_interrupted_transfer_resumes_with_range(tmp_path, file_server, catalog_factory):
    file_server.files["w.pth"] = PAYLOAD
    file_server.drop_after["w.pth"] = 70_000
    catalog = catalog_factory(
        {"m": {"file_name": "w.pth", "url": file_server.url("w.pth"), "sha256": PAYLOAD_SHA}}
    )

    path = _manager(tmp_path, catalog).download("m", progress=False)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == PAYLOAD_SHA
    assert file_server.requests == [("w.pth", None), ("w.pth", "bytes=70000-")]


def test_interrupted_download_resumes_on_next_call(tmp_path, file_server, catalog_factory):
    file_server.files["w.pth"] = PAYLOAD
    file_server.drop_after["w.pth"] = 50_000
    catalog = catalog_factory(
        {"m": {"file_name": "w.pth", "url": file_server.url("w.pth"), "sha256": PAYLOAD_SHA}}
    )
    manager = _manager(tmp_path, catalog, retries=0)

    with pytest.raises(DownloadError, match="interrupted"):
        manager.download("m", progress=False)
    part = manager.path("m").with_name("w.pth.part")
    assert part.stat().st_size == 50_000 and not manager.is_available("m")

    manager.download("m", progress=False)
    assert manager.path("m").read_bytes() == PAYLOAD and not part.exists()
    assert file_server.requests[-1] == ("w.pth", "bytes=50000-")


def test_server_without_range_support_restarts_cleanly(tmp_path, file_server, catalog_factory):
    file_server.files["w.pth"] = PAYLOAD
    file_server.drop_after["w.pth"] = 10_000
    file_server.honour_range = False
    catalog = catalog_factory(
        {"m": {"file_name": "w.pth", "url": file_server.url("w.pth"), "sha256": PAYLOAD_SHA}}
    )

    path = _manager(tmp_path, catalog).download("m", progress=False)

    assert path.read_bytes() == PAYLOAD


def test_wrong_checksum_leaves_nothing_behind(tmp_path, file_server, catalog_factory):
    file_server.files["w.pth"] = PAYLOAD
    wrong = hashlib.sha256(b"something else").hexdigest()
    catalog = catalog_factory({"m": {"file_name": "w.pth", "url": file_server.url("w.pth"), "sha256": wrong}})
    manager = _manager(tmp_path, catalog)

    with pytest.raises(ChecksumError, match="sha256 mismatch") as excinfo:
        manager.download("m", progress=False)

    assert wrong in str(excinfo.value) and PAYLOAD_SHA in str(excinfo.value)
    assert list(manager.cache_dir.iterdir()) == []


def test_unknown_checksum_downloads_with_warning(tmp_path, file_server, catalog_factory, caplog):
    file_server.files["w.pth"] = PAYLOAD
    catalog = catalog_factory({"m": {"file_name": "w.pth", "url": file_server.url("w.pth"), "sha256": None}})

    with caplog.at_level(logging.WARNING):
        _manager(tmp_path, catalog).download("m", progress=False)

    assert "could not be verified" in caplog.text and PAYLOAD_SHA in caplog.text


def test_license_must_be_accepted_once(tmp_path, file_server, catalog_factory):
    file_server.files["a.pth"] = PAYLOAD
    file_server.files["b.pth"] = PAYLOAD[:1000]
    catalog = catalog_factory(
        {
            "a": {"file_name": "a.pth", "url": file_server.url("a.pth"), "license": "restricted"},
            "b": {"file_name": "b.pth", "url": file_server.url("b.pth"), "license": "restricted"},
        }
    )
    manager = _manager(tmp_path, catalog)

    with pytest.raises(LicenseNotAcceptedError, match="--accept-license") as excinfo:
        manager.download("a", progress=False)
    assert "Test terms." in str(excinfo.value)
    assert file_server.requests == [] and not manager.is_available("a")

    manager.download("a", accept_license=True, progress=False)
    stored = json.loads((manager.home / "license_accepted.json").read_text())
    assert list(stored) == ["restricted"]

    fresh = _manager(tmp_path, catalog)  # a new process: acceptance is remembered
    assert not fresh.needs_license_acceptance("b")
    assert fresh.download("b", progress=False).read_bytes() == PAYLOAD[:1000]


def test_offline_error_names_url_and_import_command(tmp_path, unused_port, catalog_factory):
    url = f"http://127.0.0.1:{unused_port}/w.pth"
    catalog = catalog_factory({"model_x": {"file_name": "w.pth", "url": url}})
    manager = _manager(tmp_path, catalog)

    with pytest.raises(DownloadError) as excinfo:
        manager.download("model_x", progress=False)

    message = str(excinfo.value)
    assert url in message
    assert "universalseg weights import w.pth --name model_x" in message
    assert not manager.is_available("model_x")


def test_url_override_environment_variable(tmp_path, file_server, catalog_factory, monkeypatch, unused_port):
    file_server.files["mirror/w.pth"] = PAYLOAD
    catalog = catalog_factory(
        {"my-model": {"file_name": "w.pth", "url": f"http://127.0.0.1:{unused_port}/w.pth"}}
    )
    monkeypatch.setenv("UNIVERSALSEG_WEIGHTS_URL_MY_MODEL", file_server.url("mirror/w.pth"))

    assert _manager(tmp_path, catalog).download("my-model", progress=False).read_bytes() == PAYLOAD


def test_base_url_override_appends_file_name(
    tmp_path, file_server, catalog_factory, monkeypatch, unused_port
):
    file_server.files["base/w.pth"] = PAYLOAD
    catalog = catalog_factory({"m": {"file_name": "w.pth", "url": f"http://127.0.0.1:{unused_port}/w.pth"}})
    monkeypatch.setenv("UNIVERSALSEG_WEIGHTS_BASE_URL", file_server.url("base/"))

    assert _manager(tmp_path, catalog).download("m", progress=False).read_bytes() == PAYLOAD
