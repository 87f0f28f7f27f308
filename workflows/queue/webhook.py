"""The optional webhook: one POST of the job's final view when it ends.

Delivery is best effort and at most once (a worker that dies between ending the job and
posting does not post): failures are logged, never raised, and the timeout is short so a
slow receiver cannot hold a worker. The URL was checked at submission (http or https);
which hosts are allowed is the HTTP layer's policy.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger("remask.queue")


def post_webhook(url: str, payload: dict[str, Any], timeout_s: float = 5.0) -> bool:
    """POST ``payload`` as JSON to ``url``; True on a 2xx answer."""
    data = json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "remask-queue"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            status = int(resp.status)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("webhook for job %s to %s failed: %s", payload.get("id"), url, exc)
        return False
    if not 200 <= status < 300:
        log.warning("webhook for job %s to %s answered %s", payload.get("id"), url, status)
        return False
    return True
