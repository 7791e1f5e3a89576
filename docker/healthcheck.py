"""The container healthcheck: exit 0 when ``GET <url>`` answers 2xx within 4 s, else 1 with the reason.

Slim images have no curl; the standard library is enough and starts in ~30 ms (importing ``giqa`` would
cost seconds on every check).
"""

import sys
import urllib.error
import urllib.request


def main(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - a fixed loopback URL
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"healthcheck {url}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/health"))
