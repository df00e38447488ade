"""embedding store and index change feed

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('embeddings',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('patches', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', 'model_version_id')
    )
    op.create_index(op.f('ix_embeddings_model_version_id'), 'embeddings', ['model_version_id'], unique=False)
    op.create_table('index_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_index_changes_model_version_id'), 'index_changes', ['model_version_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_index_changes_model_version_id'), table_name='index_changes')
    op.drop_table('index_changes')
    op.drop_index(op.f('ix_embeddings_model_version_id'), table_name='embeddings')
    op.drop_table('embeddings')
