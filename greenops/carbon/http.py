"""A small JSON-over-HTTP client for the intensity APIs: timeouts, retries with exponential
backoff on 429/5xx/network errors (never on 4xx: a bad token does not get better), and errors
that never carry the request's secrets."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request


class FetchError(RuntimeError):
    """A request that failed for good (after retries), with the status where there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def get_json(
    url: str,
    params: dict | None = None,
    headers: dict | None = None,
    basic_auth: tuple[str, str] | None = None,
    timeout_s: float = 10.0,
    retries: int = 3,
    backoff_s: float = 0.5,
) -> object:
    if params:
        url = f"{url}?{urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})}"
    hdrs = {"Accept": "application/json", "User-Agent": "greenops"} | (headers or {})
    if basic_auth:
        hdrs["Authorization"] = (
            "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        )
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=hdrs), timeout=timeout_s
            ) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            status = e.code
            last = FetchError(f"GET {_safe(url)}: HTTP {status}", status)
            if status == 429 or status >= 500:
                continue
            raise last from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            last = FetchError(f"GET {_safe(url)}: {getattr(e, 'reason', e)}")
            continue
        try:
            return json.loads(body)
        except ValueError:
            raise FetchError(f"GET {_safe(url)}: malformed JSON") from None
    raise last  # type: ignore[misc]


def _safe(url: str) -> str:
    """The URL without its query string (which may hold keys)."""
    return url.split("?", 1)[0]
