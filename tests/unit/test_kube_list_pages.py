"""Secrets are listed a page at a time: the documents feed lists every record Secret every few seconds on
every replica, and one answer with all of them held every record in memory at once."""

from __future__ import annotations

from typing import Any

from clientreg_kube.cluster import LIST_PAGE, KubeCluster


class _Api:
    """Three pages of Secrets behind continue tokens; records what each request asked for."""

    def __init__(self) -> None:
        self.asked: list[dict[str, str]] = []

    def request(self, method: str, path: str, *, query: dict[str, str] | None = None, **_: Any) -> dict[str, Any]:
        self.asked.append(dict(query or {}))
        page = int((query or {}).get("continue", "0"))
        items = [{"metadata": {"name": f"s{page}-{i}"}} for i in range(2)]
        return {"metadata": {"continue": str(page + 1) if page < 2 else ""}, "items": items}


def test_secrets_are_listed_page_by_page_and_only_as_they_are_read() -> None:
    api = _Api()
    found = KubeCluster(api).list_secrets("ops", "clientreg.dev/role=record")
    first = next(iter(found))
    assert first["metadata"]["name"] == "s0-0" and len(api.asked) == 1  # one page in memory, not all
    names = [first["metadata"]["name"], *(s["metadata"]["name"] for s in found)]
    assert names == ["s0-0", "s0-1", "s1-0", "s1-1", "s2-0", "s2-1"]
    assert [q.get("continue") for q in api.asked] == [None, "1", "2"]
    assert all(q["limit"] == str(LIST_PAGE) and q["labelSelector"] == "clientreg.dev/role=record" for q in api.asked)
