"""``minitoolai.ids``: request-scoped names from a buffered CSPRNG, in ``secrets``' forms, never
repeated across the buffer's refills or across a fork."""

from __future__ import annotations

import os
import re

from minitoolai import ids


def test_the_forms_are_secrets_forms() -> None:
    assert re.fullmatch(r"[0-9a-f]{24}", ids.hex_id(12))
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", ids.urlsafe_id(18))
    assert len(ids.urlsafe_id(5)) == 7  # unpadded, as secrets.token_urlsafe(5)


def test_ids_never_repeat_across_refills() -> None:
    drawn = [ids.hex_id(12) for _ in range(5000)]  # 60 KB: many refills of the 4 KiB buffer
    assert len(set(drawn)) == len(drawn)
    assert len(ids.hex_id(10_000)) == 20_000  # more than one read at once


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    ids.hex_id(1)  # the buffer is full now, and would be inherited as it is
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, " ".join(ids.hex_id(12) for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {ids.hex_id(12) for _ in range(8)}
    assert len(child) == 8 and not child & parent
