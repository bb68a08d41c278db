"""Usage events, rollups per (day, model, version, task, commit), their latency histograms, pending feedback.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

KEY = ("day", "model", "version", "task", "commit")


def _key_columns() -> list[sa.Column]:
    return [
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("commit", sa.String(64), nullable=False),
    ]


def _moments(prefix: str) -> list[sa.Column]:
    return [
        sa.Column(f"{prefix}_n", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column(f"{prefix}_sum", sa.Float(53), nullable=False, server_default="0"),
        sa.Column(f"{prefix}_sumsq", sa.Float(53), nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    op.create_table(
        "usage_events",
        # BigInteger ids autoincrement on PostgreSQL; SQLite needs INTEGER PRIMARY KEY for its rowid.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(200), nullable=True),
        # Seconds since the epoch (UTC) as a double: no time-zone ambiguity across backends.
        sa.Column("ts", sa.Float(53), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("user", sa.String(200), nullable=True),
        sa.Column("commit", sa.String(64), nullable=False),
        sa.Column("quality", sa.Float(53), nullable=True),
        sa.Column("latency_ms", sa.Float(53), nullable=True),
        sa.Column("tokens", sa.BigInteger, nullable=True),
        sa.Column("satisfaction", sa.Float(53), nullable=True),
    )
    # NULLs are distinct in a unique index on both backends: many rows may have no request id.
    op.create_index("usage_events_request_id", "usage_events", ["request_id"], unique=True)
    op.create_index("usage_events_ts", "usage_events", ["ts"])
    op.create_table(
        "usage_rollups",
        *_key_columns(),
        sa.Column("n", sa.BigInteger, nullable=False, server_default="0"),
        *_moments("quality"), *_moments("latency_ms"), *_moments("tokens"), *_moments("satisfaction"),
        sa.PrimaryKeyConstraint(*KEY, name="usage_rollups_pkey"),
    )
    op.create_index("usage_rollups_model_day", "usage_rollups", ["model", "day"])
    # One row per rollup holding its whole latency histogram, packed (see stats.pack_histogram): a
    # row per bucket made 64 rows per rollup, and summing 1.4 M of them took SQLite 5 s.
    op.create_table(
        "usage_latency_hist",
        *_key_columns(),
        sa.Column("counts", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint(*KEY, name="usage_latency_hist_pkey"),
    )
    op.create_index("usage_latency_hist_model_day", "usage_latency_hist", ["model", "day"])
    op.create_table(
        "usage_pending_feedback",
        sa.Column("request_id", sa.String(200), primary_key=True),
        sa.Column("ts", sa.Float(53), nullable=False),
        sa.Column("quality", sa.Float(53), nullable=True),
        sa.Column("satisfaction", sa.Float(53), nullable=True),
    )
    op.create_index("usage_pending_feedback_ts", "usage_pending_feedback", ["ts"])


def downgrade() -> None:
    for table in ("usage_pending_feedback", "usage_latency_hist", "usage_rollups", "usage_events"):
        op.drop_table(table)
