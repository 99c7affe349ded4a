"""``upgrade`` skips Alembic when the database is at ``HEAD``: that constant must be the
scripts' head, or a new migration would never run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from minitoolai.infra.migrate import HEAD, alembic_config

UPGRADE_TWICE = (
    "import asyncio, sys\n"
    "from minitoolai.infra.db import Database\n"
    "from minitoolai.infra.migrate import upgrade\n"
    "async def main():\n"
    "    db = Database(sys.argv[1])\n"
    "    await upgrade(db.engine)\n"
    "    print('alembic' in sys.modules)\n"
    "    await db.dispose()\n"
    "asyncio.run(main())\n"
)


def test_head_is_the_newest_migration() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD]


def test_an_up_to_date_database_starts_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    runs = [
        subprocess.run(
            [sys.executable, "-c", UPGRADE_TWICE, url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs == [["True"], ["False"]]  # the first migrated; the second found it done
