"""Label tables of published models (facts copied from the releases, used by the model cards)."""
from __future__ import annotations

# STU-Net TotalSegmentator checkpoints: label_orders.json of uni-medical/STU-Net (commit 520c58c).
# Index i+1 is names[i]; TotalSegmentator v1 names in Python sorted() order, which differs from the
# official TotalSegmentator numbering.
TOTALSEG_V1_SORTED: tuple[str, ...] = (
    "adrenal_gland_left", "adrenal_gland_right", "aorta", "autochthon_left", "autochthon_right", "brain",
    "clavicula_left", "clavicula_right", "colon", "duodenum", "esophagus", "face", "femur_left",
    "femur_right", "gallbladder", "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left",
    "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right", "heart_atrium_left",
    "heart_atrium_right", "heart_myocardium", "heart_ventricle_left", "heart_ventricle_right", "hip_left",
    "hip_right", "humerus_left", "humerus_right", "iliac_artery_left", "iliac_artery_right",
    "iliac_vena_left", "iliac_vena_right", "iliopsoas_left", "iliopsoas_right", "inferior_vena_cava",
    "kidney_left", "kidney_right", "liver", "lung_lower_lobe_left", "lung_lower_lobe_right",
    "lung_middle_lobe_right", "lung_upper_lobe_left", "lung_upper_lobe_right", "pancreas",
    "portal_vein_and_splenic_vein", "pulmonary_artery", "rib_left_1", "rib_left_10", "rib_left_11",
    "rib_left_12", "rib_left_2", "rib_left_3", "rib_left_4", "rib_left_5", "rib_left_6", "rib_left_7",
    "rib_left_8", "rib_left_9", "rib_right_1", "rib_right_10", "rib_right_11", "rib_right_12", "rib_right_2",
    "rib_right_3", "rib_right_4", "rib_right_5", "rib_right_6", "rib_right_7", "rib_right_8", "rib_right_9",
    "sacrum", "scapula_left", "scapula_right", "small_bowel", "spleen", "stomach", "trachea",
    "urinary_bladder", "vertebrae_C1", "vertebrae_C2", "vertebrae_C3", "vertebrae_C4", "vertebrae_C5",
    "vertebrae_C6", "vertebrae_C7", "vertebrae_L1", "vertebrae_L2", "vertebrae_L3", "vertebrae_L4",
    "vertebrae_L5", "vertebrae_T1", "vertebrae_T10", "vertebrae_T11", "vertebrae_T12", "vertebrae_T2",
    "vertebrae_T3", "vertebrae_T4", "vertebrae_T5", "vertebrae_T6", "vertebrae_T7", "vertebrae_T8",
    "vertebrae_T9",
)

# BTCV (Synapse multi-organ) in the order of research-contributions' dataset_0.json (labels 1..13).
BTCV: tuple[str, ...] = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "esophagus", "liver", "stomach", "aorta",
    "inferior_vena_cava", "portal_vein_and_splenic_vein", "pancreas", "adrenal_gland_right", "adrenal_gland_left",
)

# BraTS 2021 overlapping regions, channel order of the Swin UNETR release: TC = {1, 4}, WT = {1, 2, 4}, ET = {4}.
BRATS_REGIONS: tuple[str, ...] = ("tumor_core", "whole_tumor", "enhancing_tumor")
# Input order of brats21_folds.json (research-contributions): flair, t1ce, t1, t2.
BRATS_CHANNELS: tuple[str, ...] = ("FLAIR", "T1ce", "T1", "T2")

# CHAOS MR (multi-scale guided attention paper): grey levels 63/126/189/252 -> classes 1..4.
CHAOS_MR: tuple[str, ...] = ("background", "liver", "kidney_right", "kidney_left", "spleen")
