"""media: what each file says about its shot, video frames, stacks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 21:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('media',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('taken', sa.DateTime(timezone=False), nullable=True),
    sa.Column('taken_offset_min', sa.Integer(), nullable=True),
    sa.Column('taken_source', sa.String(length=8), nullable=True),
    sa.Column('camera_make', sa.String(length=120), nullable=True),
    sa.Column('camera_model', sa.String(length=120), nullable=True),
    sa.Column('lens', sa.String(length=120), nullable=True),
    sa.Column('gps_lat', sa.Float(), nullable=True),
    sa.Column('gps_lon', sa.Float(), nullable=True),
    sa.Column('country', sa.String(length=80), nullable=True),
    sa.Column('country_code', sa.String(length=2), nullable=True),
    sa.Column('region', sa.String(length=120), nullable=True),
    sa.Column('city', sa.String(length=120), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('decoder', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id')
    )
    op.create_index('ix_media_kind', 'media', ['kind'], unique=False)
    op.create_index('ix_media_taken', 'media', ['taken'], unique=False)
    op.create_table('video_frames',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('time_s', sa.Float(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', 'model_version_id', 'idx')
    )
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('stack_key', sa.String(length=64), nullable=True))
        batch.create_index('ix_images_stack_key', ['stack_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.drop_index('ix_images_stack_key')
        batch.drop_column('stack_key')
    op.drop_table('video_frames')
    op.drop_index('ix_media_taken', table_name='media')
    op.drop_index('ix_media_kind', table_name='media')
    op.drop_table('media')
