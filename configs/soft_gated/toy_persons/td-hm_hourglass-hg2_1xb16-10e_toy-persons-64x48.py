# Baseline of docs/benchmarks.md ("Toy-persons AP at the same budget"):
# mmpose's own HourglassNet (CornerNet-style hourglass with BasicBlocks, strided
# downsampling, summed skips), 2 stacks, 2 downsamplings, trimmed to a
# parameter count close to the soft-gated hybrid of
# td-hm_softgated-hg2-c256_1xb16-10e_toy-persons-64x48.py: 7.37M vs 7.72M.
# (HourglassNet's stem is fixed at 128 -> 256 channels and its first stage
# must have those 256 channels, so it cannot be made much smaller.) It
# returns features, so CPMHead adds a 1x1 conv per stack.
_base_ = ['./td-hm_softgated-hg2-c64_1xb16-10e_toy-persons-64x48.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='HourglassNet',
        downsample_times=2,
        num_stacks=2,
        stage_channels=(256, 64, 64),
        stage_blocks=(1, 1, 1),
        feat_channel=64),
    head=dict(in_channels=64, final_layer=dict(_delete_=True, kernel_size=1)))
