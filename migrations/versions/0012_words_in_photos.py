"""words in photos: photo_text (lines OCR read, with boxes) and text_reads (what OCR last did per photo)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 01:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('photo_text',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('folded', sa.Text(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('box', sa.JSON(), nullable=False),
    sa.Column('frame_ms', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_photo_text_image_id'), 'photo_text', ['image_id'], unique=False)
    op.create_table('text_reads',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('engine', sa.String(length=120), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id')
    )


def downgrade() -> None:
    op.drop_table('text_reads')
    op.drop_index(op.f('ix_photo_text_image_id'), table_name='photo_text')
    op.drop_table('photo_text')
