"""Whether a hub endpoint can be reached at all, asked once before a download: huggingface_hub otherwise retries a
host it cannot resolve or connect to for about 24 s, logging each retry, before giving up."""
from __future__ import annotations

import socket
import urllib.request
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 3.0


def endpoint_reachable(endpoint: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the endpoint's host opens within `timeout` (the name resolves, a route and a
    listener exist). Behind a proxy the host is not dialled directly, so it is assumed reachable."""
    url = urlsplit(endpoint)
    if url.hostname is None:
        return False
    if url.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(url.hostname):
        return True
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True
