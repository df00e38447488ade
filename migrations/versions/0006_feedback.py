"""feedback: people's verdicts on tags

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 22:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feedback',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('verdict', sa.String(length=8), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', 'label')
    )
    op.create_index('ix_feedback_label', 'feedback', ['label'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_feedback_label', table_name='feedback')
    op.drop_table('feedback')
