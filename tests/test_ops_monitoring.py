"""Monitoring: /metrics and /healthz scraped per process on its own address, the HTTP, pool
and version metrics, and the alert rules and dashboard of deploy/ reading only metrics the
processes export (promtool checks and unit-tests the rules in .ci/run)."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request

import pytest
from django.test import Client
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from messaging import metrics
from messaging.domain import selectors
from messaging.ops import health
from tests.helpers import api
from tests.live import ROOT, Daphne

RULES = ROOT / "deploy" / "prometheus" / "chat-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "chat-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "chat-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"


def sample(text: str, name: str, **labels: str) -> float:
    """Return one sample's value from Prometheus's text format (0 when absent)."""
    for line in text.splitlines():
        found = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if not found:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', found[1] or ""))
        if all(have.get(key) == value for key, value in labels.items()):
            return float(found[2])
    return 0.0


def scrape(**client_options) -> str:
    response = Client(REMOTE_ADDR="127.0.0.1", **client_options).get("/metrics")
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


# --- Scraped per process, on its own address ----------------------------------------------


@pytest.mark.services
def test_a_process_scraped_on_its_own_address_answers_without_a_traceback(
    transactional_db, tmp_path
):
    server = Daphne(
        env={"ALLOWED_HOSTS": "chat.example.org", "CHAT_VERSION": "2026.12.5"},
        log_path=tmp_path / "daphne.log",
    )
    server.start()
    try:
        # As Prometheus and the deploy loop ask: http://127.0.0.1:PORT/..., Host included.
        with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        assert sample(text, "chat_build_info", version="2026.12.5") == 1
        with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=10) as answer:
            assert json.loads(answer.read())["status"] == "ok"
        # Any other page asked as that host is still refused, in one line of the log.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.http_url}/accounts/login/", timeout=10)
        assert refused.value.code == 400
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log, log
    assert log.count("Invalid HTTP_HOST header") == 1, log


def test_metrics_on_a_host_name_not_allowed_answer_the_allowed_networks_only(db, settings, caplog):
    settings.ALLOWED_HOSTS = ["chat.example.org"]
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/24"]
    prometheus = Client(REMOTE_ADDR="10.0.0.2", HTTP_HOST="10.0.0.11:8001")
    assert prometheus.get("/metrics").status_code == 200
    assert prometheus.get("/healthz").status_code == 200
    stranger = Client(REMOTE_ADDR="192.0.2.1", HTTP_HOST="10.0.0.11:8001")
    with caplog.at_level(logging.WARNING):
        assert stranger.get("/metrics").status_code == 400
    refusals = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert [r.exc_info for r in refusals] == [None], "one line, no traceback"


# --- What /metrics holds ------------------------------------------------------------------


def test_http_requests_are_counted_by_url_pattern_and_status_and_timed(alice, monkeypatch):
    route = "api/users/"
    before = scrape()
    client = api(alice)
    assert client.get("/api/users/?q=bo").status_code == 200
    assert client.get("/no/such/page/").status_code == 404

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "users_by_prefix", broken)
    client.raise_request_exception = False
    assert client.get("/api/users/?q=bo").status_code == 500
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("chat_http_requests_total", method="GET", route=route, status="200") == 1
    assert grew("chat_http_requests_total", method="GET", route=route, status="500") == 1
    assert grew("chat_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert grew("chat_http_request_seconds_count", route=route) == 2


def test_metrics_name_the_version_running(db, settings):
    settings.CHAT_VERSION = "2026.12.5"
    assert sample(scrape(), "chat_build_info", version="2026.12.5") == 1
    settings.CHAT_VERSION = ""
    commit = metrics.build_version()
    assert re.fullmatch(r"[0-9a-f]{12}|unknown", commit), commit
    assert sample(scrape(), "chat_build_info", version=commit) == 1


@pytest.mark.services
def test_metrics_show_the_database_pool(alice, settings):
    assert api(alice).get("/api/conversations/").status_code == 200
    text = scrape()
    pool = settings.DATABASES["default"]["OPTIONS"]["pool"]
    assert sample(text, "chat_db_pool_max") == pool["max_size"]
    assert sample(text, "chat_db_pool_min") == pool["min_size"]
    assert sample(text, "chat_db_pool_requests_total") >= 1
    assert sample(text, "chat_db_pool_size") >= sample(text, "chat_db_pool_available")


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (RedisConnectionError("Error 111 connecting to 10.0.0.5:6379. Connection refused."),
         "connection refused"),
        (RedisConnectionError("Error -2 connecting to redis.internal:6379. Name unknown."),
         "ConnectionError"),
    ],
)  # fmt: skip
def test_a_failed_channel_layer_check_names_no_address(db, client, monkeypatch, failure, reason):
    health.forget_checks()

    async def failing():
        raise failure

    monkeypatch.setattr(health, "_channel_layer", failing)
    response = client.get("/healthz")
    health.forget_checks()
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"] == reason
    for secret in ("10.0.0.5", "redis.internal", "6379"):
        assert secret not in response.content.decode()


# --- The rules and the dashboard read what the processes export ---------------------------


def exported_names(monkeypatch) -> set[str]:
    """Name every series this process's /metrics can show, those without samples yet too."""

    class Pool:
        def get_stats(self) -> dict[str, int]:
            return {}

    # The pool's figures show only on PostgreSQL; their names are the same everywhere.
    monkeypatch.setattr(metrics, "_database_pool", lambda: Pool())
    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_count", "_sum"],
        "info": ["_info"],
    }
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
        names |= {s.name for s in family.samples}
    return names


def names_read(text: str) -> set[str]:
    return set(re.findall(r"\b(?:chat|process)_[a-z_]+[a-z]\b", text))


def test_every_metric_the_alert_rules_and_the_dashboard_read_is_exported(monkeypatch):
    exported = exported_names(monkeypatch)
    rules = RULES.read_text()
    expressions = " ".join(
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel.get("targets", [])
    )
    read = names_read(rules) | names_read(expressions)
    assert "chat_send_latency_seconds_bucket" in read
    missing = read - exported
    assert not missing, f"read but not exported: {sorted(missing)}"


def test_every_alert_has_a_unit_test_and_a_line_in_the_operations_doc():
    alerts = re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.M)
    assert len(alerts) >= 10
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    doc = OPERATIONS.read_text()
    for alert in alerts:
        assert alert in tested, f"{alert} has no test in {RULE_TESTS.name}"
        assert f"| `{alert}`" in doc, f"{alert} is not in the alerts table of operations.md"


def test_the_dashboard_asks_prometheus_for_its_data_source():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
