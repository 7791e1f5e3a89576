"""Training jobs count their attempts: a job whose worker died is queued again to resume from its last
complete checkpoint, up to ``jobs.max_attempts`` times (:func:`giqa.infra.db.jobs_dal.requeue_lost_jobs`).

Existing rows get 0 (the server default fills them; new rows get the model's default).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:  # batch: SQLite cannot alter a table in place
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("attempts")
