"""The HTTP server: routing, answers and the request log, on a real socket."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from shop.server import RequestLog, Shop, ShopServer


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("log") / "requests.jsonl"
    log = RequestLog(str(log_path), "1.2.3", "test-1")
    server = ShopServer(("127.0.0.1", 0), Shop("1.2.3"), log)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", log_path
    server.shutdown()
    server.server_close()
    log.close()


def get(base, path, headers=None):
    request = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_version_and_health_answer(served):
    base, _ = served
    assert get(base, "/version") == (200, {"version": "1.2.3"})
    assert get(base, "/health") == (200, {"status": "ok"})


def test_catalog_routes_answer(served):
    base, _ = served
    status, body = get(base, "/catalog/search?q=green+silk")
    assert status == 200 and body["results"]
    status, body = get(base, "/catalog/item/SKU-00010")
    assert status == 200 and body["sku"] == "SKU-00010"
    assert get(base, "/catalog/item/SKU-99999")[0] == 404


def test_login_then_check_a_token(served):
    base, _ = served
    _, body = get(base, "/auth/login?user=ann")
    assert get(base, "/auth/check", {"Authorization": "Bearer " + body["token"]}) == (
        200,
        {"user": "ann"},
    )
    assert get(base, "/auth/check", {"Authorization": "Bearer x.1.y"})[0] == 401


def test_every_request_is_logged_as_one_json_line(served):
    base, log_path = served
    before = len(log_path.read_text().splitlines())
    get(base, "/cart/add?user=ann&sku=SKU-00003&qty=2")
    get(base, "/cart/add?user=ann&sku=bogus")
    lines = [json.loads(line) for line in log_path.read_text().splitlines()[before:]]
    assert [(line["component"], line["status"], line["level"]) for line in lines] == [
        ("cart", 200, "info"),
        ("cart", 400, "warning"),
    ]
    assert all(line["version"] == "1.2.3" and line["instance"] == "test-1" for line in lines)
