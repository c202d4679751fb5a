"""A bounded memo: the small caches of the hot paths (preambles, placement)."""

from typing import Any, Dict


def remember(cache: Dict[Any, Any], key: Any, value: Any, limit: int) -> Any:
    """
    Store C{value} under C{key} and return it; a cache already holding
    C{limit} entries is emptied first (the hot keys come back at once, and
    no entry is ever evicted one by one).
    """
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value
