"""index change log: copies of the index and their positions, the log's floor

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('index_copies',
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('vectors', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name', 'model_version_id')
    )
    op.create_table('index_log_floor',
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('floor', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_version_id')
    )
    # Before this revision a merge deleted the entries it applied: what is left of a version's log
    # starts after its floor (and an index saved then stands at that floor)
    op.execute(sa.text(
        "INSERT INTO index_log_floor (model_version_id, floor) "
        "SELECT mv.id, COALESCE((SELECT MIN(c.id) - 1 FROM index_changes c WHERE c.model_version_id = mv.id), "
        "(SELECT MAX(c.id) FROM index_changes c), 0) FROM model_versions mv"))
    if op.get_bind().dialect.name == 'sqlite':
        # ids are log positions: AUTOINCREMENT never hands out an id again once its row is trimmed
        with op.batch_alter_table('index_changes', recreate='always',
                                  table_kwargs={'sqlite_autoincrement': True}) as batch:
            batch.alter_column('image_id', existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    op.drop_table('index_log_floor')
    op.drop_table('index_copies')
