"""tags as decisions and keyword trees: labels.parent_id, kind, synonyms, threshold; label_cutoffs

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 00:10:00

Columns are added in place (no table copy on SQLite: a copy of ``labels`` would drop the table
its ``tags`` cascade from). Existing labels become top-level keywords; their cutoffs are computed
by the next job, ``tagscope labels add`` or the first reader that needs them (core.decisions).
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('label_cutoffs',
    sa.Column('label_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('slope', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('images', sa.Integer(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['label_id'], ['labels.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('label_id', 'model_version_id')
    )
    if op.get_bind().dialect.name == 'sqlite':  # ADD COLUMN with its reference, no table copy
        op.execute('ALTER TABLE labels ADD COLUMN parent_id INTEGER REFERENCES labels (id)')
    else:
        op.add_column('labels', sa.Column('parent_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_labels_parent_id', 'labels', 'labels', ['parent_id'], ['id'])
    op.add_column('labels', sa.Column('kind', sa.String(length=16), server_default='keyword', nullable=False))
    op.add_column('labels', sa.Column('synonyms', sa.JSON(), nullable=True))
    op.add_column('labels', sa.Column('threshold', sa.Float(), nullable=True))
    op.create_index(op.f('ix_labels_parent_id'), 'labels', ['parent_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_labels_parent_id'), table_name='labels')
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_column('threshold')
        batch_op.drop_column('synonyms')
        batch_op.drop_column('kind')
        batch_op.drop_column('parent_id')
    op.drop_table('label_cutoffs')
