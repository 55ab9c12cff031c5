"""The HTTP service: loads the checkpoint store and serves encode/decode/reconstruct/latent-map."""
