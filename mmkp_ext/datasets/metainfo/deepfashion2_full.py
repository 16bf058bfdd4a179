# mmpose dataset_info of DeepFashion2 (294 keypoints over 13 clothing
# categories) WITH the official per-keypoint OKS sigmas.
#
# mmpose's own ``configs/_base_/datasets/deepfashion2.py`` carries the
# keypoint names, left/right swaps, skeleton and joint weights, but an empty
# ``sigmas`` list, so neither OKS-based evaluation nor OKS-NMS can run on it.
# This file inherits all of that (mmengine ``_base_`` inheritance resolved
# through the installed mmpose package) and adds the 294 sigmas of the
# official DeepFashion2 keypoint evaluation (its ``cocoeval.py``), in the
# 0-based global keypoint order. Evaluation uses ``vars = (2 * sigma)**2``.
#
# Category keypoint ranges (category id, name, first-last keypoint index,
# 0-based, inclusive); the same table is
# ``mmkp_ext.grouping.layout.DEEPFASHION2_CATEGORY_RANGES``:
#    1 short_sleeved_shirt      0-24
#    2 long_sleeved_shirt      25-57
#    3 short_sleeved_outwear   58-88
#    4 long_sleeved_outwear    89-127
#    5 vest                   128-142
#    6 sling                  143-157
#    7 shorts                 158-167
#    8 trousers               168-181
#    9 skirt                  182-189
#   10 short_sleeved_dress    190-218
#   11 long_sleeved_dress     219-255
#   12 vest_dress             256-274
#   13 sling_dress            275-293
#
# One fix to the inherited table: mmpose 1.3.2 gives vest_kpt13 (id 140) no
# swap partner although vest_kpt9 (id 136) names it as its own, so its flip
# indices are not a permutation (a horizontal flip would copy keypoint 140
# over 136 and lose 136). The vest is left/right symmetric like the other
# categories (kpt7<->15, 8<->14, 9<->13, 10<->12), so 140 swaps with 136.
_base_ = ['mmpose::_base_/datasets/deepfashion2.py']

dataset_info = dict(
    dataset_name='deepfashion2',
    keypoint_info={140: dict(swap='vest_kpt9')},
    sigmas=[
        0.012, 0.0158, 0.0169, 0.0165, 0.0169, 0.0158, 0.0298, 0.0329,
        0.0321, 0.0323, 0.034, 0.0388, 0.0452, 0.0574, 0.0492, 0.0352,
        0.0492, 0.0574, 0.0452, 0.0388, 0.034, 0.0323, 0.0321, 0.0329,
        0.0298, 0.0194, 0.017, 0.0185, 0.0193, 0.0185, 0.017, 0.0286,
        0.0471, 0.0547, 0.0526, 0.043, 0.0392, 0.0513, 0.0566, 0.0509,
        0.0564, 0.0542, 0.0604, 0.0599, 0.052, 0.0599, 0.0604, 0.0542,
        0.0564, 0.0509, 0.0566, 0.0513, 0.0392, 0.043, 0.0526, 0.0547,
        0.0471, 0.0286, 0.0074, 0.0085, 0.0165, 0.0248, 0.0165, 0.0085,
        0.0156, 0.0231, 0.0296, 0.0137, 0.0195, 0.025, 0.0347, 0.038,
        0.0257, 0.037, 0.0257, 0.038, 0.0347, 0.025, 0.0195, 0.0137,
        0.0296, 0.0231, 0.0156, 0.0248, 0.0469, 0.0632, 0.037, 0.0469,
        0.0632, 0.0137, 0.0153, 0.0243, 0.0377, 0.0243, 0.0153, 0.0203,
        0.0366, 0.0467, 0.0433, 0.0393, 0.0329, 0.0418, 0.0477, 0.0399,
        0.0331, 0.042, 0.0492, 0.0436, 0.0478, 0.0436, 0.0492, 0.042,
        0.0331, 0.0399, 0.0477, 0.0418, 0.0329, 0.0393, 0.0433, 0.0467,
        0.0366, 0.0203, 0.0377, 0.0645, 0.0573, 0.0478, 0.0645, 0.0573,
        0.0352, 0.0158, 0.021, 0.0214, 0.021, 0.0158, 0.0196, 0.05,
        0.0489, 0.0404, 0.0401, 0.0404, 0.0489, 0.05, 0.0196, 0.0276,
        0.0548, 0.0283, 0.0204, 0.0283, 0.0548, 0.0369, 0.0726, 0.0677,
        0.064, 0.0251, 0.064, 0.0677, 0.0726, 0.0369, 0.0308, 0.0216,
        0.0308, 0.0506, 0.0494, 0.0463, 0.0477, 0.0463, 0.0494, 0.0506,
        0.0275, 0.0202, 0.0275, 0.0651, 0.0451, 0.035, 0.028, 0.0392,
        0.0362, 0.0392, 0.028, 0.035, 0.0451, 0.0651, 0.0253, 0.0195,
        0.0253, 0.0513, 0.0543, 0.0415, 0.0543, 0.0513, 0.0153, 0.023,
        0.0167, 0.0145, 0.0167, 0.023, 0.0332, 0.0391, 0.0391, 0.0396,
        0.044, 0.0452, 0.0498, 0.0514, 0.0585, 0.0655, 0.0635, 0.0602,
        0.0635, 0.0655, 0.0585, 0.0514, 0.0498, 0.0452, 0.044, 0.0396,
        0.0391, 0.0391, 0.0332, 0.0121, 0.0134, 0.0158, 0.0162, 0.0158,
        0.0134, 0.0246, 0.0406, 0.047, 0.0404, 0.0463, 0.0466, 0.0435,
        0.0499, 0.0455, 0.044, 0.0411, 0.049, 0.0576, 0.0685, 0.0618,
        0.0483, 0.0618, 0.0685, 0.0576, 0.049, 0.0411, 0.044, 0.0486,
        0.0499, 0.0435, 0.0466, 0.0463, 0.0404, 0.047, 0.0406, 0.0246,
        0.0116, 0.0167, 0.016, 0.018, 0.016, 0.0167, 0.0196, 0.0385,
        0.0421, 0.0497, 0.0562, 0.0528, 0.0428, 0.0528, 0.0562, 0.0497,
        0.0421, 0.0385, 0.0196, 0.0244, 0.0297, 0.0244, 0.0208, 0.0244,
        0.0297, 0.0173, 0.0616, 0.0659, 0.0712, 0.0707, 0.0685, 0.0339,
        0.0685, 0.0707, 0.0712, 0.0659, 0.0616, 0.0173,
    ])
