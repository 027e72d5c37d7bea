"""Console logins in the store's ``console_users`` table."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from aupd.config import Config
from aupd.store import connect, iso, utc_now
from console.passwords import hash_password

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class Account:
    name: str
    password_hash: str
    created_at: str
    updated_at: str

    @property
    def stamp(self) -> str:
        """Changes whenever the password does: sessions carry it, so a reset ends them."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]


def check_name(name: str) -> str | None:
    """Why ``name`` cannot be a login name, or None."""
    if not NAME.match(name):
        return "a login name is 1-64 letters, digits, '.', '_', '@' or '-'"
    return None


def get(config: Config, name: str) -> Account | None:
    db = connect(config.store.path)
    try:
        row = db.execute(
            "SELECT name, password_hash, created_at, updated_at FROM console_users WHERE name = ?",
            [name],
        ).fetchone()
    finally:
        db.conn.close()
    return Account(*row) if row else None


def set_password(config: Config, name: str, password: str) -> bool:
    """Create the login or reset its password. Returns True when it was created."""
    encoded = hash_password(password)
    now = iso(utc_now())
    db = connect(config.store.path)
    try:
        with db.conn:
            cursor = db.conn.execute(
                "UPDATE console_users SET password_hash = ?, updated_at = ? WHERE name = ?",
                [encoded, now, name],
            )
            if cursor.rowcount:
                return False
            db.conn.execute(
                "INSERT INTO console_users (name, password_hash, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                [name, encoded, now, now],
            )
            return True
    finally:
        db.conn.close()


def remove(config: Config, name: str) -> bool:
    db = connect(config.store.path)
    try:
        with db.conn:
            return db.conn.execute("DELETE FROM console_users WHERE name = ?", [name]).rowcount > 0
    finally:
        db.conn.close()


def all_accounts(config: Config) -> list[Account]:
    db = connect(config.store.path)
    try:
        rows = db.execute(
            "SELECT name, password_hash, created_at, updated_at FROM console_users ORDER BY name"
        ).fetchall()
    finally:
        db.conn.close()
    return [Account(*row) for row in rows]
