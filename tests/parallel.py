"""Sending requests at once, as attackers do: the same browser on several
connections, started together by a barrier."""
from __future__ import annotations

import threading
from typing import Any, Callable


def same_browser(app, browser, **client_kwargs):
    """Another connection of ``browser`` (the same session cookie)."""
    other = app.test_client(**client_kwargs)
    cookie = browser.get_cookie("sesame")
    other.set_cookie("sesame", cookie.value, domain=cookie.domain)
    return other


def in_parallel(count: int, work: Callable[[int], Any]) -> list:
    """``work(i)`` for i in range(count), in threads released together; the results."""
    barrier, results, lock = threading.Barrier(count), [], threading.Lock()

    def run(i):
        barrier.wait()
        result = work(i)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
