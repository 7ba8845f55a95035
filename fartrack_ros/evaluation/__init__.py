"""Evaluation: GOT-10k and OTB/LaSOT metrics, tracker runners (FARTrack, CSRT, KCF), plots."""
