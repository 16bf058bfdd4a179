# Comparison model of docs/benchmarks.md ("Toy-persons AP at the same
# budget"): the soft-gated hybrid at width 256 (2 stacks, 2 poolings):
# 7.72M parameters, against mmpose's HourglassNet in
# td-hm_hourglass-hg2_1xb16-10e_toy-persons-64x48.py (7.37M). Same data,
# pipeline, schedule and head type. The gate ablation (identity skips)
# trains this config with --cfg-options model.backbone.gate=identity.
_base_ = ['./td-hm_softgated-hg2-c64_1xb16-10e_toy-persons-64x48.py']

model = dict(backbone=dict(channels=256, stem_channels=(64, 128)))
