"""TotalSegmentator's nnU-Net v2 weight folders run through :mod:`medseg.nnunet` (``--model totalsegmentator``).

Nothing of TotalSegmentator is imported or downloaded: the part folders the user already has are located
(:mod:`.tasks`), each part runs with TotalSegmentator's settings (fold 0, window step 0.8, no mirroring) and
the part maps are merged into the final label IDs in the parts' order (:mod:`.pipeline`).
"""
