# mmpose dataset_info of the Leeds Sports Pose dataset (LSP, 2000 images)
# and its extension (LSP-extended / LSPET, 10000 images): 14 joints in the
# order of the official joints.mat files. mmpose 1.x ships no LSP metainfo;
# use it as `metainfo=dict(from_file='mmkp_ext/datasets/metainfo/lsp.py')`
# (path relative to the repository root) on the COCO-style json written by
# tools/dataset_converters/convert_lsp.py.
#
# "right"/"left" are the person's right/left, as in the joints.mat files
# (the original LSPET release was annotated observer-centric in part; use
# its corrected person-centric joints.mat).
#
# sigmas (used only by OKS-based metrics; the LSP benchmark metric is PCK):
# the 12 limb joints take the per-keypoint sigmas of the official COCO
# keypoint evaluation (pycocotools: shoulders .079, elbows .072, wrists .062,
# hips .107, knees .087, ankles .089); neck and head top, which COCO does not
# have, take the CrowdPose evaluation's values for its "neck" and "top_head"
# (.079 each, as in mmpose's configs/_base_/datasets/crowdpose.py).
# joint_weights follow mmpose's MPII metainfo (1.5 ankles / wrists, 1.2
# knees / elbows).
dataset_info = dict(
    dataset_name='lsp',
    paper_info=dict(
        author='Sam Johnson and Mark Everingham',
        title='Clustered Pose and Nonlinear Appearance Models for Human '
        'Pose Estimation',
        container='British Machine Vision Conference (BMVC)',
        year='2010',
        homepage='http://sam.johnson.io/research/lsp.html',
    ),
    keypoint_info={
        0: dict(name='right_ankle', id=0, color=[255, 128, 0], type='lower',
                swap='left_ankle'),
        1: dict(name='right_knee', id=1, color=[255, 128, 0], type='lower',
                swap='left_knee'),
        2: dict(name='right_hip', id=2, color=[255, 128, 0], type='lower',
                swap='left_hip'),
        3: dict(name='left_hip', id=3, color=[0, 255, 0], type='lower',
                swap='right_hip'),
        4: dict(name='left_knee', id=4, color=[0, 255, 0], type='lower',
                swap='right_knee'),
        5: dict(name='left_ankle', id=5, color=[0, 255, 0], type='lower',
                swap='right_ankle'),
        6: dict(name='right_wrist', id=6, color=[255, 128, 0], type='upper',
                swap='left_wrist'),
        7: dict(name='right_elbow', id=7, color=[255, 128, 0], type='upper',
                swap='left_elbow'),
        8: dict(name='right_shoulder', id=8, color=[255, 128, 0],
                type='upper', swap='left_shoulder'),
        9: dict(name='left_shoulder', id=9, color=[0, 255, 0], type='upper',
                swap='right_shoulder'),
        10: dict(name='left_elbow', id=10, color=[0, 255, 0], type='upper',
                 swap='right_elbow'),
        11: dict(name='left_wrist', id=11, color=[0, 255, 0], type='upper',
                 swap='right_wrist'),
        12: dict(name='neck', id=12, color=[51, 153, 255], type='upper',
                 swap=''),
        13: dict(name='head_top', id=13, color=[51, 153, 255], type='upper',
                 swap=''),
    },
    skeleton_info={
        0: dict(link=('right_ankle', 'right_knee'), id=0,
                color=[255, 128, 0]),
        1: dict(link=('right_knee', 'right_hip'), id=1, color=[255, 128, 0]),
        2: dict(link=('left_hip', 'left_knee'), id=2, color=[0, 255, 0]),
        3: dict(link=('left_knee', 'left_ankle'), id=3, color=[0, 255, 0]),
        4: dict(link=('right_hip', 'left_hip'), id=4, color=[51, 153, 255]),
        5: dict(link=('right_hip', 'right_shoulder'), id=5,
                color=[255, 128, 0]),
        6: dict(link=('left_hip', 'left_shoulder'), id=6, color=[0, 255, 0]),
        7: dict(link=('right_shoulder', 'right_elbow'), id=7,
                color=[255, 128, 0]),
        8: dict(link=('right_elbow', 'right_wrist'), id=8,
                color=[255, 128, 0]),
        9: dict(link=('left_shoulder', 'left_elbow'), id=9,
                color=[0, 255, 0]),
        10: dict(link=('left_elbow', 'left_wrist'), id=10,
                 color=[0, 255, 0]),
        11: dict(link=('right_shoulder', 'neck'), id=11,
                 color=[255, 128, 0]),
        12: dict(link=('left_shoulder', 'neck'), id=12, color=[0, 255, 0]),
        13: dict(link=('neck', 'head_top'), id=13, color=[51, 153, 255]),
    },
    joint_weights=[
        1.5, 1.2, 1., 1., 1.2, 1.5, 1.5, 1.2, 1., 1., 1.2, 1.5, 1., 1.
    ],
    sigmas=[
        0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.062, 0.072, 0.079, 0.079,
        0.072, 0.062, 0.079, 0.079
    ])
