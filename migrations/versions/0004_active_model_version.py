"""the collection's active model version; label states for vocabulary switches

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 16:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('model_versions') as batch:
        batch.add_column(sa.Column('active_since', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('labels') as batch:
        batch.add_column(sa.Column('state', sa.String(length=16), nullable=False, server_default='active'))


def downgrade() -> None:
    with op.batch_alter_table('labels') as batch:
        batch.drop_column('state')
    with op.batch_alter_table('model_versions') as batch:
        batch.drop_column('active_since')
