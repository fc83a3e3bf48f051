"""Follow Bitbucket's `next` links, count the pages, and refuse to go round in circles.

`next` is opaque: it is followed exactly as given, never rebuilt from page numbers. The
paginator raises `PaginationAnomaly` for

- a loop: a `next` it has already followed, or a page listing exactly the members of an
  earlier page (a `next` that leads back under another URL, e.g. with `page=1` added);
  either way the walk would never end, or would read the same members twice;
- a `next` to another origin (it would carry our credentials to a host we were not
  configured for), or one that is not a URL;
- a `next` to another path on the same host (another workspace's listing, or another
  listing): its members would be taken for this listing's.

Usage::

    paginator = NextLinkPaginator(first_url)
    url = paginator.first_url
    while url is not None:
        document = fetch(url)
        number = paginator.count_page(member_keys)   # 1, 2, …; raises on a repeated page
        ...                                          # check the page's members
        url = paginator.next_url(document)           # None after the last page
        # or, for another envelope: url = paginator.follow(url_built_from(document))
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from tasks.bitbucket.exceptions import PaginationAnomaly

__all__ = ["NextLinkPaginator"]


class NextLinkPaginator:
    def __init__(self, first_url: str) -> None:
        self.first_url = first_url
        self.pages = 0  # pages counted so far
        self._origin = _origin(httpx.URL(first_url))
        self._path = httpx.URL(first_url).path
        self._url = first_url  # the URL of the page being read
        self._followed: set[str] = {first_url}
        self._signatures: dict[tuple[str | None, ...], int] = {}  # members → first page

    def count_page(self, members: Sequence[str | None]) -> int:
        """Count the page just read, given its member keys in order; return its number.

        Call it before trusting the page's members: a repeated page raises here, so its
        members are not reported as members listed twice.
        """
        self.pages += 1
        signature = tuple(members)
        if signature:  # empty pages carry no identity
            earlier = self._signatures.setdefault(signature, self.pages)
            if earlier != self.pages:
                raise _loop(self.pages, f"({self._url}) repeats page {earlier} exactly")
        return self.pages

    def next_url(self, document: dict) -> str | None:
        """The next page's URL from the page envelope just counted, or None at the end."""
        return self.follow(document.get("next"))

    def follow(self, link: object) -> str | None:
        """Check the link to the next page (a URL; None or "" at the end) and return it.

        For APIs whose envelope names the next page another way (the Atlassian directory's
        `links.next` cursor), the caller builds the URL and passes it here.
        """
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise PaginationAnomaly(
                f"page {self.pages} has a `next` that is not a URL: {link!r:.200}"
            )
        try:
            url = httpx.URL(link)
        except httpx.InvalidURL:
            raise PaginationAnomaly(
                f"page {self.pages} has an invalid `next` URL: {link!r:.200}"
            ) from None
        if url.is_relative_url:
            # Not seen from Bitbucket, but harmless to resolve against the configured origin.
            url = httpx.URL(self.first_url).join(url)
            link = str(url)
        if link in self._followed:
            raise _loop(self.pages, f"points back to {link}, which was already read")
        if _origin(url) != self._origin:
            raise PaginationAnomaly(
                f"page {self.pages} links to another host ({url.scheme}://{url.host}); "
                "refusing to send credentials there"
            )
        if url.path != self._path:
            raise PaginationAnomaly(
                f"page {self.pages} links to another listing ({url.path:.200}, not "
                f"{self._path}); its members are not this listing's"
            )
        self._followed.add(link)
        self._url = link
        return link


def _loop(page: int, how: str) -> PaginationAnomaly:
    return PaginationAnomaly(f"next-link loop: page {page} {how}")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)
