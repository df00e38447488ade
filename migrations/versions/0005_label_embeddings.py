"""label embeddings stored per model version

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 16:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('label_embeddings',
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('text_key', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_version_id', 'text_key')
    )


def downgrade() -> None:
    op.drop_table('label_embeddings')
