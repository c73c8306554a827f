"""Numbers RVC's models are built around, named once for every package.

The content encoder and the pitch estimators read 16 kHz audio; one synthesizer
frame is 10 ms (160 samples at 16 kHz); RVC samples its prior's latent with noise
scaled by 0.66666 at inference.
"""

SR_16K = 16_000  # the rate the content encoder and the pitch estimators read
HOP_16K = 160  # one synthesizer frame (10 ms) in 16 kHz samples
NOISE_SCALE = 0.66666  # RVC's inference noise scale on the prior
