"""Scale to zero with Caddy alone on http_port (``data_plane: caddy``): an idle service
wakes on its first request, and requests past ``wake_hold_max`` are answered 503 with
Retry-After while the wake is under way; the events say it went idle and woke."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_scale_to_zero import events, get, wait_idle

from testkit.harness import image_source, live_containers, wait_for, wait_status

pytestmark = pytest.mark.e2e
HOLD_MAX = 3
AGENT_SETTINGS = {
    "data_plane": "caddy",
    "metrics_interval": 0.5,
    "scale_interval": 0.5,
    "wake_hold_max": HOLD_MAX,
}


def test_requests_past_the_bound_get_503_with_retry_after(agent, hello_image):
    client = agent.client()
    # The app takes 3 s to listen: the burst below all arrives while the wake is under way.
    arn = client.create_service(
        ServiceName="sluggish",
        SourceConfiguration=image_source(
            hello_image, StartCommand="sh -c 'sleep 3; exec python3 /app/app.py'"
        ),
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
        Tags=[{"Key": "slipway:idle-timeout", "Value": "2s"}],
    )["Service"]["ServiceArn"]
    service = wait_status(client, arn, "RUNNING")
    wait_idle(agent, "sluggish", service["ServiceId"])

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: get(agent, "sluggish"), range(12)))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {200: HOLD_MAX, 503: 12 - HOLD_MAX}
    for answer in answers:
        if answer.status_code == 503:
            assert answer.headers["Retry-After"].isdigit()
            assert "wake_hold_max 3" in answer.text
        else:
            assert answer.text == "Hello from slipway!\n"
    assert len(live_containers(service["ServiceId"])) == 1
    wait_for(lambda: "Service woke" in events(agent, "sluggish"), 20, "the woke event")
    assert get(agent, "sluggish").status_code == 200  # awake: no bound any more
