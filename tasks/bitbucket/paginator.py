"""Follow Bitbucket's `next` links: the paginator's one job.

`next` is opaque: it is followed exactly as given, never rebuilt from page numbers. The
paginator refuses a link it has already followed (a loop would never end, or would read
the same members twice) and a link to another origin (it would carry our credentials to
a host we were not configured for).

Usage::

    paginator = NextLinkPaginator(first_url)
    url = paginator.first_url
    while url is not None:
        document = fetch(url)
        url = paginator.next_url(document)     # None after the last page
"""

from __future__ import annotations

import httpx

from tasks.bitbucket.exceptions import PaginationAnomaly


class NextLinkPaginator:
    def __init__(self, first_url: str) -> None:
        self.first_url = first_url
        self._origin = _origin(httpx.URL(first_url))
        self._followed: set[str] = {first_url}
        self.pages = 0

    def next_url(self, document: dict) -> str | None:
        """The next page's URL from a page envelope, or None at the end."""
        self.pages += 1
        link = document.get("next")
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise PaginationAnomaly(f"page {self.pages} has a `next` that is not a URL: {link!r}")
        if link in self._followed:
            raise PaginationAnomaly(
                f"next-link loop: page {self.pages} points back to {link}, which was already read"
            )
        try:
            url = httpx.URL(link)
        except httpx.InvalidURL:
            raise PaginationAnomaly(
                f"page {self.pages} has an invalid `next` URL: {link!r}"
            ) from None
        if url.is_relative_url:
            # Not seen from Bitbucket, but harmless to resolve against the configured origin.
            url = httpx.URL(self.first_url).join(url)
            link = str(url)
            if link in self._followed:
                raise PaginationAnomaly(
                    f"next-link loop: page {self.pages} points back to {link}, "
                    "which was already read"
                )
        if _origin(url) != self._origin:
            raise PaginationAnomaly(
                f"page {self.pages} links to another host ({url.scheme}://{url.host}); "
                "refusing to send credentials there"
            )
        self._followed.add(link)
        return link


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)
