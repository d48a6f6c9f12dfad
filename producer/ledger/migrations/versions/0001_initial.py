"""The ledger: tickets, decisions, people's labels and the review desk's items.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen here, not imported from the models: a revision must mean the same forever.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NAME, TICKET_ID, REVISION, PERSON, LABEL = 64, 256, 128, 256, 256


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", ID, nullable=False),
        sa.Column("source", sa.String(NAME), nullable=False),
        sa.Column("ticket_id", sa.String(TICKET_ID), nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("origin", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("source", "ticket_id", name="uq_tickets_source_ticket_id"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", ID, nullable=False),
        sa.Column("task", sa.String(NAME), nullable=False),
        sa.Column("source", sa.String(NAME), nullable=False),
        sa.Column("ticket_id", sa.String(TICKET_ID), nullable=False),
        sa.Column("revision", sa.String(REVISION), nullable=False),
        sa.Column("label", sa.String(LABEL), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("decided_by", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("model_version", sa.String(PERSON), nullable=True),
        sa.Column("adapter_version", sa.String(PERSON), nullable=True),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("neighbours", sa.JSON(), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("suggestions", sa.JSON(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.UniqueConstraint(
            "task",
            "source",
            "ticket_id",
            "revision",
            name="uq_decisions_task_source_ticket_id_revision",
        ),
    )
    op.create_index("ix_decisions_task_decided_at", "decisions", ["task", "decided_at"])
    op.create_table(
        "human_labels",
        sa.Column("id", ID, nullable=False),
        sa.Column("task", sa.String(NAME), nullable=False),
        sa.Column("source", sa.String(NAME), nullable=False),
        sa.Column("ticket_id", sa.String(TICKET_ID), nullable=False),
        sa.Column("revision", sa.String(REVISION), nullable=False),
        sa.Column("label", sa.String(LABEL), nullable=False),
        sa.Column("labelled_by", sa.String(PERSON), nullable=False),
        sa.Column("via", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_label", sa.String(LABEL), nullable=True),
        sa.Column("model_adapter_version", sa.String(PERSON), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_human_labels"),
        sa.UniqueConstraint(
            "task",
            "source",
            "ticket_id",
            "revision",
            name="uq_human_labels_task_source_ticket_id_revision",
        ),
    )
    op.create_index("ix_human_labels_task_labelled_at", "human_labels", ["task", "labelled_at"])
    op.create_table(
        "review_items",
        sa.Column("id", ID, nullable=False),
        sa.Column("task", sa.String(NAME), nullable=False),
        sa.Column("source", sa.String(NAME), nullable=False),
        sa.Column("ticket_id", sa.String(TICKET_ID), nullable=False),
        sa.Column("revision", sa.String(REVISION), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("why", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(PERSON), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(PERSON), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer_label", sa.String(LABEL), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('review', 'audit')", name="ck_review_items_kind"),
        sa.CheckConstraint(
            "why IN ('unsure', 'frontier_refused', 'budget', 'disagreement', 'no_frontier',"
            " 'audit', 'other')",
            name="ck_review_items_why",
        ),
        sa.CheckConstraint(
            "state IN ('open', 'claimed', 'resolved', 'skipped')", name="ck_review_items_state"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_review_items"),
        sa.UniqueConstraint(
            "task",
            "source",
            "ticket_id",
            "revision",
            "kind",
            name="uq_review_items_task_source_ticket_id_revision_kind",
        ),
    )
    # The queue: a task's open items, oldest first.
    op.create_index(
        "ix_review_items_task_state_created_at", "review_items", ["task", "state", "created_at"]
    )
    # A person's label resolves the open items of its ticket.
    op.create_index(
        "ix_review_items_task_source_ticket_id_state",
        "review_items",
        ["task", "source", "ticket_id", "state"],
    )


def downgrade() -> None:
    op.drop_table("review_items")
    op.drop_table("human_labels")
    op.drop_table("decisions")
    op.drop_table("tickets")
